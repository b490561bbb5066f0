"""Asking the `monitoring` profile's Prometheus from inside its container (it publishes no port)."""

from __future__ import annotations

import json
import subprocess
import time


def prometheus_json(in_container: list[str], path: str) -> dict:
    """GET localhost:9090{path} inside the container; ``in_container`` is the command prefix that
    runs a command there (`docker exec NAME` or `docker compose ... exec -T prometheus`)."""
    out = subprocess.run([*in_container, "curl", "-fsS", f"http://127.0.0.1:9090{path}"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def scrape_targets(in_container: list[str], timeout_s: float = 90) -> list[dict]:
    """The active scrape targets, once the first is up (or as they are when ``timeout_s`` ends)."""
    deadline = time.monotonic() + timeout_s
    while True:
        targets = prometheus_json(in_container, "/api/v1/targets")["data"]["activeTargets"]
        if targets and targets[0]["health"] == "up" or time.monotonic() > deadline:
            return targets
        time.sleep(2)
