"""Reading fab's per-host report in the SSH host tests."""

from __future__ import annotations

import re

_STEP = re.compile(r"^\s+\[(ok  |skip|plan|FAIL)\] ([^:]+(?:: \w+)?): (.*)$")


def step_lines(text: str) -> dict[str, str]:
    """Step name -> 'status|detail' for every step line of a fab report ('  [skip] caches: ...')."""
    lines = {}
    for line in text.splitlines():
        m = _STEP.match(line)
        if m:
            lines[m.group(2)] = f"{m.group(1).strip()}|{m.group(3)}"
    return lines
