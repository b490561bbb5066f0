"""Planner golden cases: tests/golden/plan/<case>.json (inputs, expected figures, where they come from)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rentstack.plan import Hardware, LaunchParams, load_arch, plan

REPO = Path(__file__).resolve().parents[2]
CASES = sorted((REPO / "tests" / "golden" / "plan").glob("*.json"))


def _run(case: dict):
    src = case["model_config"]
    arch = load_arch(src if isinstance(src, dict) else REPO / src)
    return plan(arch, Hardware(**case["hardware"]), LaunchParams(**case["params"]))


def test_there_are_golden_cases():
    names = {c.stem for c in CASES}
    assert {"seed-7gb-deepseek-70b-bnb-offload", "seed-32gb-deepseek-70b-bnb-offload", "seed-3080x2-qwen3-8b-tp2",
            "seed-4090x1-qwen3-14b-awq", "seed-4090x1-qwen3-32b-awq", "seed-4090x4-qwen3-32b-awq-tp4"} <= names


@pytest.mark.parametrize("path", CASES, ids=[c.stem for c in CASES])
def test_golden_plan(path: Path):
    case = json.loads(path.read_text())
    pl = _run(case)
    tol = case.get("tolerance_pct", 1.0) / 100
    for key, want in case["expect"].items():
        got = getattr(pl, key)
        if isinstance(want, bool) or isinstance(want, str) or want is None:
            assert got == want, f"{path.stem}: {key} = {got!r}, expected {want!r} ({pl.error})"
        elif want == 0:
            assert abs(got) < 1e-6, f"{path.stem}: {key} = {got}, expected 0"
        else:
            assert got == pytest.approx(want, rel=tol), f"{path.stem}: {key} = {got}, expected {want} ±{tol:.1%}"
