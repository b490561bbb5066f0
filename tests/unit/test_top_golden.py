"""Every tests/golden/top/cases/*.json: two real /metrics captures → the View and frame expected."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import pytest

from rentstack.top.prometheus import parse
from rentstack.top.view import Snapshot, build_view, render

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "top"
CASES = sorted(p.stem for p in (GOLDEN / "cases").glob("*.json"))


def _snapshot(name: str | None, at: float) -> Snapshot | None:
    if name is None:
        return None
    return Snapshot(at=at, scrape=parse((GOLDEN / "metrics" / name).read_text()))


def test_there_are_cases_and_every_capture_is_used():
    used = set()
    for case in CASES:
        spec = json.loads((GOLDEN / "cases" / f"{case}.json").read_text())
        used |= {spec["previous"], spec["current"]} - {None}
    assert len(CASES) >= 4
    assert used == {p.name for p in (GOLDEN / "metrics").glob("*.txt")} - {
        "renamed-to-0_8_names-idle.txt", "renamed-to-0_8_names-after.txt"}


@pytest.mark.parametrize("case", CASES)
def test_golden_case(case: str):
    spec = json.loads((GOLDEN / "cases" / f"{case}.json").read_text())
    interval = spec["interval_s"]
    previous = _snapshot(spec["previous"], 1000.0)
    current = _snapshot(spec["current"], 1000.0 + (interval or 0.0))
    assert current.scrape.bad_lines == 0  # vLLM's real output parses whole
    view = build_view(previous, current)
    got = asdict(view)
    got["missing"] = list(view.missing)
    for key, want in spec["expected"].items():
        have = got[key]
        if isinstance(want, float) and have is not None:
            assert math.isclose(have, want, rel_tol=0, abs_tol=1e-6), f"{key}: {have} != {want}"
        else:
            assert have == want, f"{key}: {have!r} != {want!r}"
    frame = "\n".join(render(view, "http://127.0.0.1:8000"))
    for words in spec.get("frame_contains", []):
        assert words in frame, frame
