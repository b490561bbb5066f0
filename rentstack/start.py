"""The start sequence both executors share: start, and on failure let the doctor pick a fix.

``start_with_autofix`` runs an executor's ``start(overrides, attempt)`` (local: render and
``docker compose up --wait``; remote: the host's step list) until it reports healthy, or
the doctor has no fix, or ``auto_fix`` retries are spent. ``calibrate`` saves what a good
GPU start measured, so the next plan for that card, vLLM version and model uses it; local
``up`` and ``fab up/provision`` both call it with the server's log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Echo = Callable[[str], None]


@dataclass
class Attempt:
    """One start: did it come up, the server log when it did not, and what the executor wants back."""

    ok: bool
    log: str = ""
    result: Any = None
    overrides: dict[str, object] = field(default_factory=dict)


def doctor_fix(log: str, warn: Echo) -> dict[str, object] | None:
    """Print the doctor's diagnosis of a failed start; return its first fix (vLLM flag -> value)."""
    from rentstack.doctor import diagnose, first_fix

    diagnosis = diagnose(log.splitlines())
    warn(f"doctor: {diagnosis.explanation}")
    for fix in diagnosis.fixes:
        warn(f"doctor: fix: {fix.changes} — {fix.why}")
    return first_fix(diagnosis) or None


def start_with_autofix(start: Callable[[dict[str, object], int], Attempt], *, auto_fix: int = 0,
                       echo: Echo = print, warn: Echo | None = None, rerun_hint: str = "") -> Attempt:
    """Call ``start`` with the fixes gathered so far, at most ``auto_fix + 1`` times.

    Returns the last attempt (``ok`` False when it gave up), with the overrides it ran with.
    ``rerun_hint`` is printed when the doctor has a fix but ``auto_fix`` is 0."""
    warn = warn or echo
    overrides: dict[str, object] = {}
    for attempt in range(auto_fix + 1):
        result = start(dict(overrides), attempt)
        result.overrides = dict(overrides)
        if result.ok or not result.log:
            return result
        fix = doctor_fix(result.log, warn)
        if not fix or attempt == auto_fix:
            if fix and not auto_fix and rerun_hint:
                warn(rerun_hint)
            return result
        echo(f"doctor: applying the first fix {fix} and retrying ({attempt + 1}/{auto_fix})")
        overrides.update(fix)
    raise AssertionError("unreachable: the loop returns on its last attempt")


def calibrate(log: str, card: str, gpu_mem_gib: float, model: str, echo: Echo = print) -> Path | None:
    """After a good GPU start: save what the card really did, so the next plan uses it."""
    from rentstack.doctor import diagnose, save_calibration

    diagnosis = diagnose(log.splitlines())
    version = diagnosis.figures.get("vllm_version")
    if diagnosis.status != "ok" or not version or not card:
        return None
    path = save_calibration(card, version, model, diagnosis.figures, gpu_mem_gib=gpu_mem_gib)
    echo(f"calibration: saved this start's measured figures ({card}, vLLM {version}, {model}) to {path}; "
         "the next plan for this card, version and model uses them")
    return path
