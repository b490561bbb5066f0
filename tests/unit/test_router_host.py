"""The replica router on one of the hosts (`fab router --on`): its pure plan, the texts it puts
on the hosts, and the input checks that run before anything connects."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rentstack.errors import RentstackError
from rentstack.remote import router_host
from rentstack.remote.hosts import parse_hosts
from rentstack.remote.options import InputError, Options
from rentstack.scale.router import HostRouterPlan, known_hosts_line

PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcd0u8b5Mk2yQd3Q0gQ8VbJyG2XJm6sA2F6yJH3KqZp rentstack-router-cpu"


def _plan(**kw) -> HostRouterPlan:
    args = dict(tier="cpu", replica_port=8000, front_port=8001,
                peers=[("root@h2:22", "root", "10.0.0.3", 22), ("root@h3:2222", "ubuntu", "h3.example", 2222)])
    return HostRouterPlan.build(**{**args, **kw})


def test_ports_one_loopback_layout():
    plan = _plan()
    assert (plan.front_port, plan.router_port, plan.metrics_port) == (8001, 18001, 18002)
    assert [p.forward_port for p in plan.peers] == [18003, 18004]
    router = plan.router()
    assert router.workers == ("http://127.0.0.1:8000", "http://127.0.0.1:18003", "http://127.0.0.1:18004")
    argv = router.argv("/d/venv/vllm-router-0.1.17/bin/python")
    assert argv[argv.index("--host") + 1] == "127.0.0.1"        # admin routes have no auth: loopback only
    assert argv[argv.index("--port") + 1] == "18001"
    assert argv[argv.index("--prometheus-port") + 1] == "18002"


def test_ports_near_the_top_go_below():
    plan = _plan(replica_port=60000, front_port=60001)
    assert plan.router_port == 50001 and plan.peers[0].forward_port == 50003


@pytest.mark.parametrize("front, words", [
    (8000, "--router-port 8000: --router-port would be port 8000, which --port (this host's replica) uses"),
    (7998, "--router-port 7998: the forward to root@h2:22 would be port 18000, which this host's vLLM "
           "(--port + 10000) uses"),
])
def test_port_clashes_are_one_line(front: int, words: str):
    with pytest.raises(RentstackError) as err:
        _plan(front_port=front)
    assert str(err.value).startswith(words)


def test_authorized_keys_line_allows_one_forward_and_nothing_else():
    line = _plan().authorized_keys_line(PUB)
    assert line == ('restrict,port-forwarding,permitopen="127.0.0.1:8000",permitlisten="127.0.0.1:1",'
                    'command="/bin/false" '
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcd0u8b5Mk2yQd3Q0gQ8VbJyG2XJm6sA2F6yJH3KqZp "
                    "rentstack-router-cpu")
    with pytest.raises(RentstackError, match="not an OpenSSH public key"):
        _plan().authorized_keys_line('ssh-ed25519 AAAA"x,command="sh')


def test_forward_argv_pins_the_host_key_and_forwards_one_port():
    plan = _plan()
    argv = plan.forward_argv(plan.peers[1], "/d/k", "/d/known_hosts")
    assert argv[:4] == ("ssh", "-N", "-F", "/dev/null")
    assert "StrictHostKeyChecking=yes" in argv and "UserKnownHostsFile=/d/known_hosts" in argv
    assert "ExitOnForwardFailure=yes" in argv and "BatchMode=yes" in argv
    assert argv[argv.index("-L") + 1] == "127.0.0.1:18004:127.0.0.1:8000"
    assert argv[-3:] == ("-p", "2222", "ubuntu@h3.example")


def test_known_hosts_lines():
    assert known_hosts_line("10.0.0.3", 22, "ssh-ed25519", "AAAAxyz=") == "10.0.0.3 ssh-ed25519 AAAAxyz="
    assert known_hosts_line("h3.example", 2222, "ssh-rsa", "AAAA") == "[h3.example]:2222 ssh-rsa AAAA"
    with pytest.raises(RentstackError):
        known_hosts_line("h3 *", 22, "ssh-rsa", "AAAA")


def test_a_peer_address_cannot_become_an_ssh_option():
    with pytest.raises(RentstackError, match="--peer-ssh: the SSH host .-oProxyCommand=x. for root@h2:22 is not a plain"):
        _plan(peers=[("root@h2:22", "root", "-oProxyCommand=x", 22)])


def _opts(**kw) -> Options:
    return Options(tier="cpu", port=8000, **kw)


def test_resolve_checks_on_and_peer_ssh_before_connecting():
    hosts = parse_hosts("root@h1:22,root@h2:2222")
    req = router_host.resolve(hosts, "root@h2:2222", _opts(), router_port=0, peer_ssh="", policy="cache_aware")
    assert req.router.label == "root@h2:2222" and req.front_port == 8001
    assert [(o.label, r.label) for o, r in req.peers] == [("root@h1:22", "root@h1:22")]
    req = router_host.resolve(hosts, "root@h1:22", _opts(), router_port=9000, peer_ssh="admin@10.0.0.2:22",
                              policy="round_robin")
    assert [(o.label, r.label) for o, r in req.peers] == [("root@h2:2222", "admin@10.0.0.2:22")]
    with pytest.raises(InputError, match=r"^--on 'root@h9:22' is not one of --host \(root@h1:22, root@h2:2222\)"):
        router_host.resolve(hosts, "root@h9:22", _opts(), router_port=0, peer_ssh="", policy="cache_aware")
    with pytest.raises(InputError, match="--peer-ssh lists 2 address"):
        router_host.resolve(hosts, "root@h1:22", _opts(), router_port=0, peer_ssh="a@b:22,c@d:22", policy="cache_aware")
    with pytest.raises(InputError, match="--router-port 8000"):
        router_host.resolve(hosts, "root@h1:22", _opts(), router_port=8000, peer_ssh="", policy="cache_aware")


def test_probe_host_follows_the_bind():
    assert router_host.probe_host("127.0.0.1") == "127.0.0.1"
    assert router_host.probe_host("0.0.0.0") == "127.0.0.1"
    assert router_host.probe_host("10.0.0.2") == "10.0.0.2"


def test_key_pair_is_openssh_and_accepted_by_the_line():
    private, public = router_host.new_key_pair("rentstack-router-cpu")
    assert private.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert public.startswith("ssh-ed25519 ") and public.rstrip().endswith(" rentstack-router-cpu")
    assert _plan().authorized_keys_line(public).endswith(" rentstack-router-cpu")


def _sh(script: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], env={**os.environ, "HOME": str(home)}, text=True, capture_output=True)


def test_authorized_keys_script_replaces_only_its_own_line(tmp_path: Path):
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    keys = ssh / "authorized_keys"
    keys.write_text("ssh-ed25519 AAAAuser me@laptop\nssh-ed25519 AAAAold rentstack-router-cpu\n"
                    "ssh-ed25519 AAAAother rentstack-router-cpu2\n")
    line = _plan().authorized_keys_line(PUB)
    assert _sh(router_host.authorized_keys_script("rentstack-router-cpu", line), tmp_path).returncode == 0
    assert keys.read_text().splitlines() == ["ssh-ed25519 AAAAuser me@laptop",
                                             "ssh-ed25519 AAAAother rentstack-router-cpu2", line]
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
    found = _sh(router_host.marker_lines_command("rentstack-router-cpu"), tmp_path)
    assert found.stdout.splitlines() == [line]
    assert _sh(router_host.authorized_keys_script("rentstack-router-cpu", None), tmp_path).returncode == 0
    assert keys.read_text().splitlines() == ["ssh-ed25519 AAAAuser me@laptop",
                                             "ssh-ed25519 AAAAother rentstack-router-cpu2"]
    assert _sh(router_host.marker_lines_command("rentstack-router-cpu"), tmp_path).stdout == ""


class _Ctx:
    """The few Ctx fields the router's pure builders read."""

    def __init__(self) -> None:
        from rentstack.config import load_tier
        from rentstack.remote.hosts import HostSpec
        from rentstack.remote.layout import Layout

        self.layout = Layout("/root/autodl-tmp")
        self.tier = load_tier("cpu")
        self.spec = HostSpec("h1")
        self.label = self.spec.label

    def key(self, step: str) -> str:
        return f"{step}:cpu"


def test_files_front_door_in_front_of_the_router():
    ctx, plan = _Ctx(), _plan()
    keys = {"root@h2:22": ("ssh-ed25519", "AAAAh2"), "root@h3:2222": ("ssh-ed25519", "AAAAh3")}
    out = router_host.files(ctx, plan, keys, njs=True, key="rs-" + "k" * 40, metrics_token="rsm-" + "t" * 40)
    base = "/root/autodl-tmp/.rentstack/deploy/cpu/router"
    conf = out[f"{base}/front/nginx.conf"][0]
    assert "listen 127.0.0.1:8001;" in conf and "set $vllm http://127.0.0.1:18001;" in conf
    assert "front-access-router-cpu.log" in conf and "k" * 40 not in conf
    assert out[f"{base}/known_hosts"][0] == "10.0.0.3 ssh-ed25519 AAAAh2\n[h3.example]:2222 ssh-ed25519 AAAAh3\n"
    assert f"{base}/front/key.map.conf" not in out
    mapped = router_host.files(ctx, plan, keys, njs=False, key="rs-" + "k" * 40, metrics_token="rsm-" + "t" * 40)
    assert mapped[f"{base}/front/key.map.conf"][1] == 0o600


def test_programs_start_forwards_then_router_then_front():
    ctx, plan = _Ctx(), _plan()
    progs = router_host.programs(ctx, plan)
    assert [p.slug for p in progs] == ["router-forward1", "router-forward2", "router", "router-front"]
    assert progs[2].argv[0] == "/root/autodl-tmp/venv/vllm-router-0.1.17/bin/python"
    assert progs[3].env_files == ("/root/autodl-tmp/.rentstack/deploy/cpu/secrets.env",)
    assert all("rs-" not in " ".join(p.argv) for p in progs)        # no secret on a command line
    assert router_host.all_slugs(2) == ("router-forward1", "router-forward2", "router", "router-front")
