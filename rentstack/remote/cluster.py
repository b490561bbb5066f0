"""Form a Ray cluster over SSH for a multi-host tier: the executor of rentstack.scale.ray_cluster.

Plan, then act: every host's private interface is read first (a fact: the route to the
head), Ray is installed at the pinned version where missing, the shared auth token is
written 0600, the firewall keeps Ray's ports on the private interface, the head starts,
workers join, and `ray status` on the head must show every host and GPU the plan needs.
On any failure Ray is stopped on every host, so nothing is left running, and one line says
what failed and what to do.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rentstack.errors import RentstackError
from rentstack.remote.options import write_local_secret
from rentstack.scale import ray_cluster as rc

JOIN_TIMEOUT_S = 60.0
"""How long workers get to appear in `ray status` (they join within seconds on a LAN)."""


@dataclass(frozen=True)
class ClusterHost:
    """One host of the cluster: its connection and where its Ray lives."""

    remote: object                 # rentstack.remote.connection.Remote (run/check/write)
    venv: str                      # the venv whose bin/ray runs (the runtime venv on GPU hosts)

    @property
    def label(self) -> str:
        return self.remote.spec.label

    @property
    def ray(self) -> str:
        return f"{self.venv}/bin/ray"


@dataclass(frozen=True)
class Formed:
    status: rc.ClusterStatus
    routes: dict[str, rc.Route]    # host label -> interface and address it uses
    firewalled: dict[str, bool]    # host label -> Ray's ports limited to the private interface


def _route(host: ClusterHost, head_address: str, is_head: bool) -> rc.Route:
    if is_head:
        code, out = host.remote.run(rc.own_address_command(head_address))
        return rc.parse_own_address(out, code)
    code, out = host.remote.run(rc.route_command(head_address))
    try:
        return rc.parse_route(out, code)
    except RentstackError as exc:
        raise RentstackError(f"{host.label}: {exc}") from None


def _ensure_ray(host: ClusterHost, log: Callable[[str], None]) -> None:
    code, out = host.remote.run(f"{shlex.quote(host.ray)} --version")
    if code == 0 and rc.RAY_VERSION in out:
        log(f"{host.label}: ray {rc.RAY_VERSION} present — skipped")
        return
    log(f"{host.label}: installing ray {rc.RAY_VERSION} into {host.venv}")
    venv = shlex.quote(host.venv)
    host.remote.check(f"[ -x {venv}/bin/pip ] || python3 -m venv {venv}; "
                      f"{venv}/bin/pip install -q 'ray=={rc.RAY_VERSION}'", f"installing ray {rc.RAY_VERSION}",
                      timeout=900)


def _firewall(host: ClusterHost, route: rc.Route, log: Callable[[str], None]) -> bool:
    code, out = host.remote.run("command -v iptables >/dev/null && [ \"$(id -u)\" = 0 ] && "
                                + rc.firewall_script(route.dev))
    if code == 0:
        log(f"{host.label}: Ray ports {rc.RAY_PORTS['port']}-{rc.RAY_PORTS['max-worker-port']} "
            f"answer on {route.dev} and loopback only")
        return True
    log(f"{host.label}: warning: could not limit Ray's ports to {route.dev} (no iptables or no permission: "
        f"{out.strip().splitlines()[-1][:80] if out.strip() else 'iptables missing'}); keep the hosts on a "
        "private network or a provider security group that blocks them")
    return False


def stop_ray(hosts: list[ClusterHost]) -> None:
    for host in hosts:
        host.remote.run(f"{shlex.quote(host.ray)} stop --force >/dev/null 2>&1; true")


def ray_status(head: ClusterHost, head_address: str, env: dict[str, str]) -> rc.ClusterStatus:
    code, out = head.remote.run(rc.shell_line([head.ray, "status", f"--address={head_address}:{rc.RAY_PORTS['port']}"],
                                              env), timeout=60)
    return rc.parse_ray_status(out, code)


def form_cluster(head: ClusterHost, workers: list[ClusterHost], *, head_address: str, gpus_per_host: int,
                 token: str, log: Callable[[str], None] = print, join_timeout_s: float = JOIN_TIMEOUT_S) -> Formed:
    """Start Ray on head + workers and check the cluster is whole; stop everything on failure."""
    hosts = [head, *workers]
    routes = {head.label: _route(head, head_address, True)}
    for worker in workers:
        routes[worker.label] = _route(worker, head_address, False)
    for label, route in routes.items():
        log(f"{label}: private interface {route.dev} ({route.src}) — NCCL/Gloo and Ray use it")
    for host in hosts:
        _ensure_ray(host, log)
    firewalled = {}
    try:
        for host in hosts:
            host.remote.run(f"{shlex.quote(host.ray)} stop --force >/dev/null 2>&1; true")
            host.remote.write("/root/.ray/auth_token", token, mode=0o600)
            firewalled[host.label] = _firewall(host, routes[host.label], log)
        head_env = rc.ray_env(routes[head.label])
        head.remote.check(rc.shell_line(rc.head_argv(head.ray, routes[head.label]), head_env),
                          "ray start --head", timeout=180)
        log(f"{head.label}: Ray head listening on {head_address}:{rc.RAY_PORTS['port']}")
        for worker in workers:
            route = routes[worker.label]
            worker.remote.check(rc.shell_line(rc.worker_argv(worker.ray, route, head_address),
                                              rc.ray_env(route)), f"ray start (worker joining {head_address})",
                                timeout=180)
        deadline = time.monotonic() + join_timeout_s
        while True:
            status = ray_status(head, head_address, head_env)
            if status.active_nodes >= len(hosts) or time.monotonic() > deadline:
                break
            time.sleep(2)
        rc.check_cluster(status, len(hosts), gpus_per_host)
        log(f"ray status: {status.active_nodes} hosts, {status.cpus:g} CPUs, {status.gpus:g} GPUs — cluster whole")
        return Formed(status=status, routes=routes, firewalled=firewalled)
    except RentstackError:
        stop_ray(hosts)
        raise


def ray_token_file(opts) -> Path:  # noqa: ANN001 - rentstack.remote.options.Options
    """The cluster's Ray auth token on this machine (0600), made once per tier and kept."""
    path = opts.local_state / f"ray-{opts.tier}" / "ray_token"
    if not path.is_file() or not path.read_text().strip():
        write_local_secret(path, secrets.token_hex(32))
    os.chmod(path, 0o600)
    return path


def form_for_tier(specs, auth, opts, head_ip: str, echo: Callable[[str], None] = print) -> Formed:  # noqa: ANN001
    """`fab ray`: the Ray cluster of a multi-host tier over its hosts, head first; then the command
    that starts vLLM on the head (validated by vLLM's parser and the planner, not run here)."""
    from rentstack.config import load_tier
    from rentstack.remote.connection import Remote
    from rentstack.remote.layout import Layout
    from rentstack.remote.options import InputError

    tier = load_tier(opts.tier)
    if tier.hosts < 2:
        raise InputError(f"tier {tier.name} runs on one host: `fab ray` is for tiers that span hosts "
                             "(e.g. 4090x4x2); for more users on one model use `fab provision --replicas`")
    if len(specs) != tier.hosts:
        raise InputError(f"tier {tier.name} spans {tier.hosts} hosts; --host lists {len(specs)}: "
                             "give them all, the head first")
    try:
        ipaddress.ip_address(head_ip)
    except ValueError:
        raise InputError(f"--head-ip {head_ip!r} is not an IP address: give the head's private address "
                             "(`ip -4 addr` on the head)") from None
    venv = Layout(opts.data_dir).venv
    token = ray_token_file(opts).read_text().strip()
    with contextlib.ExitStack() as stack:
        hosts = [ClusterHost(stack.enter_context(Remote(spec, auth)), venv) for spec in specs]
        formed = form_cluster(hosts[0], hosts[1:], head_address=head_ip, gpus_per_host=tier.gpu.count,
                              token=token, log=echo)
    env = rc.ray_env(formed.routes[hosts[0].label])
    config = f"{Layout(opts.data_dir).tier_dir(tier.name)}/vllm.yaml"
    echo("start vLLM on the head (TP inside each host, PP across hosts, on this cluster):")
    echo("  " + rc.shell_line([f"{venv}/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--config", config],
                              env))
    return formed
