"""The tier's files on the host, rendered here with the host's real numbers and uploaded when
they differ from what is there. The texts come from rentstack.render.artifacts (the same
function the local executor writes with); the key stays the one already on the host."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from dataclasses import replace

from rentstack.errors import RentstackError
from rentstack.calibration import measured_for_tier
from rentstack.remote import runners
from rentstack.remote.facts import file_exists_fact, file_text_fact, sha256_fact
from rentstack.remote.host_state import checksum
from rentstack.remote.layout import cache_env
from rentstack.remote.provision import host_tier
from rentstack.remote.options import write_local_secret
from rentstack.remote.steps import Step
from rentstack.remote.steps import front as front_step
from rentstack.remote.steps.context import Ctx, Host, View
from rentstack.render import Deployment, build_deployment
from rentstack.render.around import (PART_DIRS, PROJECT_FILES, REMOTE_IDLE_IMAGE, WEBUI_ADMIN_FILE, active_parts,
                                     webui_admin_text)
from rentstack.render.artifacts import runtime_env_text, tier_files
from rentstack.render.secrets import (METRICS_VAR, SECRETS_FILE, new_api_key, new_metrics_token, parse_api_key,
                                     parse_secret)

Files = dict[str, tuple[str, int]]
"""Remote path -> (text, mode)."""


def deployment(ctx: Ctx) -> Deployment:
    tier = host_tier(ctx.tier, ctx.facts)
    # tls=False: the key is required on every route; HTTPS for a remote front needs its
    # certificate kept on the host (not done yet: reach it through `fab tunnel` or AutoDL's proxy).
    dep = build_deployment(tier, ctx.opts.model, dict(ctx.opts.sets), runner=ctx.runner, bind=ctx.opts.bind,
                           port=ctx.opts.port, models_dir=ctx.layout.models, force=ctx.opts.force,
                           release=ctx.release, measured=measured_for_tier(tier, ctx.opts.model, ctx.release),
                           tls=False)
    if ctx.runner == "compose" and ctx.opts.idle_stop != "off" and ctx.opts.idle_action == "poweroff":
        raise RentstackError("--idle-action poweroff needs the native runner (container rentals: AutoDL, RunPod, "
                             "Vast); on a Docker host the watchdog runs in a container and can only stop the "
                             "server: use --idle-action stop, or --runner native")
    return replace(dep, profiles=ctx.opts.profiles, idle_stop=ctx.opts.idle_stop, idle_action=ctx.opts.idle_action)


def secrets_path(ctx: Ctx) -> str:
    return f"{ctx.layout.tier_dir(ctx.tier.name)}/{SECRETS_FILE}"


def api_key(ctx: Ctx, view: View) -> str | None:
    """The tier's key on the host (kept across renders, so clients keep working), or None."""
    return parse_api_key(view.read(file_text_fact(secrets_path(ctx))) or "")


def wanted_key(ctx: Ctx, view: View) -> str | None:
    """The key the host should have: a replica set's shared key, else the one already there."""
    if ctx.opts.key_file is not None:
        key = parse_api_key(Path(ctx.opts.key_file).read_text())
        if not key:
            raise RentstackError(f"{ctx.opts.key_file} holds no VLLM_API_KEY line: delete it to make a new shared key")
        return key
    return api_key(ctx, view)


def metrics_token(ctx: Ctx, view: View) -> str | None:
    """The token that opens only /metrics at the front door, kept on the host like the key."""
    return parse_secret(view.read(file_text_fact(secrets_path(ctx))) or "", METRICS_VAR)


def files(ctx: Ctx, key: str, token: str, njs: bool = True) -> Files:
    """Everything the server needs, with ``key`` and ``token`` in secrets.env; ``njs``: the
    native front can check the key with njs (pure: no host access)."""
    tdir = ctx.layout.tier_dir(ctx.tier.name)
    dep = deployment(ctx)
    texts = tier_files(dep, api_key=key, state_dir=ctx.layout.deploy, idle_image=REMOTE_IDLE_IMAGE,
                       cache_dir=f"{ctx.layout.cache}/vllm", cache_env=cache_env(ctx.layout), metrics_token=token,
                       log_dir=ctx.layout.log(ctx.tier.name).rsplit("/", 1)[0], njs=njs)
    out = {f"{tdir}/{name}": value for name, value in texts.items()}
    if ctx.runner == "compose":
        out[f"{ctx.layout.deploy}/compose.yaml"] = (runners.COMPOSE_FILE.read_text(), 0o644)
        # What the parts mount from the project directory (the watchdog, Prometheus' config).
        for part in active_parts(dep.profiles, dep.idle_stop):
            for rel in PROJECT_FILES.get(part, ()):
                out[f"{ctx.layout.deploy}/{rel}"] = ((runners.COMPOSE_FILE.parent / rel).read_text(), 0o644)
    else:
        out[ctx.layout.supervisor] = (runners.SUPERVISOR_SCRIPT.read_text(), 0o755)
        if dep.idle_stop != "off":      # the watchdog, and what it watches (no secrets: those come from secrets.env)
            out[ctx.layout.idle_watchdog] = (runners.IDLE_WATCHDOG.read_text(), 0o644)
            env = runners.idle_env(ctx.layout, ctx.tier.name, ctx.opts.port, dep.idle_stop, dep.idle_action)
            out[f"{tdir}/{runners.IDLE_ENV}"] = (runtime_env_text(env), 0o644)
    return out


def webui_admin_path(ctx: Ctx) -> str:
    return f"{ctx.layout.deploy}/{WEBUI_ADMIN_FILE}"


def part_dirs(ctx: Ctx) -> list[str]:
    """The parts' data directories on the host's data disk (rentstack.render.around.PART_DIRS)."""
    return [f"{ctx.layout.deploy}/{d}" for part in ctx.opts.profiles for d in PART_DIRS.get(part, ())]


def ensure_part_state(ctx: Ctx, host: Host) -> list[str]:
    """The parts' directories (0700), and the chat UI's admin login: generated here once,
    written 0600 over SFTP (never on a command line or in a YAML file), kept on re-runs."""
    made = []
    dirs = part_dirs(ctx)
    if dirs:
        quoted = " ".join(shlex.quote(d) for d in dirs)
        host.check(f"mkdir -p -- {quoted} && chmod 700 -- {quoted}", "the parts' directories")
    if "webui" in ctx.opts.profiles and not host.view().read(file_exists_fact(webui_admin_path(ctx))):
        host.write(webui_admin_path(ctx), webui_admin_text(), 0o600)
        made.append(WEBUI_ADMIN_FILE)
    return made


def digest(rendered: Files) -> str:
    """What the server step compares: the files' content, not their modes."""
    return checksum({p: hashlib.sha256(t.encode()).hexdigest() for p, (t, _) in rendered.items()})


def changed(rendered: Files, view: View) -> list[str]:
    paths = sorted(rendered)
    have = view.read(sha256_fact(paths))
    return [p for p in paths if have.get(p) != hashlib.sha256(rendered[p][0].encode()).hexdigest()]


def current(ctx: Ctx, view: View) -> Files | None:
    """The files as they would be rendered now, or None when the host has no key yet."""
    key, token = wanted_key(ctx, view), metrics_token(ctx, view)
    return files(ctx, key, token, front_step.njs_usable(ctx, view)) if key and token else None


def step(ctx: Ctx) -> Step:
    def check(view: View) -> str | None:
        rendered = current(ctx, view)
        admin_missing = "webui" in ctx.opts.profiles and not view.read(file_exists_fact(webui_admin_path(ctx)))
        if rendered is not None and not changed(rendered, view) and not admin_missing:
            return f"rendered files unchanged ({len(rendered)} files in {ctx.layout.tier_dir(ctx.tier.name)}) — skipped"
        return None

    def act(host: Host) -> str:
        view = host.view()
        rendered = files(ctx, wanted_key(ctx, view) or new_api_key(), metrics_token(ctx, view) or new_metrics_token(),
                         front_step.njs_usable(ctx, view))
        todo = changed(rendered, host.view())
        for path in todo:
            text, mode = rendered[path]
            host.write(path, text, mode)
        save_local_key(ctx, rendered[secrets_path(ctx)][0])
        made = ensure_part_state(ctx, host)
        names = ", ".join([p.rsplit("/", 1)[1] for p in todo] + [f"made {m} (0600)" for m in made])
        return host.record(ctx.key("render"), digest(rendered), f"uploaded {names}")

    return Step("render", f"render tier {ctx.tier.name} with this host's numbers and upload it", act, check)


def save_local_key(ctx: Ctx, secrets_text: str) -> None:
    """A 0600 copy of the key on this machine, for curl through the tunnel."""
    write_local_secret(ctx.local_key_file, secrets_text)
