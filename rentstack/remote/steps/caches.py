"""Caches on the data disk: pip, Hugging Face, ModelScope and vLLM write there, not to the
small system disk; env.sh says so and every login shell sources it."""

from __future__ import annotations

import shlex

from rentstack.remote.facts import line_in_file_fact
from rentstack.remote.host_state import checksum
from rentstack.remote.layout import env_sh_text, source_line
from rentstack.remote.steps import Step
from rentstack.remote.steps.context import Ctx, Host, View

RC_FILES = ("~/.bashrc", "~/.profile")


def step(ctx: Ctx) -> Step:
    text = env_sh_text(ctx.layout)
    digest = checksum(text)
    line = source_line(ctx.layout)

    def check(view: View) -> str | None:
        if view.done("caches", digest) and view.read(line_in_file_fact(line, RC_FILES[0])):
            return "pip/HF/ModelScope caches already point at the data disk — skipped"
        return None

    def act(host: Host) -> str:
        host.write(ctx.layout.env_sh, text)
        for rc in RC_FILES:
            host.check(f"touch {rc} && (grep -qxF {shlex.quote(line)} {rc} || echo {shlex.quote(line)} >> {rc})",
                       f"editing {rc}")
        host.check(f"mkdir -p {shlex.quote(ctx.layout.cache)}", "mkdir cache")
        return host.record("caches", digest, f"caches on the data disk ({ctx.layout.env_sh}, sourced from ~/.bashrc)")

    return Step("caches", "put pip/HF/ModelScope caches on the data disk", act, check)
