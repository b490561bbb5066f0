"""The replica router on one of the replica hosts (`fab router --host h1,h2 --on h1`): the
executor of rentstack.scale.router.HostRouterPlan.

On the router host, beside its own replica, the native runner's supervisor
(scripts/remote/supervise.sh, whatever the host's runner) keeps three kinds of process alive:
  - one OpenSSH client per other replica, forwarding a loopback port to that replica's front
    door; it logs in with a key pair made by fab for this alone, whose private half lives only
    on the router host (0600) and whose public half each other replica accepts for that one
    forward and nothing else (rentstack.scale.router.HostRouterPlan.authorized_keys_line);
  - vLLM's router on 127.0.0.1 (its admin routes have no auth), in its own venv;
  - a front door (the host's nginx, the same template as every front) on --bind:--router-port
    that asks for the replica set's key and forwards only /v1/*, /health and /metrics.
No replica port is published: each replica's front stays on its loopback. The router forwards
the client's Authorization header, so each replica's front checks the key again.

Plan, then act: everything is read first (every replica provisioned with the shared key and
healthy, the router host's ssh client), then steps whose goal already holds are skipped. A
failed run stops what it started and takes its key off the other replicas.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from rentstack.errors import RentstackError
from rentstack.remote import runners
from rentstack.remote.connection import Remote, free_local_port, tunnel_line
from rentstack.remote.facts import FRONT, command_fact, file_text_fact, parse_ok
from rentstack.remote.front import nginx_argv
from rentstack.remote.hosts import Auth, HostSpec, parse_host
from rentstack.remote.options import InputError, Options
from rentstack.remote.steps import RunReport, Step, check_exposure, run_steps
from rentstack.remote.steps import front as front_step
from rentstack.remote.steps import render as render_step
from rentstack.remote.steps import runtime as runtime_step
from rentstack.remote.steps import server as server_step
from rentstack.remote.steps.context import Ctx, HostIO, View, connect
from rentstack.render.front import front_files, key_map_text, native_front_values
from rentstack.render.secrets import METRICS_VAR, parse_api_key, parse_secret
from rentstack.safe import check_text
from rentstack.scale.router import ROUTER_REQUIREMENT, ROUTER_VERSION, HostRouterPlan, known_hosts_line
from rentstack.verify import ready_lines, smoke, smoke_line

ROUTER_DIR = "router"
"""Under the tier's deployment directory on the router host."""
STATE_FILE = "router.json"
FORWARD_WAIT_S = 60
ROUTER_WAIT_S = 120
"""vllm-router 0.1.17 waits --worker-startup-timeout-secs (5) for every replica and exits when one
is missing; its supervisor restarts it (2, 4, 8 ... s), so this covers a few rounds."""


# --------------------------------------------------------------------------- pure: paths, programs, files


@dataclass(frozen=True)
class Paths:
    """Where the router's files live on the router host."""

    dir: str

    @property
    def key(self) -> str:
        return f"{self.dir}/forward_key"

    @property
    def public_key(self) -> str:
        return f"{self.dir}/forward_key.pub"

    @property
    def known_hosts(self) -> str:
        return f"{self.dir}/known_hosts"

    @property
    def front_dir(self) -> str:
        return f"{self.dir}/front"

    @property
    def state(self) -> str:
        return f"{self.dir}/{STATE_FILE}"


def paths(ctx: Ctx) -> Paths:
    return Paths(f"{ctx.layout.tier_dir(ctx.tier.name)}/{ROUTER_DIR}")


def router_venv(ctx: Ctx) -> str:
    return ctx.layout.venv_named(f"vllm-router-{ROUTER_VERSION}")


def forward_slug(index: int) -> str:
    return f"router-forward{index}"


def programs(ctx: Ctx, plan: HostRouterPlan) -> tuple[runners.Program, ...]:
    """The router host's supervised processes, in start order: forwards, router, front."""
    p = paths(ctx)
    forwards = tuple(runners.Program(f"forward to {peer.label}", forward_slug(i),
                                     plan.forward_argv(peer, p.key, p.known_hosts))
                     for i, peer in enumerate(plan.peers, 1))
    router = runners.Program("router", "router", tuple(plan.router().argv(router_venv(ctx) + "/bin/python")))
    front = runners.Program("router front", "router-front", nginx_argv(f"{p.front_dir}/nginx.conf"),
                            (render_step.secrets_path(ctx),))
    return (*forwards, router, front)


def all_slugs(peer_count: int) -> tuple[str, ...]:
    return (*(forward_slug(i) for i in range(1, peer_count + 1)), "router", "router-front")


def files(ctx: Ctx, plan: HostRouterPlan, host_keys: dict[str, tuple[str, str]], *, njs: bool,
          key: str, metrics_token: str) -> dict[str, tuple[str, int]]:
    """Remote path -> (text, mode): the front's config, the pinned host keys, the state file
    `fab status` reads, and the supervisor (a compose host has none yet). ``host_keys``: peer
    label -> (key type, base64) as fab saw it."""
    p = paths(ctx)
    values = native_front_values(bind=plan.bind, port=plan.front_port, vllm_port=plan.router_port,
                                 front_dir=p.front_dir, log_dir=ctx.layout.log(ctx.tier.name).rsplit("/", 1)[0],
                                 tls=False, require_key=True, njs=njs, tier=f"router-{ctx.tier.name}")
    front = front_files(f"{ctx.tier.name} (replica router)", values,
                        key_map=None if njs else key_map_text(key, metrics_token))
    out = {f"{p.front_dir}/{name}": value for name, value in front.items()}
    known = [known_hosts_line(peer.host, peer.ssh_port, *host_keys[peer.label]) for peer in plan.peers]
    out[p.known_hosts] = ("\n".join(known) + "\n", 0o644)
    out[p.state] = (json.dumps(plan.state(ctx.label), indent=2) + "\n", 0o644)
    out[ctx.layout.supervisor] = (runners.SUPERVISOR_SCRIPT.read_text(), 0o755)
    return out


def _marker_pattern(marker: str) -> str:
    """A whole authorized_keys line that ends with the router's comment (grep -x -E)."""
    return shlex.quote(".* " + marker.replace(".", "\\.") + "$")


def authorized_keys_script(marker: str, line: str | None) -> str:
    """Rewrite ~/.ssh/authorized_keys without the router's old line (and with ``line``, if
    given), through a 0600 temp file renamed into place; every other line is kept as is."""
    add = f"printf '%s\\n' {shlex.quote(line)}; " if line else ""
    return ('set -e; umask 077; mkdir -p "$HOME/.ssh"; f="$HOME/.ssh/authorized_keys"; touch "$f"; '
            f'{{ grep -v -x -E {_marker_pattern(marker)} "$f" || true; {add}}} > "$f.rentstack-tmp"; '
            'mv -f "$f.rentstack-tmp" "$f"')


def marker_lines_command(marker: str) -> str:
    """Prints the router's line(s) in ~/.ssh/authorized_keys."""
    return f'grep -x -E {_marker_pattern(marker)} "$HOME/.ssh/authorized_keys" 2>/dev/null; true'


def new_key_pair(comment: str) -> tuple[bytes, str]:
    """An Ed25519 pair made here: (OpenSSH private key PEM, public key line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode()} {comment}\n"


def probe_host(bind: str) -> str:
    """Where the router host itself reaches the front: loopback unless bound to one other address."""
    address = ipaddress.ip_address(bind)
    if address.is_unspecified or address.is_loopback:
        return "::1" if address.version == 6 and address.is_loopback else "127.0.0.1"
    return bind


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class Request:
    """`fab router --on` as validated before connecting."""

    router: HostSpec
    peers: tuple[tuple[HostSpec, HostSpec], ...]
    """(as in --host, as the router host reaches it) for every other replica, in --host order."""
    front_port: int
    policy: str


def resolve(specs: list[HostSpec], on: str, opts: Options, *, router_port: int, peer_ssh: str,
            policy: str) -> Request:
    """--on must name one of --host; --peer-ssh gives one address per other host. Bad input is an
    InputError (one line, exit 2) before anything connects."""
    labels = [s.label for s in specs]
    try:
        check_text("--on", on)
        check_text("--peer-ssh", peer_ssh)
    except RentstackError as exc:
        raise InputError(str(exc)) from None
    try:
        chosen = parse_host(on)
    except RentstackError as exc:
        raise InputError(f"--on {on!r}: {exc}") from None
    if chosen.label not in labels:
        raise InputError(f"--on {on!r} is not one of --host ({', '.join(labels)}): name the host the router "
                         "runs on as written in --host")
    others = [s for s in specs if s.label != chosen.label]
    if peer_ssh:
        try:
            reach = [parse_host(word) for word in peer_ssh.split(",") if word.strip()]
        except RentstackError as exc:
            raise InputError(f"--peer-ssh {peer_ssh!r}: {exc}") from None
        if len(reach) != len(others):
            raise InputError(f"--peer-ssh lists {len(reach)} address(es) for {len(others)} other host(s) "
                             f"({', '.join(s.label for s in others)}): give one each, in --host order")
    else:
        reach = others
    front_port = router_port or opts.port + 1
    try:
        HostRouterPlan.build(tier=opts.tier, replica_port=opts.port, front_port=front_port, policy=policy,
                             bind=opts.bind, peers=[(o.label, r.user, r.host, r.port) for o, r in zip(others, reach)])
    except RentstackError as exc:
        raise InputError(str(exc)) from None
    return Request(router=chosen, peers=tuple(zip(others, reach)), front_port=front_port, policy=policy)


# --------------------------------------------------------------------------- act


@dataclass
class Site:
    """One connected replica: its context and host, and the host key fab saw."""

    remote: Remote
    ctx: Ctx
    host: HostIO

    @property
    def host_key(self) -> tuple[str, str]:
        key = self.remote.conn.transport.get_remote_server_key()
        return key.get_name(), key.get_base64()


def _plan(req: Request, opts: Options) -> HostRouterPlan:
    return HostRouterPlan.build(tier=opts.tier, replica_port=opts.port, front_port=req.front_port,
                                policy=req.policy, bind=opts.bind,
                                peers=[(o.label, r.user, r.host, r.port) for o, r in req.peers])


def _precheck(router: Site, peers: list[Site], key: str, plan: HostRouterPlan) -> None:
    """Reads only: every replica serves the tier with the set's key and is healthy; the router
    host has an ssh client; the front would not go out over plain HTTP unasked."""
    check_exposure(replace(router.ctx, opts=replace(router.ctx.opts, port=plan.front_port)))
    for site in (router, *peers):
        view = site.host.view()
        label, tier = site.ctx.label, site.ctx.tier.name
        if render_step.api_key(site.ctx, view) != key:
            raise RentstackError(f"{label} does not serve tier {tier} with the replica set's key: run "
                                 f"`fab provision --host ... --tier {tier} --replicas` with every host first")
        if not (server_step.running(site.ctx, view) and server_step.healthy(site.ctx, view)):
            raise RentstackError(f"{label}: tier {tier} is not healthy on 127.0.0.1:{site.ctx.opts.port} "
                                 f"(vllm-router {ROUTER_VERSION} starts only when every replica answers): "
                                 f"`fab status --host {label}`, then `fab up --host {label}`")
    if not router.host.view().read(command_fact("ssh_client", "command -v ssh >/dev/null", parse_ok)):
        raise RentstackError(f"{router.ctx.label} has no ssh client for the forwards to the other replicas: "
                             "apt-get install openssh-client there")


def _digest(rendered: dict[str, tuple[str, int]], progs: tuple[runners.Program, ...]) -> str:
    text = json.dumps({"files": {p: hashlib.sha256(t.encode()).hexdigest() for p, (t, _) in sorted(rendered.items())},
                       "argv": [list(p.argv) for p in progs]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _state_key(ctx: Ctx) -> str:
    return ctx.key("router")


def _old_peer_count(ctx: Ctx, view: View) -> int:
    text = view.read(file_text_fact(paths(ctx).state)) or ""
    try:
        return len(json.loads(text).get("peers", []))
    except (ValueError, AttributeError):
        return 0


def _running_all(ctx: Ctx, view: View, progs: tuple[runners.Program, ...]) -> bool:
    command = " && ".join(runners.native_running(ctx.layout, ctx.tier.name, p.slug) for p in progs)
    return view.read(command_fact("router_running", command, parse_ok))


def _front_healthy(plan: HostRouterPlan, view: View) -> bool:
    return view.read(command_fact("router_health", runners.health_probe(plan.front_port, probe_host(plan.bind)), parse_ok))


def _stop_command(ctx: Ctx, peer_count: int) -> str:
    return runners.native_stop(ctx.layout, ctx.tier.name, all_slugs(peer_count))


def start_steps(router: Site, peers: list[Site], plan: HostRouterPlan, key: str, wheels_source: Callable) -> list[Step]:
    ctx = router.ctx
    p = paths(ctx)
    venv = router_venv(ctx)
    progs = programs(ctx, plan)
    host_keys = {site.ctx.label: site.host_key for site in peers}

    def rendered(view: View) -> dict[str, tuple[str, int]]:
        token = parse_secret(view.read(file_text_fact(render_step.secrets_path(ctx))) or "", METRICS_VAR) or ""
        # the host's own nginx runs this front whatever the runner: its njs, not the image's
        return files(ctx, plan, host_keys, njs=view.read(FRONT).njs_usable, key=key, metrics_token=token)

    # 1. the router's venv
    def venv_check(view: View) -> str | None:
        marker = view.read(command_fact("router_venv", runners.venv_marker_check(venv), lambda out, code:
                                        out.strip() if code == 0 else None))
        return f"{ROUTER_REQUIREMENT} present in {venv} — skipped" if marker == ROUTER_REQUIREMENT else None

    def venv_act(host: HostIO) -> str:
        source = wheels_source(host.view())
        host.check(runners.pip_venv_install(venv, (ROUTER_REQUIREMENT,), source, ROUTER_REQUIREMENT),
                   f"installing {ROUTER_REQUIREMENT} into {venv}", timeout=1800)
        return f"installed {ROUTER_REQUIREMENT} into {venv} " + (f"from {source}" if source else "from the package index")

    # 3. the forwarding key pair
    def key_check(view: View) -> str | None:
        public = view.read(file_text_fact(p.public_key))
        present = view.read(command_fact("router_key", f"test -f {shlex.quote(p.key)}", parse_ok))
        return f"forwarding key present ({p.key}, 0600) — skipped" if public and present else None

    def key_act(host: HostIO) -> str:
        private, public = new_key_pair(plan.marker)
        host.remote.put_bytes(p.key, private, 0o600)
        host.write(p.public_key, public, 0o644)
        return f"made an Ed25519 key pair for the forwards; private half only here ({p.key}, 0600)"

    steps = [Step("router: venv", f"install {ROUTER_REQUIREMENT} into {venv}", venv_act, venv_check),
             front_step.step(ctx),
             Step("router: key", "make the key pair the forwards log in with (private half 0600, this host only)",
                  key_act, key_check)]

    # 4. each other replica accepts that key for one forward
    for index, site in enumerate(peers, 1):
        steps.append(_peer_step(index, site, plan, p, router))

    # 5. files
    def files_check(view: View) -> str | None:
        todo = render_step.changed(rendered(view), view)
        return None if todo else f"router files unchanged in {p.dir} — skipped"

    def files_act(host: HostIO) -> str:
        want = rendered(host.view())
        todo = render_step.changed(want, host.view())
        for path in todo:
            text, mode = want[path]
            host.write(path, text, mode)
        return "uploaded " + ", ".join(path.rsplit("/", 1)[1] for path in todo)

    steps.append(Step("router: files", "render the router's front door, the pinned host keys and its state file",
                      files_act, files_check))

    # 6. the supervised processes
    def start_check(view: View) -> str | None:
        if (view.done(_state_key(ctx), _digest(rendered(view), progs)) and _running_all(ctx, view, progs)
                and _front_healthy(plan, view)):
            return (f"router running with this configuration, front door healthy on {plan.bind}:{plan.front_port} "
                    "— skipped")
        return None

    def start_act(host: HostIO) -> str:
        view = host.view()
        digest = _digest(rendered(view), progs)
        host.forget(_state_key(ctx))
        host.run(_stop_command(ctx, max(_old_peer_count(ctx, view), len(plan.peers))))
        forwards, rest = progs[:len(plan.peers)], progs[len(plan.peers):]
        for program in forwards:
            host.check(runners.native_start(ctx.layout, ctx.tier.name, program), f"starting the {program.name}")
        # The router gives every replica 5 s at start: let the forwards carry /health first.
        for peer, program in zip(plan.peers, forwards):
            code, _ = host.run(runners.native_wait(ctx.layout, ctx.tier.name, peer.forward_port, FORWARD_WAIT_S,
                                                   (program,)), timeout=FORWARD_WAIT_S + 30)
            if code:
                tail = host.run(f"tail -n 5 {shlex.quote(ctx.layout.log(ctx.tier.name, program.slug))}")[1]
                why = {4: "its supervisor died", 5: "ssh exited 3 times"}.get(code, f"within {FORWARD_WAIT_S} s")
                raise RentstackError(f"the SSH forward to {peer.label} ({peer.user}@{peer.host}:{peer.ssh_port}) "
                                     f"did not carry /health ({why}); its log: "
                                     f"{' / '.join(tail.strip().splitlines()[-3:]) or 'empty'}")
        for program in rest:
            host.check(runners.native_start(ctx.layout, ctx.tier.name, program), f"starting the {program.name}")
        wait = runners.native_wait(ctx.layout, ctx.tier.name, plan.router_port, ROUTER_WAIT_S, progs)
        code, _ = host.run(wait, timeout=ROUTER_WAIT_S + 30)
        if code == 0 and not _front_healthy(plan, host.view()):
            code = 6
        if code:
            why = {1: f"no answer on /health within {ROUTER_WAIT_S} s", 4: "a supervisor died",
                   5: "a process crashed 3 times", 6: "the router answers but its front door does not"}.get(code,
                                                                                                      f"exit {code}")
            tail = host.run(f"tail -n 4 {shlex.quote(ctx.layout.log(ctx.tier.name, 'router'))} "
                            f"{shlex.quote(ctx.layout.log(ctx.tier.name, 'router-front'))} 2>/dev/null")[1]
            raise RentstackError(f"the router did not come up ({why}); last log lines: "
                                 f"{' / '.join(l for l in tail.strip().splitlines()[-4:] if l.strip())}")
        return host.record(_state_key(ctx), digest,
                           f"router on 127.0.0.1:{plan.router_port} over {1 + len(plan.peers)} replicas, "
                           f"front door on {plan.bind}:{plan.front_port}")

    steps.append(Step("router: start", f"start {len(plan.peers)} SSH forward(s), the router and its front door under "
                                       "the supervisor; wait for /health", start_act, start_check))
    return steps


def _peer_step(index: int, site: Site, plan: HostRouterPlan, p: Paths, router: Site) -> Step:
    """One other replica accepts the router host's key for its one forward."""
    lines_fact = command_fact("router_authorized", marker_lines_command(plan.marker), lambda out, code: out)

    def wanted(view: View) -> str | None:
        public = view.read(file_text_fact(p.public_key))
        return plan.authorized_keys_line(public) if public else None

    def check(view: View) -> str | None:
        line = wanted(view)
        have = site.host.view().read(lines_fact).strip().splitlines()
        if line is not None and have == [line]:
            return f"{site.ctx.label} accepts the router's key for 127.0.0.1:{plan.replica_port} only — skipped"
        return None

    def act(host: HostIO) -> str:
        line = wanted(host.view())
        if line is None:
            raise RentstackError(f"the forwarding key is missing on {router.ctx.label}")
        site.host.check(authorized_keys_script(plan.marker, line), "adding the router's key to authorized_keys")
        return f"{site.ctx.label} accepts the router's key (restrict, forward to 127.0.0.1:{plan.replica_port} only)"

    return Step(f"router: peer{index}",
                f"let {site.ctx.label} accept the router's key for one forward to its front door, nothing else",
                act, check)


def stop_steps(router: Site, peers: list[Site], plan: HostRouterPlan) -> list[Step]:
    """`--stop`: the router's processes, its key on the other replicas, the key pair; the venv stays."""
    ctx = router.ctx
    p = paths(ctx)

    def running_any(view: View, count: int) -> bool:
        command = " || ".join(f"{{ {runners.native_running(ctx.layout, ctx.tier.name, s)}; }}" for s in all_slugs(count))
        return view.read(command_fact("router_any", command, parse_ok))

    def stop_check(view: View) -> str | None:
        count = max(_old_peer_count(ctx, view), len(plan.peers))
        if not running_any(view, count) and view.read(file_text_fact(p.state)) is None:
            return "router not running — skipped"
        return None

    def stop_act(host: HostIO) -> str:
        count = max(_old_peer_count(ctx, host.view()), len(plan.peers))
        _, out = host.run(_stop_command(ctx, count))
        host.run(f"rm -f {shlex.quote(p.state)}")
        host.forget(_state_key(ctx))
        return f"stopped the forwards, the router and its front door ({' '.join(out.split()).count('stopped')} running)"

    steps = [Step("router: stop", "stop the router, its front door and the SSH forwards", stop_act, stop_check)]
    lines_fact = command_fact("router_authorized", marker_lines_command(plan.marker), lambda out, code: out)
    for index, site in enumerate(peers, 1):
        def check(view: View, site: Site = site) -> str | None:
            return None if site.host.view().read(lines_fact).strip() else f"{site.ctx.label} has no router key — skipped"

        def act(host: HostIO, site: Site = site) -> str:
            site.host.check(authorized_keys_script(plan.marker, None), "removing the router's key from authorized_keys")
            return f"{site.ctx.label} no longer accepts the router's key"

        steps.append(Step(f"router: peer{index}", f"take the router's key off {site.ctx.label}", act, check))

    def key_check(view: View) -> str | None:
        gone = not view.read(command_fact("router_key_any", f"test -e {shlex.quote(p.key)} -o -e "
                                          f"{shlex.quote(p.public_key)}", parse_ok))
        return "no forwarding key — skipped" if gone else None

    def key_act(host: HostIO) -> str:
        host.check(f"rm -f {shlex.quote(p.key)} {shlex.quote(p.public_key)}", "removing the forwarding key")
        return "removed the forwarding key pair"

    steps.append(Step("router: key", "remove the forwarding key pair", key_act, key_check))
    return steps


def _rollback(router: Site, peers: list[Site], plan: HostRouterPlan, echo: Callable[[str], None]) -> None:
    """After a failed start: stop what runs and take the key off the peers (venv and nginx stay,
    as a failed provision keeps its venv)."""
    for step in stop_steps(router, peers, plan):
        with contextlib.suppress(RentstackError):
            if step.check(router.host.view()) is None:
                echo(f"  [undo] {step.name}: {step.act(router.host)}")


def run(specs: list[HostSpec], auth: Auth, opts: Options, req: Request, *, key_file: Path, model_name: str,
        dry_run: bool = False, stop: bool = False, local_port: int = 0, echo: Callable[[str], None] = print) -> bool:
    """Start (or, with ``stop``, stop) the router on ``req.router``; True when all went well."""
    key = parse_api_key(key_file.read_text()) or ""
    plan = _plan(req, opts)
    order = [req.router, *(o for o, _ in req.peers)]
    with contextlib.ExitStack() as stack:
        sites = []
        for spec in order:
            remote = stack.enter_context(Remote(spec, auth))
            ctx, host = connect(remote, opts)
            sites.append(Site(remote, ctx, host))
        router, peers = sites[0], sites[1:]
        echo(f"router on {router.ctx.label}: front door {plan.bind}:{plan.front_port}, router 127.0.0.1:{plan.router_port}, "
             f"{len(peers)} SSH forward(s)" + (" — dry run, nothing changes" if dry_run else ""))
        if stop:
            steps = stop_steps(router, peers, plan)
        else:
            _precheck(router, peers, key, plan)
            steps = start_steps(router, peers, plan, key, lambda view: runtime_step.wheels(router.ctx, view))
        report = run_steps(steps, RunReport(router.ctx.label), router.host, dry_run=dry_run, echo=echo)
        if report.error:
            if not stop and report.changed:
                _rollback(router, peers, plan, echo)
            raise RentstackError(report.error)
        if stop or dry_run:
            return True
        _verify(router, plan, key, model_name, key_file, local_port or plan.front_port, echo)
    return True


def _verify(router: Site, plan: HostRouterPlan, key: str, model: str, key_file: Path, local_port: int,
            echo: Callable[[str], None]) -> None:
    with router.remote.tunnel(free_local_port(), plan.front_port, probe_host(plan.bind)) as url:
        result = smoke(url, key, model)
    echo(smoke_line(result, ", through an SSH tunnel to the router's front door"))
    echo(f"router: {1 + len(plan.peers)} replicas ({router.ctx.label} on 127.0.0.1:{plan.replica_port}"
         + "".join(f", {p.label} through 127.0.0.1:{p.forward_port}" for p in plan.peers)
         + f"), policy {plan.policy}; logs in {router.ctx.layout.log(router.ctx.tier.name, 'router').rsplit('/', 1)[0]}")
    for line in ready_lines(f"http://127.0.0.1:{local_port}", model, str(key_file), " through the tunnel below"):
        echo(line)
    echo(f"tunnel: {tunnel_line(router.ctx.spec, local_port, plan.front_port)}  then http://127.0.0.1:{local_port}/v1 here")


# --------------------------------------------------------------------------- fab status


def status_lines(ctx: Ctx, view: View) -> tuple[bool, list[str]]:
    """(healthy, lines) for `fab status` on a host that runs the router; (True, []) elsewhere."""
    text = view.read(file_text_fact(paths(ctx).state))
    if not text:
        return True, []
    try:
        state = json.loads(text)
        peers = state["peers"]
        bind, front = state["bind"], int(state["front_port"])
    except (ValueError, KeyError, TypeError):
        return False, [f"  router: state file {paths(ctx).state} is unreadable; `fab router ... --on` again"]
    lines = []
    alive = {}
    for slug in all_slugs(len(peers)):
        alive[slug] = view.read(command_fact("router_running", runners.native_running(ctx.layout, ctx.tier.name, slug),
                                             parse_ok))
    healthy = alive["router"] and alive["router-front"] and view.read(
        command_fact("router_health", runners.health_probe(front, probe_host(bind)), parse_ok))
    lines.append(f"  router: {'healthy' if healthy else 'running, not healthy' if alive['router'] else 'not running'}; "
                 f"front door {bind}:{front} over {1 + len(peers)} replicas, policy {state.get('policy')}")
    for i, peer in enumerate(peers, 1):
        lines.append(f"  forward to {peer['label']} ({peer['ssh']} -> 127.0.0.1:{peer['forward_port']}): "
                     f"{'running' if alive[forward_slug(i)] else 'not running'}")
    return bool(healthy) and all(alive.values()), lines
