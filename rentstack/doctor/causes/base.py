"""What a doctor cause is: how its log lines are recognised, explained and fixed.

A cause module builds one `Cause` and the registry (`rentstack.doctor.causes`) lists it. The
reader calls `match` on every log line that holds one of the cause's `triggers`; the verdict
calls `explain` and `fixes` with a `Context` once the cause is chosen as the root of a failed
start. Everything here is pure: lines and figures in, words and Fix values out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rentstack.doctor.diagnosis import Fix

if TYPE_CHECKING:  # the reader imports the registry; only the types flow back
    from rentstack.doctor.fixes import Situation
    from rentstack.doctor.parse import Failure, LogFacts


@dataclass(frozen=True)
class Found:
    """What `Cause.match` read from one line: the start phase the message itself names (or None)
    and the figures it holds (they end up in the failure's details)."""

    phase: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What `explain` and `fixes` may use: the launch as logged, this cause's merged details, the
    phase the verdict settled on and the whole pass over the log."""

    situation: Situation
    details: dict[str, Any]
    phase: str | None
    facts: LogFacts


def no_fixes(ctx: Context) -> list[Fix]:
    """For causes no launch flag can fix (missing files): the explanation says what to do."""
    return []


@dataclass(frozen=True)
class Cause:
    """One failure cause the doctor recognises."""

    name: str
    """The value of `Diagnosis.cause` and `doctor --json`'s "cause" (snake_case, stable)."""
    summary: str
    """One line for the docs: what went wrong."""
    triggers: tuple[str, ...]
    """Plain substrings: every line `match` can recognise holds at least one. Lines with no
    trigger of any cause are skipped after one search (most of a long log is request noise)."""
    match: Callable[[str], Found | None]
    """One log line (ANSI-stripped, without its newline) → Found, or None when it is not this cause."""
    explain: Callable[[Context], str]
    """What happened, in plain words, with the log's numbers."""
    fixes: Callable[[Context], list[Fix]] = no_fixes
    """Launch changes, best first; [] when no flag fixes it."""
    figures: tuple[str, ...] = ()
    """Detail keys copied into `Diagnosis.figures` (numbers a caller may want without parsing text)."""
    memory: bool = False
    """A memory shortage: the phase is the one its message or traceback frame names (not just the
    last phase the log reached), and the planner's own searched fix is offered after the cause's."""
    secondary: bool = False
    """Often a reaction to another failure (NCCL errors on the ranks that survive a crash): any
    other recognised failure in the same start is taken as the root cause instead."""
    examples: tuple[str, ...] = ()
    """Real log lines this cause must recognise; tests/unit/test_doctor_causes.py checks each."""

    def phase_of(self, failure: Failure, facts: LogFacts) -> str | None:
        """The phase the verdict reports for this cause's `failure`."""
        if not self.memory:
            return failure.reached
        if failure.phase:
            return failure.phase
        # Chained messages (the sampler's own line after the allocator's OOM) may name the phase.
        for other in facts.failures:
            if other.cause == self.name and other.phase:
                return other.phase
        return failure.frame or failure.reached


def gib(x: Any) -> str:
    """A size for a sentence: '4.41 GiB', or '? GiB' when the log did not give it."""
    return f"{x:.2f} GiB" if isinstance(x, (int, float)) else "? GiB"
