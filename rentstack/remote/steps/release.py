"""Which vLLM the host runs: the choice (made from the facts when the context was built) is
shown in the plan and recorded in the state file, so a re-run keeps it."""

from __future__ import annotations

from rentstack.remote.steps import Step
from rentstack.remote.steps.context import RELEASE_KEY, Ctx, Host, View


def step(ctx: Ctx) -> Step:
    choice = ctx.choice

    def check(view: View) -> str | None:
        if choice is None:
            return "no GPU seen: the release is chosen by `fab up` once the instance has its GPU — skipped"
        if view.done(RELEASE_KEY, choice.release.name):
            return f"{choice.line} — recorded"
        return None

    def act(host: Host) -> str:
        assert choice is not None
        return host.record(RELEASE_KEY, choice.release.name, choice.line)

    summary = choice.line if choice else "choose the vLLM release from the driver and cards"
    return Step("vllm: release", summary, act, check)
