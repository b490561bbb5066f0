"""The server: started by docker compose or by the native runner's supervisors, then waited
on until /health answers; plus the reads `fab status/logs/down` need."""

from __future__ import annotations

import shlex

from rentstack.errors import RentstackError
from rentstack.remote import runners
from rentstack.render.around import active_parts
from rentstack.remote.facts import SHM, command_fact, log_tail_fact, parse_compose_state, parse_ok
from rentstack.remote.steps import ServerFailed, Step
from rentstack.remote.steps import render as render_step
from rentstack.remote.steps.context import Ctx, Host, View

SHM_MIN_BYTES = 512 * 2**20
"""vLLM 0.32 asked for 160 MiB of /dev/shm with one CPU worker; leave room for more."""


def running(ctx: Ctx, view: View) -> bool:
    if ctx.runner == "compose":
        state = view.read(command_fact("compose_state", runners.compose_state(ctx.layout, ctx.tier, ctx.opts.project),
                                       parse_compose_state))
        return state.startswith("running")
    return view.read(command_fact("native_running", runners.native_running(ctx.layout, ctx.tier.name), parse_ok))


def healthy(ctx: Ctx, view: View) -> bool:
    return view.read(command_fact("health", runners.health_probe(ctx.opts.port), parse_ok))


def log_tail(ctx: Ctx, view: View, lines: int = 40) -> str:
    if ctx.runner == "compose":
        command = runners.compose_logs(ctx.layout, ctx.tier, ctx.opts.project, lines)
    else:
        command = f"tail -n {int(lines)} {shlex.quote(ctx.layout.log(ctx.tier.name))} 2>/dev/null"
    return view.read(log_tail_fact(command))


def check_shm(view: View) -> None:
    """vLLM's shared-memory broadcast needs room in /dev/shm; Docker gives containers 64 MiB."""
    size = view.read(SHM)
    if 0 < size < SHM_MIN_BYTES:
        raise RentstackError(f"/dev/shm on the host is {size / 2**20:.0f} MiB; vLLM needs at least "
                             f"{SHM_MIN_BYTES / 2**20:.0f} MiB for its shared-memory broadcast: give the "
                             "container a larger shared memory (docker --shm-size 2g)")


def step(ctx: Ctx) -> Step:
    port, wait_s = ctx.opts.port, ctx.health_timeout

    def check(view: View) -> str | None:
        rendered = render_step.current(ctx, view)
        if (rendered is not None and view.done(ctx.key("server"), render_step.digest(rendered))
                and running(ctx, view) and healthy(ctx, view)):
            return f"server running and healthy with this configuration on 127.0.0.1:{port} — skipped"
        return None

    def act(host: Host) -> str:
        rendered = render_step.current(ctx, host.view())
        host.forget(ctx.key("server"))
        if ctx.runner == "compose":
            parts = active_parts(ctx.opts.profiles, ctx.opts.idle_stop)   # --profiles, idle-stop
            code, out = host.run(runners.compose_up(ctx.layout, ctx.tier, ctx.opts.project, wait_s, parts),
                                 timeout=wait_s + 300)
            why = out.strip().splitlines()[-1:] if code else []
        else:
            check_shm(host.view())
            programs = runners.native_programs(ctx.layout, ctx.tier.name, idle=ctx.opts.idle_stop != "off")
            every = runners.native_programs(ctx.layout, ctx.tier.name, idle=True)
            host.run(runners.native_stop(ctx.layout, ctx.tier.name, tuple(p.slug for p in every)))
            for program in programs:
                host.check(runners.native_start(ctx.layout, ctx.tier.name, program),
                           f"starting the supervisor of {program.name}")
            code, _ = host.run(runners.native_wait(ctx.layout, ctx.tier.name, port, wait_s), timeout=wait_s + 60)
            why = [{1: f"no answer on /health within {wait_s} s", 4: "the supervisor died",
                    5: "vLLM crashed 3 times"}.get(code, f"exit {code}")]
        if code:
            view = host.view()
            tail = log_tail(ctx, view, 15).rstrip()
            raise ServerFailed(f"the server did not become healthy ({' '.join(why)}); last log lines:\n{tail}",
                               log_tail(ctx, view, 400))
        digest = render_step.digest(rendered) if rendered else ""
        return host.record(ctx.key("server"), digest, f"{ctx.runner} server healthy on 127.0.0.1:{port}")

    how = "docker compose up -d --wait" if ctx.runner == "compose" else "start the supervisor (setsid nohup)"
    return Step("server", f"{how}; wait for /health up to {wait_s} s", act, check)
