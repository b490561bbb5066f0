"""What the fab tasks do, for one host or many: connect, build the plan, run it, report.

The fabfile only parses flags into ``Options``/``Auth`` and calls ``run_hosts``. Several
hosts run in parallel threads (one SSH connection each); every host gets its own report,
printed together at the end, and one host's failure does not stop the others.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from rentstack.errors import RentstackError
from rentstack.remote import router_host, runners
from rentstack.remote.connection import Remote, free_local_port, tunnel_line
from rentstack.remote.facts import command_fact, parse_compose_services
from rentstack.remote.hosts import Auth, HostSpec
from rentstack.remote.options import Options, replace_sets
from rentstack.remote.provision import host_tier, resolve_inputs
from rentstack.remote.steps import PLANS, RunReport, run_steps
from rentstack.remote.steps import render as render_step
from rentstack.remote.steps import server as server_step
from rentstack.remote.steps.context import Ctx, HostIO, connect
from rentstack.start import Attempt, calibrate, start_with_autofix
from rentstack.verify import ready_lines, smoke, smoke_line

_print_lock = threading.Lock()


def _echo_for(spec: HostSpec, many: bool) -> Callable[[str], None]:
    def echo(line: str) -> None:
        with _print_lock:
            print(f"{spec.label} {line.lstrip()}" if many else line, flush=True)
    return echo


def run_action(action: str, spec: HostSpec, auth: Auth, opts: Options, *, dry_run: bool = False,
               auto_fix: int = 0, many: bool = False) -> RunReport:
    """provision | download | up on one host; never raises for a RentstackError (see report.error)."""
    report = RunReport(spec.label)
    echo = _echo_for(spec, many)
    start = time.monotonic()
    try:
        with Remote(spec, auth) as remote:
            def attempt(overrides: dict, n: int) -> Attempt:
                ctx, host = connect(remote, replace_sets(opts, overrides))
                if n == 0:
                    f = ctx.facts
                    echo(f"{spec.label}: {f.os.pretty_name or 'unknown OS'}, {f.effective_cpus:g} CPUs, "
                         f"{len(f.gpus)} GPU(s), runner {ctx.runner}; data disk {opts.data_dir}"
                         + (" — dry run, nothing changes" if dry_run else ""))
                result = run_steps(PLANS[action](ctx), RunReport(spec.label), host, dry_run=dry_run, echo=echo)
                return Attempt(ok=result.ok, log=result.server_log, result=(ctx, host, result))

            done = start_with_autofix(attempt, auto_fix=auto_fix, echo=echo)
            ctx, host, report = done.result
            if not report.error and not report.stopped and not dry_run and action in ("provision", "up"):
                verify(ctx, host, report)
            elif action == "download" and not report.error and not dry_run:
                report.outputs.append("weights ready; serve with `fab up` (boot with the GPU first for GPU tiers)")
    except RentstackError as exc:
        report.error = str(exc)
    report.seconds = time.monotonic() - start
    return report


def verify(ctx: Ctx, host: HostIO, report: RunReport, check: bool = True) -> None:
    """After a good start: save a GPU calibration, send the smoke request through an SSH
    tunnel, then say where to reach the server."""
    port = ctx.opts.port
    view = host.view()
    if ctx.tier.accelerator == "gpu":
        tier = host_tier(ctx.tier, ctx.facts)
        saved = calibrate(server_step.log_tail(ctx, view, 2000), tier.gpu.name, tier.gpu.memory_gib, ctx.model.name,
                          echo=report.outputs.append)
        if saved is None:
            report.outputs.append("calibration: this start's log gave no figures to save")
    if check:
        with host.tunnel(free_local_port(), port) as url:
            result = smoke(url, render_step.api_key(ctx, view), ctx.model.name)
        report.outputs.append(smoke_line(result, ", through an SSH tunnel"))
    report.outputs += ready_lines(f"http://127.0.0.1:{port}", ctx.model.name, str(ctx.local_key_file),
                                  " through the tunnel below")
    report.outputs.append(f"on the host: http://127.0.0.1:{port}/v1, key in {render_step.secrets_path(ctx)}")
    report.outputs.append(f"tunnel: {tunnel_line(ctx.spec, port, port)}  then http://127.0.0.1:{port}/v1 here")
    report.outputs += parts_lines(ctx)
    url = ctx.facts.autodl_service_url
    if url:
        if port == 6006 and ctx.opts.bind == "0.0.0.0":
            report.outputs.append(f"AutoDL custom service: {url}/v1")
        else:
            report.outputs.append(f"AutoDL custom service: {url} serves port 6006; "
                                  "use --port 6006 --bind 0.0.0.0 to publish there (the key stays required)")


def parts_lines(ctx: Ctx) -> list[str]:
    """Where the parts of --profiles are reached: the UI through its own tunnel, Prometheus with
    docker compose exec on the host (it publishes no port)."""
    from rentstack.render.around import ADMIN_EMAIL, WEBUI_PORT

    lines = []
    if "webui" in ctx.opts.profiles:
        lines.append(f"chat UI: {tunnel_line(ctx.spec, WEBUI_PORT, WEBUI_PORT)}  then http://127.0.0.1:{WEBUI_PORT}/ "
                     f"here (log in as {ADMIN_EMAIL}; password: WEBUI_ADMIN_PASSWORD in "
                     f"{render_step.webui_admin_path(ctx)} on the host, mode 0600)")
    if "monitoring" in ctx.opts.profiles:
        query = runners.compose_base(ctx.layout, ctx.tier, ctx.opts.project, ("monitoring",))
        lines.append(f"metrics: Prometheus scrapes /metrics through the front every 5 s; on the host: "
                     f"{query} exec prometheus curl -s localhost:9090/api/v1/targets")
    return lines


def run_hosts(action: str, specs: list[HostSpec], auth: Auth, opts: Options, **kwargs) -> list[RunReport]:
    """Run ``action`` on every host at once; print each host's report; return the reports."""
    resolve_inputs(opts)  # a typo in --tier/--model fails here, before any host is touched
    many = len(specs) > 1
    with ThreadPoolExecutor(max_workers=min(16, len(specs))) as pool:
        futures = [pool.submit(run_action, action, spec, auth, opts, many=many, **kwargs) for spec in specs]
        reports = [f.result() for f in futures]
    print(("\n== per-host report ==\n" if many else "\n") + "\n".join(r.text(steps=many) for r in reports), flush=True)
    return reports


def failures(reports: list[RunReport]) -> str | None:
    """The message for Exit when any host failed: one line per failed host."""
    bad = [r for r in reports if r.error]
    if not bad:
        return None
    return "\n".join(f"{r.host}: {r.error.splitlines()[0]}" for r in bad)


# --------------------------------------------------------------------------- small tasks


def _session(spec: HostSpec, auth: Auth, opts: Options) -> tuple[Remote, Ctx, HostIO]:
    remote = Remote(spec, auth).open()
    ctx, host = connect(remote, opts)
    return remote, ctx, host


def down(spec: HostSpec, auth: Auth, opts: Options) -> str:
    remote, ctx, host = _session(spec, auth, opts)
    with remote:
        if ctx.runner == "compose":
            host.check(runners.compose_down(ctx.layout, ctx.tier, opts.project), "docker compose down")
            what = "containers removed"
        else:
            slugs = tuple(p.slug for p in runners.native_programs(ctx.layout, ctx.tier.name, idle=True))
            _, out = host.run(runners.native_stop(ctx.layout, ctx.tier.name, slugs))
            what = " ".join(out.split()) or "stopped"
        host.forget(ctx.key("server"))
        return f"{spec.label}: tier {ctx.tier.name} {what}"


def status(spec: HostSpec, auth: Auth, opts: Options) -> tuple[bool, str]:
    remote, ctx, host = _session(spec, auth, opts)
    with remote:
        view = host.view()
        running = server_step.running(ctx, view)
        healthy = running and server_step.healthy(ctx, view)
        steps = ", ".join(sorted(view.steps)) or "none"
        text = (f"{spec.label}: tier {ctx.tier.name} ({ctx.runner}) "
                f"{'healthy' if healthy else 'running, not healthy' if running else 'not running'} on 127.0.0.1:{opts.port}; "
                f"finished steps: {steps}")
        if ctx.runner == "compose":
            parts = view.read(command_fact("compose_services", runners.compose_parts_state(
                ctx.layout, ctx.tier, opts.project), parse_compose_services))
            text += "".join(f"\n  {service}: {state}" for service, state in parts.items())
        router_ok, router = router_host.status_lines(ctx, view)      # `fab router --on` this host
        return healthy and router_ok, "\n".join([text, *router])


def logs(spec: HostSpec, auth: Auth, opts: Options, tail: int) -> str:
    remote, ctx, host = _session(spec, auth, opts)
    with remote:
        return server_step.log_tail(ctx, host.view(), tail)


def doctor(spec: HostSpec, auth: Auth, opts: Options, tail: int = 2000) -> str:
    from rentstack.doctor import diagnose

    log = logs(spec, auth, opts, tail)
    if not log.strip():
        raise RentstackError(f"{spec.label}: no server log for tier {opts.tier} yet; run `fab up` first")
    d = diagnose(log.splitlines())
    lines = [f"doctor: {d.explanation}"] + [f"fix: {f.changes} — {f.why}" for f in d.fixes]
    return "\n".join(lines)


def tunnel(spec: HostSpec, auth: Auth, opts: Options, local_port: int, seconds: float | None = None) -> None:
    """Forward localhost:local_port to the server until Ctrl-C (or ``seconds``, for tests)."""
    with Remote(spec, auth) as remote:
        with remote.tunnel(local_port, opts.port) as url:
            print(f"tunnel open: {url}/v1 -> {spec.label} 127.0.0.1:{opts.port}  (Ctrl-C closes it)")
            print(f"same with ssh: {tunnel_line(spec, local_port, opts.port)}", flush=True)
            try:
                if seconds is not None:
                    time.sleep(seconds)
                else:
                    while True:
                        time.sleep(3600)
            except KeyboardInterrupt:
                print("tunnel closed", file=sys.stderr)
