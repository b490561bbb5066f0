"""Replicas behind one endpoint, for real: two SSH hosts each serving the CPU tier (native runner,
real vLLM), provisioned with one shared key, and vLLM's real router on this machine over SSH
tunnels. Requests spread over both; one replica's server killed -> requests keep succeeding on
the other; it comes back and takes requests again."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from replica_probe import DATA, REPLICA_PORT, chat as _chat, kill_vllm, replica_hosts, served as _served

from rentstack.commands._common import REPO
from rentstack.remote.connection import free_local_port
from rentstack.render.secrets import parse_api_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PORT = REPLICA_PORT


def _hosts(ray_hosts) -> str:
    return replica_hosts(ray_hosts)


def test_replicas_share_one_key(replicas, connect):
    key_file = REPO / ".rentstack" / "hosts" / "replicas-cpu" / "secrets.env"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    key = parse_api_key(key_file.read_text())
    for name in ("head", "worker"):
        text = connect(name).check(f"cat {DATA}/.rentstack/deploy/cpu/secrets.env", "read key")
        assert parse_api_key(text) == key
    assert key not in replicas.stdout + replicas.stderr


def test_router_spreads_survives_a_dead_replica_and_takes_it_back(replicas, ray_hosts, connect):
    from rentstack.remote.cluster import ClusterHost

    key = parse_api_key((REPO / ".rentstack/hosts/replicas-cpu/secrets.env").read_text())
    head, worker = ClusterHost(connect("head"), ""), ClusterHost(connect("worker"), "")
    local = free_local_port()
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/fab"), "router", "--host", _hosts(ray_hosts), "--tier", "cpu", "--port", str(PORT),
         "--local-port", str(local), "--policy", "round_robin", "--seconds", "900", "--key", str(ray_hosts["key"])],
        cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        # Ctrl-C as in a terminal: a test run started in the background (nohup ... &) passes SIGINT
        # down as ignored, and Python then never raises KeyboardInterrupt in fab.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    url = f"http://127.0.0.1:{local}"
    try:
        deadline = time.monotonic() + 120
        seen = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if line.startswith("ready:") or proc.poll() is not None:
                break
        assert any(l.startswith("ready:") for l in seen), "".join(seen)
        assert key not in "".join(seen)

        before = {"head": _served(head), "worker": _served(worker)}
        assert all(_chat(url, key, f"question {i}") == 200 for i in range(6))
        after = {"head": _served(head), "worker": _served(worker)}
        assert after["head"] > before["head"] and after["worker"] > before["worker"], (before, after)
        # The key is checked by the replicas behind the router.
        assert _chat(url, None, "no key") == 401
        assert _chat(url, "wrong-key", "wrong key") == 401

        # One replica's server dies: every request still succeeds, on the other.
        kill_vllm(worker)
        assert [_chat(url, key, f"during outage {i}") for i in range(6)] == [200] * 6

        # The supervisor restarts it; the router's health check takes it back.
        mark = _served(worker)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert _chat(url, key, "after restart") == 200
            if _served(worker) > mark:
                break
            time.sleep(3)
        assert _served(worker) > mark, "the restarted replica never took a request again"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    # Nothing of the router is left running on this machine: its port is closed.
    import socket
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", local), timeout=2).close()
