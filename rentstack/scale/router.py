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

from dataclasses import dataclass

from rentstack.errors import RentstackError

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
