"""The Makefile is the front door: every target phony, every target documented in `make help`."""

from __future__ import annotations

import re
import subprocess

from rentstack.commands._common import REPO

TEXT = (REPO / "Makefile").read_text().replace("\\\n", " ")


def _targets() -> set[str]:
    return {m.group(1) for m in re.finditer(r"^([A-Za-z0-9_.-]+):(?!=)", TEXT, re.M)} - {".PHONY"}


def _phony() -> set[str]:
    return {name for line in re.findall(r"^\.PHONY:(.*)$", TEXT, re.M) for name in line.split()}


def test_every_target_is_phony_and_every_phony_exists():
    assert _targets() == _phony()


def test_required_targets_exist():
    assert {"up", "down", "status", "logs", "smoke", "help", "render", "test", "doctor", "bench-planner"} <= _targets()


def test_help_lists_every_target():
    out = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for target in _targets():
        assert f"make {target} " in out, target
    assert "TIER=cpu" in out
