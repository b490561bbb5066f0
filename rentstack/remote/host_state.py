"""The state file on the host: which provisioning steps finished, with what checksums.

It lives on the data disk (DATA/.rentstack/state.json), so it survives a power cycle with
the weights it vouches for. Pure: parse, query and update values here; the executor reads
and writes the file (atomically: write a temp file, rename).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

STATE_VERSION = 1
STATE_NAME = "state.json"


def state_path(data_dir: str) -> str:
    """DATA/.rentstack/state.json."""
    return str(PurePosixPath(data_dir) / ".rentstack" / STATE_NAME)


def checksum(*parts: object) -> str:
    """A short stable digest of the inputs a step depends on (sorted JSON of the parts)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class HostState:
    """Finished steps: name -> {"checksum": ..., "detail": ...}."""

    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    def done(self, name: str, digest: str) -> bool:
        """The step finished before with exactly these inputs."""
        entry = self.steps.get(name)
        return bool(entry) and entry.get("checksum") == digest

    def record(self, name: str, digest: str, detail: str = "") -> None:
        self.steps[name] = {"checksum": digest, "detail": detail}

    def forget(self, name: str) -> None:
        """Drop a step (its goal no longer holds, e.g. the server was stopped)."""
        self.steps.pop(name, None)

    def dumps(self) -> str:
        return json.dumps({"version": STATE_VERSION, "steps": self.steps}, indent=1, sort_keys=True) + "\n"


def parse_state(text: str) -> HostState:
    """The state from the file's text; missing, empty, unreadable or foreign -> empty state
    (every step then checks its goal again, which is safe: checks are read-only)."""
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        return HostState()
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION or not isinstance(data.get("steps"), dict):
        return HostState()
    steps = {k: dict(v) for k, v in data["steps"].items() if isinstance(v, dict)}
    return HostState(steps)
