"""A real Ray cluster over two SSH hosts: formed on the private network, firewalled, checked with
`ray status`; a worker that cannot join and missing GPUs each end with one line and no Ray left
running. (vLLM's CPU build refuses the Ray executor, so vLLM itself is not started on it here.)"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from rentstack.errors import RentstackError
from rentstack.remote.cluster import ClusterHost, form_cluster, stop_ray
from rentstack.scale.ray_cluster import RAY_PORTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]
VENV = "/root/autodl-tmp/.rentstack/ray-venv"


def _hosts(connect):
    return ClusterHost(connect("head"), VENV), ClusterHost(connect("worker"), VENV)


def _ray_processes(host: ClusterHost) -> str:
    return host.remote.run("ps -eo comm= | grep -E '^(raylet|gcs_server)$' || true")[1].strip()


def _can_connect(host: ClusterHost, address: str, port: int) -> bool:
    return host.remote.run(f"nc -z -w 2 {address} {port}")[0] == 0


def test_cluster_forms_on_the_private_network(connect, ray_hosts):
    head, worker = _hosts(connect)
    lines: list[str] = []
    try:
        formed = form_cluster(head, [worker], head_address=ray_hosts["private"]["head"], gpus_per_host=0,
                              token=secrets.token_hex(32), log=lines.append)
        assert formed.status.active_nodes == 2
        assert formed.status.cpus >= 2
        # The interface is the one routed to the head, not the first NIC.
        assert formed.routes[head.label].src == ray_hosts["private"]["head"]
        assert formed.routes[worker.label].src == ray_hosts["private"]["worker"]
        private_dev = worker.remote.check("ip -o -4 addr show to 10.77.0.3 | awk '{print $2}'", "ip").strip()
        assert formed.routes[worker.label].dev == private_dev
        # Both Ray nodes registered with their private address.
        code, out = head.remote.run(
            f"RAY_AUTH_MODE=token {VENV}/bin/python -c \"import ray; ray.init(address='auto', logging_level='error'); "
            "print(sorted(n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']))\"")
        assert code == 0, out
        assert "['10.77.0.2', '10.77.0.3']" in out
        # Golden capture for the parser (tests/golden/scale/), refreshed with RS_CAPTURE_GOLDEN=1.
        raw = head.remote.run(f"RAY_AUTH_MODE=token {VENV}/bin/ray status --address={ray_hosts['private']['head']}:6379")[1]
        if os.environ.get("RS_CAPTURE_GOLDEN"):
            (Path(__file__).parents[2] / "golden/scale/ray-status.ray-2.60.0.2-nodes.txt").write_text(raw)
        # Ray's GCS port answers on the private network and not on the public one.
        assert formed.firewalled == {head.label: True, worker.label: True}
        assert _can_connect(worker, ray_hosts["private"]["head"], RAY_PORTS["port"])
        assert not _can_connect(worker, ray_hosts["public"]["head"], RAY_PORTS["port"])
        # The auth token is the host's secret: mode 0600.
        assert head.remote.check("stat -c %a /root/.ray/auth_token", "stat").strip() == "600"
        # A re-run keeps the installed Ray.
        again: list[str] = []
        form_cluster(head, [worker], head_address=ray_hosts["private"]["head"], gpus_per_host=0,
                     token=secrets.token_hex(32), log=again.append)
        assert any("present — skipped" in line for line in again)
    finally:
        stop_ray([head, worker])


def test_missing_gpus_is_one_line_and_nothing_left_running(connect, ray_hosts):
    head, worker = _hosts(connect)
    with pytest.raises(RentstackError) as err:
        form_cluster(head, [worker], head_address=ray_hosts["private"]["head"], gpus_per_host=4,
                     token=secrets.token_hex(32), log=lambda _: None)
    message = str(err.value)
    assert "\n" not in message
    assert "0 GPUs on 2 hosts; the plan needs 8" in message
    assert _ray_processes(head) == "" and _ray_processes(worker) == ""


def test_worker_that_cannot_reach_the_head_fails_clearly(connect, ray_hosts):
    head, worker = _hosts(connect)
    # The head's public address is not an address the head owns on its private network side,
    # and the firewall keeps Ray off it: give a head address the worker has no route to.
    with pytest.raises(RentstackError) as err:
        form_cluster(head, [worker], head_address="10.99.0.1", gpus_per_host=0,
                     token=secrets.token_hex(32), log=lambda _: None)
    assert "not an address of the head host" in str(err.value)
    assert _ray_processes(head) == "" and _ray_processes(worker) == ""


def test_worker_with_a_wrong_token_does_not_join(connect, ray_hosts):
    """Ray's token auth (RAY_AUTH_MODE=token) is what keeps a stranger on the network out."""
    from rentstack.remote.cluster import ray_status
    from rentstack.scale import ray_cluster as rc

    head, worker = _hosts(connect)
    head_ip = ray_hosts["private"]["head"]
    try:
        form_cluster(head, [], head_address=head_ip, gpus_per_host=0, token=secrets.token_hex(32),
                     log=lambda _: None)
        dev = worker.remote.check("ip -o -4 addr show to 10.77.0.3 | awk '{print $2}'", "ip").strip()
        route = rc.Route(dev=dev, src=ray_hosts["private"]["worker"])
        worker.remote.write("/root/.ray/auth_token", secrets.token_hex(32), mode=0o600)
        worker.remote.run(rc.shell_line(rc.worker_argv(worker.ray, route, head_ip), rc.ray_env(route)),
                          timeout=120)
        status = ray_status(head, head_ip, rc.ray_env(rc.Route(dev="lo", src=head_ip)))
        assert status.active_nodes == 1
    finally:
        stop_ray([head, worker])


def test_fab_ray_on_hosts_without_gpus_is_one_line_and_leaves_nothing(connect, ray_hosts):
    """The multi-host tier through the real `fab ray`: the cluster forms, the GPU check refuses it
    (these hosts have none), exit 1 with one line, Ray stopped on both hosts."""
    import subprocess

    from rentstack.commands._common import REPO

    proc = subprocess.run(
        [str(REPO / ".venv/bin/fab"), "ray", "--host", f"{ray_hosts['head']},{ray_hosts['worker']}",
         "--tier", "4090x4x2", "--head-ip", ray_hosts["private"]["head"], "--data-dir", "/root/autodl-tmp",
         "--key", str(ray_hosts["key"])], cwd=REPO, text=True, capture_output=True, timeout=900)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert errors == ["error: ray status shows 0 GPUs on 2 hosts; the plan needs 8 (4 per host): boot every "
                      "instance with its GPUs, then rerun"], proc.stderr
    assert "private interface" in proc.stdout        # the interface choice was shown
    head, worker = _hosts(connect)
    assert _ray_processes(head) == "" and _ray_processes(worker) == ""
    token = REPO / ".rentstack/hosts/ray-4090x4x2/ray_token"
    assert oct(token.stat().st_mode & 0o777) == "0o600"
