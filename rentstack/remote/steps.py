"""Plan, then act: a provisioning run is a list of steps built first, then executed.

A step has a name, a ``check`` that returns why it can be skipped (its goal already holds)
or None, and an ``act`` that reaches the goal and returns one line saying what it did.
``--dry-run`` runs only the checks that are read-only and prints what would happen. A
step that fails stops the run (later steps depend on earlier ones).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from rentstack.errors import RentstackError

Status = Literal["done", "skipped", "would run", "failed", "not reached"]


class StopRun(Exception):
    """A step ends the run early on purpose (e.g. no GPU: stop after the download)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Step:
    """One unit of provisioning."""

    name: str
    summary: str
    """What the step does, for --dry-run and reports ("grow /root/autodl-tmp to the device size")."""
    act: Callable[[], str]
    check: Callable[[], str | None] = lambda: None
    """Why the step can be skipped, or None. Read-only."""


@dataclass(frozen=True)
class StepResult:
    name: str
    status: Status
    detail: str
    seconds: float = 0.0

    def line(self) -> str:
        mark = {"done": "ok  ", "skipped": "skip", "would run": "plan", "failed": "FAIL", "not reached": "    "}[self.status]
        took = f" ({self.seconds:.1f} s)" if self.seconds >= 0.05 and self.status in ("done", "failed") else ""
        return f"  [{mark}] {self.name}: {self.detail}{took}"


@dataclass
class RunReport:
    """What happened on one host."""

    host: str
    results: list[StepResult] = field(default_factory=list)
    error: str | None = None
    stopped: str | None = None
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def changed(self) -> bool:
        return any(r.status == "done" for r in self.results)

    def text(self, steps: bool = True) -> str:
        """The report; ``steps=False`` leaves out the step lines and the error (a single
        host already printed its steps as they ran, and the error ends the command)."""
        head = "FAILED" if self.error else ("stopped" if self.stopped else ("changed" if self.changed else "unchanged"))
        lines = [f"{self.host}: {head} in {self.seconds:.1f} s"]
        if steps:
            lines += [r.line() for r in self.results]
        if self.stopped:
            lines.append(f"  -> {self.stopped}")
        if self.error and steps:
            lines.append(f"  error: {self.error}")
        lines += [f"  {line}" for line in self.outputs]
        return "\n".join(lines)


def run_steps(steps: list[Step], report: RunReport, *, dry_run: bool = False,
              echo: Callable[[str], None] | None = None) -> RunReport:
    """Check, then act, each step in order; fill ``report``. Raises nothing for step
    failures that are RentstackErrors: they end up in ``report.error``."""
    start = time.monotonic()

    def emit(result: StepResult) -> None:
        report.results.append(result)
        if echo:
            echo(result.line())

    for index, step in enumerate(steps):
        t0 = time.monotonic()
        try:
            reason = step.check()
            if reason is not None:
                emit(StepResult(step.name, "skipped", reason, time.monotonic() - t0))
                continue
            if dry_run:
                emit(StepResult(step.name, "would run", step.summary))
                continue
            detail = step.act()
            emit(StepResult(step.name, "done", detail, time.monotonic() - t0))
        except StopRun as stop:
            emit(StepResult(step.name, "done", "stopping here", time.monotonic() - t0))
            report.stopped = stop.message
            break
        except RentstackError as exc:
            emit(StepResult(step.name, "failed", str(exc), time.monotonic() - t0))
            report.error = f"{step.name}: {exc}"
            for later in steps[index + 1:]:
                report.results.append(StepResult(later.name, "not reached", later.summary))
            break
    report.seconds += time.monotonic() - start
    return report


def plan_lines(steps: list[Step]) -> list[str]:
    """The plan as numbered lines, without running any check (for listings)."""
    return [f"{i}. {s.name}: {s.summary}" for i, s in enumerate(steps, 1)]
