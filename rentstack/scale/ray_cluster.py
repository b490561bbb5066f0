"""One model across hosts: a Ray cluster for vLLM's multi-node path, planned as data.

vLLM runs one model over several hosts with tensor parallel inside a host and pipeline
parallel across hosts, on Ray: `ray start --head` on one host, `ray start --address` on the
others, then `vllm serve … --tensor-parallel-size <GPUs per host> --pipeline-parallel-size
<hosts> --distributed-executor-backend ray` on the head (vLLM docs, serving/parallelism_scaling).

What goes wrong on rented consumer boxes, and what this module does about it:
- the wrong network interface (NCCL/Gloo pick the first one, often the public NIC or
  docker0, and hang): the interface is the one the kernel routes to the head through
  (`ip -o route get HEAD`), and VLLM_HOST_IP / NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME are
  set from it on every host;
- Ray listens on every interface and on a wide worker-port range: every Ray port is pinned
  here, so a host firewall (or the provider's security group) can allow exactly these on
  the private network and nothing else;
- a cluster that is not whole (a worker that did not join, GPUs Ray cannot see): `ray
  status` is parsed and checked against the plan before vLLM starts.

Pure: commands are argv lists and parsers take text. The SSH edge is rentstack.remote.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from rentstack.errors import RentstackError

RAY_VERSION = "2.60.0"
"""Ray for the native runner: vLLM's CUDA requirements ask for ray[cgraph] >= 2.48 (PP on Ray uses
compiled graphs); the official vllm-openai image ships its own, which compose hosts use instead."""

RAY_PORTS = {
    "port": 6379,                     # GCS: the address workers join
    "node-manager-port": 6380,
    "object-manager-port": 6381,
    "runtime-env-agent-port": 6382,
    "dashboard-agent-grpc-port": 6383,
    "dashboard-agent-listen-port": 6384,
    "metrics-export-port": 6385,
    "min-worker-port": 6400,
    "max-worker-port": 6463,          # 64 worker processes per host is plenty for one vLLM
}
"""Every port Ray opens, fixed (Ray's defaults are random or 10002-19999), so the firewall rule
"these ports, private interface only" is exact. Dashboard off."""

PP_OVER_ETHERNET_NOTE = (
    "pipeline parallel across hosts sends each micro-batch's activations between stages over the "
    "network: on 1-10 GbE expect single-request decode well below one host's speed, and use it "
    "only when the model does not fit one host (for more users, use --replicas instead)")


@dataclass(frozen=True)
class Route:
    """How this host reaches another: `ip -o route get ADDR`."""

    dev: str
    src: str
    via: str | None = None


_ROUTE = re.compile(r"\bdev\s+(\S+).*?\bsrc\s+(\S+)")
_VIA = re.compile(r"\bvia\s+(\S+)")


def route_command(address: str) -> str:
    return f"ip -o route get {shlex.quote(address)}"


def parse_route(output: str, exit_code: int = 0) -> Route:
    """'10.77.0.2 dev eth1 src 10.77.0.3 uid 0 \\ cache' -> Route('eth1', '10.77.0.3')."""
    match = _ROUTE.search(output)
    if exit_code != 0 or not match:
        raise RentstackError(f"no route to the head host: `ip route get` said {output.strip()[:160]!r}; "
                             "the hosts must share a network (a private one: Ray's traffic is not encrypted)")
    via = _VIA.search(output)
    if match.group(1) == "lo":
        raise RentstackError("the head address is this host itself (route via lo): give each host's own address")
    return Route(dev=match.group(1), src=match.group(2), via=via.group(1) if via else None)


def own_address_command(address: str) -> str:
    return f"ip -o -4 addr show to {shlex.quote(address)}"


def parse_own_address(output: str, exit_code: int = 0) -> Route:
    """The head's interface for its private address: '3: eth1    inet 10.77.0.2/24 …' -> eth1."""
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "inet":
            return Route(dev=parts[1], src=parts[3].split("/")[0])
    raise RentstackError("the head address is not an address of the head host (`ip addr` has no such "
                         "address): give the head's private IP as seen on the head itself")


def firewall_script(private_dev: str) -> str:
    """iptables rules: Ray's ports answer on loopback and the private interface only.

    A chain of our own, flushed and refilled, so a re-run is idempotent and `iptables -F
    RENTSTACK-RAY` undoes it. Ray authenticates with a token too (RAY_AUTH_MODE=token)."""
    low, high = RAY_PORTS["port"], RAY_PORTS["max-worker-port"]
    dev = shlex.quote(private_dev)
    return "\n".join([
        "iptables -N RENTSTACK-RAY 2>/dev/null || iptables -F RENTSTACK-RAY",
        "iptables -A RENTSTACK-RAY -i lo -j RETURN",
        f"iptables -A RENTSTACK-RAY -i {dev} -j RETURN",
        "iptables -A RENTSTACK-RAY -p tcp -j DROP",
        f"iptables -C INPUT -p tcp --dport {low}:{high} -j RENTSTACK-RAY 2>/dev/null "
        f"|| iptables -I INPUT -p tcp --dport {low}:{high} -j RENTSTACK-RAY",
    ])


@dataclass(frozen=True)
class ClusterStatus:
    """What `ray status` reports."""

    active_nodes: int
    cpus: float
    gpus: float
    pending_nodes: int = 0
    failures: tuple[str, ...] = ()


_RESOURCE = re.compile(r"^\s*([\d.]+)/([\d.]+)\s+(CPU|GPU)\b", re.M)


def parse_ray_status(output: str, exit_code: int = 0) -> ClusterStatus:
    """Count active nodes and total CPU/GPU from `ray status` (Ray 2.x autoscaler text).

    Right after `ray start` the head answers "No cluster status…" for a few seconds: that is
    an empty cluster still starting (0 nodes), for the caller's poll loop to wait out."""
    if exit_code == 0 and output.lstrip().startswith("No cluster status"):
        return ClusterStatus(active_nodes=0, cpus=0.0, gpus=0.0)
    if exit_code != 0 or "Node status" not in output:
        raise RentstackError(f"`ray status` did not answer: {output.strip().splitlines()[-1][:160] if output.strip() else 'no output'}"
                             "; is the Ray head running (`ray start --head`)?")

    def block(title: str) -> list[str]:
        lines = output.splitlines()
        try:
            start = next(i for i, l in enumerate(lines) if l.strip().rstrip(":") == title) + 1
        except StopIteration:
            return []
        out = []
        for line in lines[start:]:
            if not line.startswith(" ") or not line.strip():
                break
            out.append(line.strip())
        return [l for l in out if not l.startswith("(")]

    totals = {kind: float(total) for _, total, kind in _RESOURCE.findall(output)}
    return ClusterStatus(active_nodes=len(block("Active")), cpus=totals.get("CPU", 0.0),
                         gpus=totals.get("GPU", 0.0), pending_nodes=len(block("Pending")),
                         failures=tuple(block("Recent failures")))


def check_cluster(status: ClusterStatus, hosts: int, gpus_per_host: int) -> None:
    """Refuse to start vLLM on a cluster that is not what the plan needs."""
    if status.active_nodes == 0:
        raise RentstackError("the Ray head did not report any node: see `ray status` and /tmp/ray/session_latest/logs "
                             "on the head")
    if status.active_nodes < hosts:
        raise RentstackError(
            f"ray status shows {status.active_nodes} of {hosts} hosts: a worker did not join — check that it "
            f"reaches the head's port {RAY_PORTS['port']} on the private network and runs the same Ray {RAY_VERSION}")
    need = hosts * gpus_per_host
    if status.gpus < need:
        raise RentstackError(
            f"ray status shows {status.gpus:g} GPUs on {status.active_nodes} hosts; the plan needs {need} "
            f"({gpus_per_host} per host): boot every instance with its GPUs, then rerun")


def ray_env(route: Route) -> dict[str, str]:
    """The environment every Ray/vLLM process on a host needs: the address and NIC to the others."""
    return {"VLLM_HOST_IP": route.src, "NCCL_SOCKET_IFNAME": route.dev, "GLOO_SOCKET_IFNAME": route.dev,
            "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}


def _port_flags() -> list[str]:
    return [f"--{name}={value}" for name, value in RAY_PORTS.items()]


def head_argv(ray: str, route: Route) -> list[str]:
    """`ray start --head` bound to the private address, every port fixed, no dashboard.

    No --num-gpus: Ray then counts the GPUs it really sees, which is what check_cluster()
    compares with the plan (a --num-gpus=4 would advertise four cards on a box without any)."""
    return [ray, "start", "--head", f"--node-ip-address={route.src}",
            "--include-dashboard=false", "--disable-usage-stats", *_port_flags()]


def worker_argv(ray: str, route: Route, head: str) -> list[str]:
    ports = [f for f in _port_flags() if not f.startswith("--port=")]
    return [ray, "start", f"--address={head}:{RAY_PORTS['port']}", f"--node-ip-address={route.src}",
            "--disable-usage-stats", *ports]


def shell_line(argv: list[str], env: dict[str, str]) -> str:
    """argv with its environment as one POSIX shell line, every word quoted."""
    assigns = [f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    return " ".join(["env", *assigns, *(shlex.quote(a) for a in argv)])


@dataclass(frozen=True)
class MultiHostLayout:
    """How one model is split over hosts: TP over the GPUs of a host, PP over the hosts."""

    hosts: int
    gpus_per_host: int

    def __post_init__(self) -> None:
        if not 2 <= self.hosts <= 16:
            raise RentstackError(f"hosts {self.hosts}: a multi-host tier spans 2-16 hosts")
        if not 1 <= self.gpus_per_host <= 16:
            raise RentstackError(f"gpus per host {self.gpus_per_host}: use 1-16")

    def vllm_settings(self) -> dict[str, object]:
        return {"tensor-parallel-size": self.gpus_per_host, "pipeline-parallel-size": self.hosts,
                "distributed-executor-backend": "ray"}
