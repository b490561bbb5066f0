"""What the replica tests ask of a router and read back from the replicas."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

REPLICA_PORT = 18090
"""The front door's port on each replica host (never published)."""
DATA = "/root/autodl-tmp"


def replica_hosts(ray_hosts: dict) -> str:
    """--host for both test hosts, head first."""
    return f"{ray_hosts['head']},{ray_hosts['worker']}"


def chat(url: str, key: str | None, text: str) -> int:
    """One short chat completion through ``url``; the HTTP status."""
    body = json.dumps({"model": "smollm2-135m", "max_tokens": 8,
                       "messages": [{"role": "user", "content": text}]}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    req = urllib.request.Request(f"{url}/v1/chat/completions", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def served(host) -> int:  # noqa: ANN001 - rentstack.remote.cluster.ClusterHost
    """Chat requests this host's vLLM has answered (its access log on the data disk)."""
    out = host.remote.run(f"cat {DATA}/.rentstack/logs/vllm*.log 2>/dev/null | grep -c 'POST /v1/chat/completions HTTP/1.1\" 200' || true")[1]
    return int(out.strip() or 0)


def kill_vllm(host) -> None:  # noqa: ANN001
    """Kill the supervisor's child (vLLM), as a crash would; the supervisor stays and restarts it."""
    host.remote.check(f"kill -9 $(ps -o pid= --ppid $(cat {DATA}/.rentstack/run/vllm-cpu.pid))", "kill vLLM")
