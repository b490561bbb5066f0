"""The replica router on one of the hosts, for real: `fab router --on head` over the two SSH
test hosts (each serving the CPU tier with real vLLM). The router, its front door and the SSH
forward to the worker run under the native supervisor on the head; this machine reaches the
front only through an SSH tunnel. No key -> 401; with the key requests spread over both
replicas; the worker's vLLM killed -> requests keep succeeding; it comes back and takes
requests again; the forwarding key can do nothing on the worker but its one forward."""

from __future__ import annotations

import re
import time

import pytest
from integration.remote.fab_report import step_lines
from replica_probe import DATA, REPLICA_PORT, chat, kill_vllm, replica_hosts, served

from rentstack.commands._common import REPO
from rentstack.remote.connection import free_local_port
from rentstack.render.secrets import parse_api_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FRONT = REPLICA_PORT + 1                      # the router's front door on the head (the default)
ROUTER = FRONT + 10000                        # the router itself, loopback
FORWARD = ROUTER + 2                          # the head's forward to the worker's front door
ROUTER_DIR = f"{DATA}/.rentstack/deploy/cpu/router"


def _router_args(ray_hosts) -> list[str]:
    return ["router", "--host", replica_hosts(ray_hosts), "--tier", "cpu", "--port", str(REPLICA_PORT),
            "--data-dir", DATA, "--on", ray_hosts["head"], "--policy", "round_robin",
            # the head reaches the worker's sshd on the private network; pip there has no index
            "--peer-ssh", f"root@{ray_hosts['private']['worker']}:22", "--wheels", "/root/router-wheels"]


def _listeners(remote) -> str:  # noqa: ANN001
    return remote.check("ss -ltnH", "list listeners")


def test_router_on_the_head(replicas, ray_hosts, fab_scale, connect):
    from rentstack.remote.cluster import ClusterHost

    key = parse_api_key((REPO / ".rentstack/hosts/replicas-cpu/secrets.env").read_text())
    args = _router_args(ray_hosts)
    head, worker = connect("head"), connect("worker")

    # Bad input: one line, exit 2, before connecting.
    bad = fab_scale("router", "--host", replica_hosts(ray_hosts), "--on", "root@127.0.0.1:1")
    assert bad.returncode == 2 and "is not one of --host" in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1

    # Dry run: the plan, nothing started.
    dry = fab_scale(*args, "--dry-run")
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-2000:]
    plan = step_lines(dry.stdout)
    assert plan["router: start"].startswith("plan|"), dry.stdout
    assert plan["router: peer1"].startswith("plan|"), dry.stdout
    assert head.run(f"test -e {DATA}/.rentstack/run/router-cpu.pid")[0] != 0

    started = time.monotonic()
    first = fab_scale(*args)
    took = time.monotonic() - started
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-4000:]
    steps = step_lines(first.stdout)
    assert all(steps[name].startswith("ok|") for name in
               ("router: venv", "router: key", "router: peer1", "router: files", "router: start")), first.stdout
    assert "smoke: " in first.stdout
    assert re.search(rf"tunnel: ssh -CNg -L {FRONT}:127\.0\.0\.1:{FRONT} -p 22211 root@127\.0\.0\.1", first.stdout)
    assert key not in out
    print(f"fab router --on head, first run: {took:.1f} s")

    # Re-run: every step's goal holds.
    again = fab_scale(*args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert all(v.startswith("skip|") for k, v in step_lines(again.stdout).items() if k.startswith("router")), again.stdout

    # fab status shows it.
    status = fab_scale("status", "--host", ray_hosts["head"], "--tier", "cpu", "--port", str(REPLICA_PORT),
                       "--data-dir", DATA)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"router: healthy; front door 127.0.0.1:{FRONT} over 2 replicas" in status.stdout, status.stdout
    assert re.search(r"forward to root@127\.0\.0\.1:22212 \(root@10\.77\.0\.3:22 -> 127\.0\.0\.1:\d+\): running",
                     status.stdout), status.stdout

    # Nothing of it listens beyond loopback; the worker publishes nothing new.
    for port in (FRONT, ROUTER, ROUTER + 1, FORWARD):
        assert re.search(rf"\s127\.0\.0\.1:{port}\s", _listeners(head)), (port, _listeners(head))
    assert not re.search(rf"\s(0\.0\.0\.0|\*|\[::\]|172\.30\.0\.2|10\.77\.0\.2):({FRONT}|{ROUTER}|{ROUTER + 1}|{FORWARD})\s",
                         _listeners(head))
    assert not re.search(rf"\s(0\.0\.0\.0|\*|\[::\]|172\.30\.0\.3|10\.77\.0\.3):{REPLICA_PORT}\s", _listeners(worker))

    # The forwarding key: 0600 on the head only; on the worker it opens one forward, nothing else.
    assert head.check(f"stat -c %a {ROUTER_DIR}/forward_key", "key mode").strip() == "600"
    assert worker.run(f"ls {ROUTER_DIR}/forward_key")[0] != 0
    line = worker.check("grep rentstack-router-cpu /root/.ssh/authorized_keys", "authorized_keys").strip()
    assert line.startswith(f'restrict,port-forwarding,permitopen="127.0.0.1:{REPLICA_PORT}",'
                           'permitlisten="127.0.0.1:1",command="/bin/false" ssh-ed25519 ')
    ssh = (f"ssh -F /dev/null -i {ROUTER_DIR}/forward_key -o IdentitiesOnly=yes -o BatchMode=yes "
           f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={ROUTER_DIR}/known_hosts root@10.77.0.3")
    code, text = head.run(f"{ssh} 'touch /tmp/router-key-ran; true'", timeout=30)
    assert code != 0, text
    assert worker.run("test -e /tmp/router-key-ran")[0] != 0
    code, text = head.run(f"timeout 20 {ssh} -W 127.0.0.1:22 </dev/null", timeout=30)
    assert code != 0 and "prohibited" in text, text
    # nor a listener on the worker (-R): port-forwarding alone would allow one on any loopback port
    code, text = head.run(f"timeout 20 {ssh} -N -o ExitOnForwardFailure=yes -R 127.0.0.1:7300:127.0.0.1:22 "
                          "</dev/null", timeout=30)
    assert code != 0 and "forwarding failed" in text, text
    assert not re.search(r"127\.0\.0\.1:7300\s", _listeners(worker))

    # From this machine, through an SSH tunnel to the head's router front door.
    h, w = ClusterHost(head, ""), ClusterHost(worker, "")
    with head.tunnel(free_local_port(), FRONT) as url:
        assert chat(url, None, "no key") == 401
        assert chat(url, "wrong-key", "wrong key") == 401
        import urllib.error
        import urllib.request
        for path in ("/add_worker?url=http://127.0.0.1:9", "/flush_cache"):
            req = urllib.request.Request(url + path, data=b"", method="POST",
                                         headers={"Authorization": f"Bearer {key}"})
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=10)
            assert err.value.code == 404, path       # the router's admin routes are not let through

        before = {"head": served(h), "worker": served(w)}
        assert [chat(url, key, f"question {i}") for i in range(8)] == [200] * 8
        after = {"head": served(h), "worker": served(w)}
        spread = {k: after[k] - before[k] for k in after}
        print(f"8 requests through the head's router: {spread}")
        assert spread["head"] > 0 and spread["worker"] > 0, spread

        kill_vllm(w)
        killed = time.monotonic()
        outage = [chat(url, key, f"during outage {i}") for i in range(6)]
        assert outage == [200] * 6, outage

        mark = served(w)
        deadline = time.monotonic() + 300
        back = None
        while time.monotonic() < deadline:
            assert chat(url, key, "after restart") == 200
            if served(w) > mark:
                back = time.monotonic()
                break
            time.sleep(3)
        assert back is not None, "the restarted worker never took a request through the head's router again"
        print(f"worker's vLLM killed: 6/6 requests answered meanwhile; it took requests again after "
              f"{back - killed:.0f} s")

    # The key reached no log on the head.
    logs = head.check(f"cat {DATA}/.rentstack/logs/router*-cpu.log {DATA}/.rentstack/logs/front-access-router-cpu.log",
                      "router logs")
    assert "POST /v1/chat/completions" in logs and key not in logs

    # --stop: nothing of the router is left, on either host.
    stop = fab_scale(*args, "--stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert head.run(f"ls {DATA}/.rentstack/run/ | grep router")[1].strip() == ""
    assert not re.search(rf":({FRONT}|{ROUTER}|{FORWARD})\s", _listeners(head))
    assert worker.run("grep -c rentstack-router /root/.ssh/authorized_keys")[1].strip() == "0"
    assert head.run(f"test -e {ROUTER_DIR}/forward_key")[0] != 0
    stopped_again = fab_scale(*args, "--stop")
    assert all(v.startswith("skip|") for v in step_lines(stopped_again.stdout).values()), stopped_again.stdout

    # A start that fails half-way (the head cannot reach the worker's sshd) undoes itself: one
    # line, exit 1, no router process, no key on the worker, no key pair on the head.
    unreachable = [*args[:args.index("--peer-ssh") + 1], "root@10.77.0.99:22", *args[args.index("--peer-ssh") + 2:]]
    failed = fab_scale(*unreachable)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "the SSH forward to root@127.0.0.1:22212 (root@10.77.0.99:22) did not carry /health" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert "[undo] router: peer1" in failed.stdout, failed.stdout
    assert head.run(f"ls {DATA}/.rentstack/run/ | grep router")[1].strip() == ""
    assert worker.run("grep -c rentstack-router /root/.ssh/authorized_keys")[1].strip() == "0"
    assert head.run(f"test -e {ROUTER_DIR}/forward_key")[0] != 0
