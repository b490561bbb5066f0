"""Plan, then act: a provisioning run is a list of steps built first, then executed.

A step has a name, a ``check(view)`` that returns why it can be skipped (its goal already
holds) or None, and an ``act(host)`` that reaches the goal and returns one line saying what
it did. A check gets a read-only view of the host (facts and the state file, nothing that
writes); ``--dry-run`` runs only the checks and prints what would happen. A step that fails
stops the run (later steps depend on earlier ones).

One module per concern builds its steps from a frozen ``Ctx`` (rentstack.remote.steps.context):
disk, caches, docker, weights, runtime, render, server. The plans below put them in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from rentstack.errors import RentstackError

if TYPE_CHECKING:
    from rentstack.remote.steps.context import Ctx, Host, View

Status = Literal["done", "skipped", "would run", "failed", "not reached"]


class StopRun(Exception):
    """A step ends the run early on purpose (e.g. no GPU: stop after the download)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ServerFailed(RentstackError):
    """The server did not become healthy; ``log`` is its log for the doctor."""

    def __init__(self, message: str, log: str) -> None:
        super().__init__(message)
        self.log = log


def _nothing(view: View) -> str | None:
    return None


@dataclass(frozen=True)
class Step:
    """One unit of provisioning."""

    name: str
    summary: str
    """What the step does, for --dry-run and reports ("grow /root/autodl-tmp to the device size")."""
    act: Callable[[Host], str]
    check: Callable[[View], str | None] = _nothing
    """Why the step can be skipped, or None. Gets a read-only view: it cannot write."""


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
    server_log: str = ""
    """The server's log when the server step failed (what the doctor reads)."""

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


def run_steps(steps: list[Step], report: RunReport, host: Host, *, dry_run: bool = False,
              echo: Callable[[str], None] | None = None) -> RunReport:
    """Check, then act, each step in order; fill ``report``. Raises nothing for step
    failures that are RentstackErrors: they end up in ``report.error``."""
    start = time.monotonic()
    view = host.view()

    def emit(result: StepResult) -> None:
        report.results.append(result)
        if echo:
            echo(result.line())

    for index, step in enumerate(steps):
        t0 = time.monotonic()
        try:
            reason = step.check(view)
            if reason is not None:
                emit(StepResult(step.name, "skipped", reason, time.monotonic() - t0))
                continue
            if dry_run:
                emit(StepResult(step.name, "would run", step.summary))
                continue
            detail = step.act(host)
            emit(StepResult(step.name, "done", detail, time.monotonic() - t0))
        except StopRun as stop:
            emit(StepResult(step.name, "done", "stopping here", time.monotonic() - t0))
            report.stopped = stop.message
            break
        except RentstackError as exc:
            emit(StepResult(step.name, "failed", str(exc), time.monotonic() - t0))
            report.error = f"{step.name}: {exc}"
            report.server_log = getattr(exc, "log", "")
            for later in steps[index + 1:]:
                report.results.append(StepResult(later.name, "not reached", later.summary))
            break
    report.seconds += time.monotonic() - start
    return report


def plan_lines(steps: list[Step]) -> list[str]:
    """The plan as numbered lines, without running any check (for listings)."""
    return [f"{i}. {s.name}: {s.summary}" for i, s in enumerate(steps, 1)]


def check_exposure(ctx: Ctx) -> None:
    """Refuse, before anything is done, to publish the front over plain HTTP beyond loopback.

    A rented host's front serves plain HTTP (HTTPS with a certificate on the host is not built):
    on 127.0.0.1 it is reached through `fab tunnel` (SSH encrypts); on AutoDL's custom-service
    port the provider's proxy adds HTTPS in front of it. Anywhere else the bearer key would cross
    the network in clear, so that takes --plain-http."""
    import ipaddress

    if ipaddress.ip_address(ctx.opts.bind).is_loopback or ctx.opts.port in ctx.facts.autodl_urls:
        return
    if not ctx.opts.plain_http:
        raise RentstackError(
            f"--bind {ctx.opts.bind} would publish {ctx.label}'s front door on port {ctx.opts.port} over plain HTTP, "
            "so the API key would cross the network in clear: keep the default --bind 127.0.0.1 and use "
            "`fab tunnel`, or on AutoDL use --port 6006 (its proxy serves HTTPS), or add --plain-http on a "
            "private network you trust")


def provision_steps(ctx: Ctx) -> list[Step]:
    """Everything: disk, caches, weights, then (with the GPUs there) docker, runtime, render, server."""
    from rentstack.remote.steps import caches, disk, docker, front, render, runtime, server, weights

    check_exposure(ctx)

    # A GPU tier on a host booted without GPU stops after the download: the runtime's
    # room is checked by the `fab up` that follows, on the host with its GPU.
    serves_now = ctx.tier.accelerator == "cpu" or bool(ctx.facts.gpus)
    _parts_need_docker(ctx)
    # Docker (and the NVIDIA toolkit) only after the GPU gate: a no-GPU boot just downloads.
    return [*_release(ctx), disk.grow(ctx), disk.space(ctx, runtime=serves_now), caches.step(ctx), weights.step(ctx),
            weights.gpu_gate(ctx), docker.step(ctx), runtime.step(ctx), *runtime.parts(ctx), *front.steps(ctx),
            render.step(ctx), server.step(ctx)]


def _parts_need_docker(ctx: Ctx) -> None:
    """--profiles webui/monitoring on a host the facts show without Docker: one line, before
    any step (a --runner native flag was already refused with the other options)."""
    from rentstack.render.around import check_runner

    check_runner(ctx.opts.profiles, ctx.runner)


def _release(ctx: Ctx) -> list[Step]:
    """GPU tiers first say which vLLM the host gets (the cpu tier always runs versions.VLLM_VERSION)."""
    from rentstack.remote.steps import release

    return [release.step(ctx)] if ctx.tier.accelerator == "gpu" else []


def download_steps(ctx: Ctx) -> list[Step]:
    from rentstack.remote.steps import caches, disk, weights

    return [disk.grow(ctx), disk.space(ctx, runtime=False), caches.step(ctx), weights.step(ctx)]


def up_steps(ctx: Ctx) -> list[Step]:
    from rentstack.remote.steps import disk, docker, front, render, runtime, server, weights

    check_exposure(ctx)
    if ctx.tier.accelerator == "gpu" and not ctx.facts.gpus:
        raise RentstackError(f"tier {ctx.tier.name} needs a GPU but {ctx.label} has none "
                             "(nvidia-smi sees no GPU): boot the instance with its GPU, then run `fab up` again")
    _parts_need_docker(ctx)
    return [*_release(ctx), disk.space(ctx), docker.step(ctx), weights.step(ctx), runtime.step(ctx),
            *runtime.parts(ctx), *front.steps(ctx), render.step(ctx), server.step(ctx)]


PLANS: dict[str, Callable[[Ctx], list[Step]]] = {"provision": provision_steps, "download": download_steps,
                                                 "up": up_steps}
