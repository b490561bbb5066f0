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
from rentstack.remote import runners
from rentstack.remote.connection import Remote, tunnel_line
from rentstack.remote.hosts import Auth, HostSpec
from rentstack.remote.provision import HostRun, Options, replace_sets, resolve_inputs
from rentstack.remote.steps import RunReport, run_steps
from rentstack.start import Attempt, start_with_autofix

_print_lock = threading.Lock()


def _echo_for(spec: HostSpec, many: bool) -> Callable[[str], None]:
    def echo(line: str) -> None:
        with _print_lock:
            print(f"{spec.label} {line.lstrip()}" if many else line, flush=True)
    return echo


def _steps_for(action: str, run: HostRun):
    return {"provision": run.provision_steps, "download": run.download_steps, "up": run.up_steps}[action]()


def run_action(action: str, spec: HostSpec, auth: Auth, opts: Options, *, dry_run: bool = False,
               auto_fix: int = 0, many: bool = False) -> RunReport:
    """provision | download | up on one host; never raises for a RentstackError (see report.error)."""
    report = RunReport(spec.label)
    echo = _echo_for(spec, many)
    start = time.monotonic()
    try:
        with Remote(spec, auth) as remote:
            def attempt(overrides: dict, n: int) -> Attempt:
                run = HostRun(remote, replace_sets(opts, overrides), echo)
                if n == 0:
                    echo(f"{spec.label}: {run.facts.os.pretty_name or 'unknown OS'}, {run.facts.effective_cpus:g} CPUs, "
                         f"{len(run.facts.gpus)} GPU(s), runner {run.runner}; data disk {opts.data_dir}"
                         + (" — dry run, nothing changes" if dry_run else ""))
                result = run_steps(_steps_for(action, run), RunReport(spec.label, seconds=report.seconds),
                                   dry_run=dry_run, echo=echo)
                return Attempt(ok=result.ok, log=run.last_log, result=(run, result))

            done = start_with_autofix(attempt, auto_fix=auto_fix, echo=echo)
            run, report = done.result
            if not report.error and not report.stopped and not dry_run and action in ("provision", "up"):
                run.verify(report)
            elif action == "download" and not report.error and not dry_run:
                report.outputs.append("weights ready; serve with `fab up` (boot with the GPU first for GPU tiers)")
    except RentstackError as exc:
        report.error = str(exc)
    report.seconds = time.monotonic() - start
    return report


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


def _session(spec: HostSpec, auth: Auth, opts: Options) -> tuple[Remote, HostRun]:
    remote = Remote(spec, auth).open()
    return remote, HostRun(remote, opts)


def down(spec: HostSpec, auth: Auth, opts: Options) -> str:
    remote, run = _session(spec, auth, opts)
    with remote:
        if run.runner == "compose":
            remote.check(runners.compose_down(run.layout, run.tier, opts.project), "docker compose down")
            what = "containers removed"
        else:
            slugs = tuple(p.slug for p in runners.native_programs(run.layout, run.tier.name))
            _, out = remote.run(runners.native_stop(run.layout, run.tier.name, slugs))
            what = out.strip() or "stopped"
        run.state.forget(run.key("server"))
        run.save_state()
        return f"{spec.label}: tier {run.tier.name} {what}"


def status(spec: HostSpec, auth: Auth, opts: Options) -> tuple[bool, str]:
    remote, run = _session(spec, auth, opts)
    with remote:
        running = run.server_running()
        healthy = running and run.healthy()
        steps = ", ".join(sorted(run.state.steps)) or "none"
        text = (f"{spec.label}: tier {run.tier.name} ({run.runner}) "
                f"{'healthy' if healthy else 'running, not healthy' if running else 'not running'} on 127.0.0.1:{opts.port}; "
                f"finished steps: {steps}")
        return healthy, text


def logs(spec: HostSpec, auth: Auth, opts: Options, tail: int) -> str:
    remote, run = _session(spec, auth, opts)
    with remote:
        return run.log_tail(tail)


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
