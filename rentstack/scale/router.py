"""Replicas behind one endpoint: vLLM's own router (PyPI `vllm-router`) in front of several hosts.

Each replica is a whole single-host deployment (same tier, model and key) behind its own
front door; the router only ever reaches them over SSH tunnels from where it runs, so no
replica port is published. The router forwards the client's `Authorization` header to the
replica (checked against real replicas in tests/integration/scale/test_replicas.py), so the
key is enforced by every replica's front door and the router holds no secret.

Routing: `cache_aware` (the router's default) sends requests that share a prompt prefix to
the replica that already holds it in its prefix cache and balances the rest by load — the
prefix/session affinity vLLM users ask for. Health: the router polls each replica's
`/health` (open without the key at the front door) and takes a replica out after two
failures, back in after one success; a failed request is retried on another replica.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rentstack.errors import RentstackError
from rentstack.render.deployment import native_vllm_port

ROUTER_VERSION = "0.1.17"
"""vllm-router release (Rust core, abi3 wheel for x86_64 Linux)."""

ROUTER_REQUIREMENT = f"vllm-router=={ROUTER_VERSION}"
POLICIES = ("cache_aware", "round_robin", "power_of_two", "consistent_hash")


@dataclass(frozen=True)
class RouterPlan:
    """How the router is started: where it listens and which replica URLs it spreads over."""

    port: int
    workers: tuple[str, ...]
    policy: str = "cache_aware"
    health_interval_s: int = 2
    metrics_port: int = 0
    """The router's own Prometheus port, on 127.0.0.1; 0 = its default 29000, which a second
    router on the same machine could not bind (it panics with "Address already in use")."""

    def __post_init__(self) -> None:
        if len(self.workers) < 2:
            raise RentstackError(f"--replicas needs at least 2 hosts, got {len(self.workers)}: "
                                 "give them as -H host1,host2")
        if self.policy not in POLICIES:
            raise RentstackError(f"router policy {self.policy!r} is unknown: use one of {', '.join(POLICIES)}")
        if not 1 <= self.port <= 65535:
            raise RentstackError(f"router port {self.port} is out of range: use 1-65535")

    def argv(self, python: str) -> list[str]:
        """The router's command line. No secret on it: the router forwards the client's key."""
        return [python, "-m", "vllm_router.launch_router", "--host", "127.0.0.1", "--port", str(self.port),
                "--worker-urls", *self.workers, "--policy", self.policy,
                "--health-check-interval-secs", str(self.health_interval_s),
                "--health-failure-threshold", "2", "--health-success-threshold", "1",
                "--health-check-endpoint", "/health",
                # Start even when a replica is still loading; it joins when its /health answers.
                "--worker-startup-timeout-secs", "5",
                "--request-timeout-secs", "600",
                "--prometheus-host", "127.0.0.1",
                *(["--prometheus-port", str(self.metrics_port)] if self.metrics_port else [])]


# --------------------------------------------------------------------------- on one of the hosts

FORWARD_MARKER = "rentstack-router"
"""Comment of the router's forwarding key in a replica's authorized_keys (``-<tier>`` follows):
re-running replaces the line, stopping removes it."""

_SSH_WORD = re.compile(r"[A-Za-z0-9_.:@\[\]-]+")


@dataclass(frozen=True)
class Peer:
    """A replica the router host reaches over SSH: how it logs in there and where the
    forward lands on the router host's loopback."""

    label: str
    """The host as written in --host (reports)."""
    user: str
    host: str
    """The address the router host reaches its sshd on (--peer-ssh, else the --host address)."""
    ssh_port: int
    forward_port: int

    def __post_init__(self) -> None:
        for field, value in (("user", self.user), ("host", self.host)):
            if not _SSH_WORD.fullmatch(value) or value.startswith("-"):
                raise RentstackError(f"--peer-ssh: the SSH {field} {value!r} for {self.label} is not a plain "
                                     "host or user name: give USER@HOST:PORT")


@dataclass(frozen=True)
class HostRouterPlan:
    """The router on one replica host (`fab router --on HOST`): pure numbers and texts.

    On the router host, everything listens on 127.0.0.1 except the router's front door:
      front door (nginx, key required)  bind:front_port    the endpoint users reach (through SSH)
      the router                        127.0.0.1:router_port      (admin routes unauthenticated)
      the router's Prometheus           127.0.0.1:metrics_port
      one SSH forward per other replica 127.0.0.1:forward_port -> that host's 127.0.0.1:replica_port
      its own replica's front door      127.0.0.1:replica_port
    """

    tier: str
    replica_port: int
    """Every replica's front-door port (fab provision --port)."""
    front_port: int
    peers: tuple[Peer, ...]
    policy: str = "cache_aware"
    bind: str = "127.0.0.1"

    @property
    def router_port(self) -> int:
        """10000 from the front port, like vLLM behind a native front (8001 -> 18001)."""
        return self.front_port + 10000 if self.front_port + 10000 <= 65535 else self.front_port - 10000

    @property
    def metrics_port(self) -> int:
        return self.router_port + 1

    def __post_init__(self) -> None:
        taken = {self.replica_port: "--port (this host's replica)",
                 native_vllm_port(self.replica_port): "this host's vLLM (--port + 10000)"}
        mine = {self.front_port: "--router-port", self.router_port: "the router (--router-port + 10000)",
                self.metrics_port: "the router's metrics", **{p.forward_port: f"the forward to {p.label}"
                                                              for p in self.peers}}
        for port, what in mine.items():
            if not 1 <= port <= 65535:
                raise RentstackError(f"--router-port {self.front_port}: {what} would be port {port}, out of range: "
                                     "pick a lower --router-port")
            if port in taken:
                raise RentstackError(f"--router-port {self.front_port}: {what} would be port {port}, which "
                                     f"{taken[port]} uses: pick another --router-port")
            taken[port] = what
        if len({p.label for p in self.peers}) != len(self.peers):
            raise RentstackError("--host names one host twice: give each replica once")

    @classmethod
    def build(cls, *, tier: str, replica_port: int, front_port: int, peers: list[tuple[str, str, str, int]],
              policy: str = "cache_aware", bind: str = "127.0.0.1") -> HostRouterPlan:
        """``peers``: (label, user, host, ssh_port) of each other replica, in --host order; their
        forwards take the ports right after the router's metrics port."""
        first = cls(tier=tier, replica_port=replica_port, front_port=front_port, peers=(), policy=policy, bind=bind)
        return cls(tier=tier, replica_port=replica_port, front_port=front_port, policy=policy, bind=bind,
                   peers=tuple(Peer(label, user, host, port, first.metrics_port + 1 + i)
                               for i, (label, user, host, port) in enumerate(peers)))

    def router(self) -> RouterPlan:
        """The router itself: this host's replica on loopback, the others through their forwards."""
        return RouterPlan(port=self.router_port, policy=self.policy, metrics_port=self.metrics_port,
                          workers=(f"http://127.0.0.1:{self.replica_port}",
                                   *(f"http://127.0.0.1:{p.forward_port}" for p in self.peers)))

    @property
    def marker(self) -> str:
        return f"{FORWARD_MARKER}-{self.tier}"

    def authorized_keys_line(self, public_key: str) -> str:
        """The router's key on another replica: it may open a forward to that replica's front
        door and nothing else. `restrict` turns off forwarding, agent, X11 and ptys;
        `port-forwarding` turns forwarding back on in both directions and `permitopen` narrows
        only -L, to exactly one target. `permitlisten` narrows -R: OpenSSH 9.2 refuses the whole
        key for "none", so it names loopback port 1, which nothing serves (without it the key
        could listen on any port of the replica's loopback, as root). `restrict` does not stop a
        command from running, so the forced command makes `ssh -i KEY host CMD` fail."""
        words = public_key.split()
        if len(words) < 2 or not words[0].startswith("ssh-") or not re.fullmatch(r"[A-Za-z0-9+/=]+", words[1]):
            raise RentstackError(f"the router's public key is not an OpenSSH public key: {public_key[:40]!r}")
        return (f'restrict,port-forwarding,permitopen="127.0.0.1:{self.replica_port}",'
                f'permitlisten="127.0.0.1:1",command="/bin/false" '
                f"{words[0]} {words[1]} {self.marker}")

    def forward_argv(self, peer: Peer, key: str, known_hosts: str) -> tuple[str, ...]:
        """OpenSSH's client on the router host: one local forward, no command, no config file;
        the peer's host key must match the pinned one; a dead link ends ssh (its supervisor
        restarts it) instead of hanging."""
        return ("ssh", "-N", "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes",
                "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3", "-o", "ConnectTimeout=10",
                "-L", f"127.0.0.1:{peer.forward_port}:127.0.0.1:{self.replica_port}",
                "-p", str(peer.ssh_port), f"{peer.user}@{peer.host}")

    def state(self, router_label: str) -> dict[str, object]:
        """What `fab status` reads back on the router host (no secret in it)."""
        return {"tier": self.tier, "router_host": router_label, "bind": self.bind, "front_port": self.front_port,
                "router_port": self.router_port, "replica_port": self.replica_port, "policy": self.policy,
                "peers": [{"label": p.label, "ssh": f"{p.user}@{p.host}:{p.ssh_port}", "forward_port": p.forward_port}
                          for p in self.peers]}


def known_hosts_line(host: str, port: int, key_type: str, key_base64: str) -> str:
    """One known_hosts entry: the peer's host key as fab saw it over its own connection,
    pinned for the address the router host uses ([host]:port unless port 22)."""
    if not _SSH_WORD.fullmatch(host) or not re.fullmatch(r"[a-z0-9@.-]+", key_type) \
            or not re.fullmatch(r"[A-Za-z0-9+/=]+", key_base64):
        raise RentstackError(f"host key of {host} cannot be written to known_hosts: {key_type!r}")
    name = host if port == 22 else f"[{host.strip('[]')}]:{port}"
    return f"{name} {key_type} {key_base64}"

