"""The Ray cluster plan: parsers on captured output, the commands, the checks."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from rentstack.errors import RentstackError
from rentstack.scale import ray_cluster as rc

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "scale"


def read(name: str) -> str:
    return (GOLDEN / name).read_text()


@pytest.mark.parametrize("name, dev, src, via", [
    ("ip-route-get.via-gateway.txt", "eth0", "192.0.2.2", "192.0.2.1"),
    ("ip-route-get.direct.txt", "docker0", "172.17.0.1", None),
])
def test_route_parser(name, dev, src, via):
    assert rc.parse_route(read(name)) == rc.Route(dev=dev, src=src, via=via)


def test_route_to_own_address_is_refused():
    with pytest.raises(RentstackError, match="this host itself"):
        rc.parse_route(read("ip-route-get.own-address-lo.txt"))


def test_no_route_is_one_line():
    with pytest.raises(RentstackError) as err:
        rc.parse_route("RTNETLINK answers: Network is unreachable\n", 2)
    assert "Network is unreachable" in str(err.value) and "\n" not in str(err.value)


def test_head_interface_from_its_address():
    assert rc.parse_own_address(read("ip-addr-show-to.eth0.txt")) == rc.Route(dev="eth0", src="192.0.2.2")
    with pytest.raises(RentstackError, match="not an address of the head"):
        rc.parse_own_address("")


def test_ray_status_one_node():
    status = rc.parse_ray_status(read("ray-status.ray-2.60.0.1-node-2-cpu.txt"))
    assert status == rc.ClusterStatus(active_nodes=1, cpus=2.0, gpus=0.0, pending_nodes=0, failures=())


def test_ray_status_two_nodes():
    status = rc.parse_ray_status(read("ray-status.ray-2.60.0.2-nodes.txt"))
    assert status.active_nodes == 2 and status.gpus == 0.0 and status.cpus >= 2


def test_ray_status_while_starting_is_an_empty_cluster():
    assert rc.parse_ray_status(read("ray-status.ray-2.60.0.starting.txt")).active_nodes == 0


def test_ray_status_not_running():
    with pytest.raises(RentstackError, match="is the Ray head running"):
        rc.parse_ray_status("ConnectionError: Could not find any running Ray instance.\n", 1)


@pytest.mark.parametrize("nodes, gpus, hosts, per_host, message", [
    (1, 8.0, 2, 4, "1 of 2 hosts"),
    (2, 4.0, 2, 4, "4 GPUs on 2 hosts; the plan needs 8"),
])
def test_check_cluster_refuses_an_incomplete_cluster(nodes, gpus, hosts, per_host, message):
    with pytest.raises(RentstackError, match=message):
        rc.check_cluster(rc.ClusterStatus(active_nodes=nodes, cpus=8, gpus=gpus), hosts, per_host)


def test_check_cluster_accepts_a_whole_one():
    rc.check_cluster(rc.ClusterStatus(active_nodes=2, cpus=64, gpus=8.0), 2, 4)


def test_commands_pin_every_port_and_bind_the_private_address():
    route = rc.Route(dev="eth1", src="10.77.0.2")
    head = rc.head_argv("/v/bin/ray", route)
    assert "--node-ip-address=10.77.0.2" in head
    assert not any(a.startswith("--num-gpus") for a in head)     # Ray counts the real GPUs
    assert "--include-dashboard=false" in head
    for name, port in rc.RAY_PORTS.items():
        assert f"--{name}={port}" in head
    worker = rc.worker_argv("/v/bin/ray", rc.Route("eth1", "10.77.0.3"), "10.77.0.2")
    assert "--address=10.77.0.2:6379" in worker and "--node-ip-address=10.77.0.3" in worker
    assert not any(a.startswith("--port=") for a in worker)
    env = rc.ray_env(route)
    assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "eth1"
    assert env["VLLM_HOST_IP"] == "10.77.0.2" and env["RAY_AUTH_MODE"] == "token"


def test_shell_line_quotes_every_word():
    line = rc.shell_line(["/opt/my venv/bin/ray", "start", "--x=$(id)"], {"A": "b c"})
    assert shlex.split(line) == ["env", "A=b c", "/opt/my venv/bin/ray", "start", "--x=$(id)"]


def test_firewall_script_names_the_private_interface_and_the_port_range():
    script = rc.firewall_script("eth1")
    assert "-i eth1 -j RETURN" in script
    assert "--dport 6379:6463" in script
    assert script.count("DROP") == 1


def test_layout_splits_tp_inside_hosts_and_pp_across():
    assert rc.MultiHostLayout(hosts=2, gpus_per_host=4).vllm_settings() == {
        "tensor-parallel-size": 4, "pipeline-parallel-size": 2, "distributed-executor-backend": "ray"}
    with pytest.raises(RentstackError, match="2-16 hosts"):
        rc.MultiHostLayout(hosts=1, gpus_per_host=4)
