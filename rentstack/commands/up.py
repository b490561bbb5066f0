"""`rentstack up|down|status|logs|smoke`: run a tier with docker compose on this machine.

up = preflight (Docker, port) -> CPU image if needed -> model directory -> render
     -> `docker compose up --wait` -> endpoint, key location and a curl line.
When the server does not become healthy, the doctor reads its log and the command prints
its advice; with --auto-fix N it applies the first fix and retries, at most N times.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from rentstack.commands._common import CACHE_DIR, REPO, STATE_DIR, add_tier_args, tier_from_args
from rentstack.errors import RentstackError
from rentstack.safe import check_name
from rentstack.local.around import ADMIN_EMAIL, ensure_prometheus_dir, ensure_webui_files, read_env_file
from rentstack.local.compose import Stack
from rentstack.local.profile_images import build_profile_images
from rentstack.render import around
from rentstack.render.around import check_idle, check_profiles
from rentstack.local.docker import port_free, require_docker
from rentstack.local.image import build_cpu_image, build_front_image
from rentstack.local.models import ensure_model
from rentstack.local.deploy_dir import read_api_key, read_record, write_deployment
from rentstack.calibration import measured_for_tier
from rentstack.render.front import FRONT_DIR
from rentstack.render import build_deployment, compose_profile
from rentstack.config.vllm_args import parse_set
from rentstack.start import Attempt, calibrate, start_with_autofix
from rentstack.verify import SMOKE_PROMPT, ready_lines, smoke, wait_healthy



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="render and start a tier here with docker compose, wait until healthy")
    add_tier_args(p)
    p.add_argument("--model", help="catalog name or modelscope:ID / hf:ID / local:PATH")
    p.add_argument("--model-config", help="config.json for a model outside the catalog")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--public", action="store_true",
                   help="publish on 0.0.0.0 over HTTPS (the API key stays required)")
    p.add_argument("--tls", action="store_true", help="serve HTTPS on any bind (--public always does)")
    p.add_argument("--tls-cert", help="certificate (PEM) for the front's HTTPS; default: a self-signed one")
    p.add_argument("--tls-key", help="the certificate's private key (PEM, unencrypted)")
    p.add_argument("--force", action="store_true", help="start even when the planner predicts failure")
    p.add_argument("--auto-fix", type=int, default=0, metavar="N",
                   help="on a failed start, apply the doctor's first fix and retry, at most N times")
    p.add_argument("--base", default=None, help="base image for the CPU build (default: debootstrap'ed Debian)")
    p.add_argument("--state-dir", default=str(STATE_DIR), help="where rendered files go (default .rentstack)")
    p.add_argument("--project", default=None, help="compose project name (default rentstack)")
    p.add_argument("--vllm-version", metavar="X.Y.Z[+cuNNN]", default=None,
                   help="GPU tiers: this vLLM release instead of the newest one this machine's driver and cards run "
                        "(checked the same way; rentstack/config/releases.yaml)")
    p.add_argument("--profiles", default="", metavar="'webui monitoring'",
                   help="parts to run beside the server: webui, monitoring (space- or comma-separated)")
    p.add_argument("--idle-stop", default="off", metavar="WINDOW",
                   help="stop the server after WINDOW (30m, 1h, 90s) without requests (default off)")
    p.add_argument("--idle-action", default="stop", choices=("stop", "poweroff"),
                   help="after the idle window: stop the server (default) or also power the host off")
    p.set_defaults(func=run_up)

    for name, helptext, func in (("down", "stop and remove a tier's containers", run_down),
                                 ("status", "show a tier's container state and health", run_status),
                                 ("logs", "print a tier's server log", run_logs),
                                 ("smoke", "send a real chat request with the API key", run_smoke)):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("--tier", default="cpu")
        q.add_argument("--state-dir", default=str(STATE_DIR))
        q.add_argument("--project", default=None, help="compose project name (default rentstack)")
        if name == "logs":
            q.add_argument("--tail", type=int, default=200)
        if name == "smoke":
            q.add_argument("--prompt", default=SMOKE_PROMPT)
            q.add_argument("--json", action="store_true")
        q.set_defaults(func=func)


def _stack(tier_name: str, state_dir: Path, project: str | None = None) -> Stack:
    check_name("--tier", tier_name)   # a directory under the state dir: never a path
    env_file = state_dir / tier_name / "compose.env"
    if not env_file.is_file():
        raise RentstackError(f"tier {tier_name} has not been rendered here ({env_file} is missing): "
                             f"run `make up TIER={tier_name}` first")
    return Stack(profile=compose_profile(tier_name), env_file=env_file, project=project)


MAX_AUTO_FIX = 5
"""Each retry is a full server start (minutes on a GPU); a doctor that needs more is wrong."""


def run_up(args: argparse.Namespace) -> int:
    if not 0 <= args.auto_fix <= MAX_AUTO_FIX:
        raise RentstackError(f"--auto-fix {args.auto_fix} is out of range: give 0 to {MAX_AUTO_FIX} retries")
    tier = tier_from_args(args)
    if tier.hosts > 1:
        raise RentstackError(f"tier {tier.name} spans {tier.hosts} hosts: it runs as a Ray cluster over SSH, not with "
                             f"compose here — fab ray --host HEAD,WORKER --tier {tier.name} (see README, scale-out)")
    require_docker()
    sets = dict(parse_set(item) for item in args.sets)
    bind = "0.0.0.0" if args.public else args.bind
    models_dir = REPO / "models"
    state_dir = Path(args.state_dir)
    wait_s = tier.health.start_period_s + 120
    release = None
    if tier.accelerator == "gpu":
        # Before anything is rendered or pulled: a driver too old for every release stops here.
        from rentstack.local.gpu import local_choice

        choice = local_choice(args.vllm_version)
        print(f"up: {choice.line}")
        release = choice.release

    profiles = check_profiles(args.profiles.replace(",", " ").split())
    idle_stop = check_idle(args.idle_stop, args.idle_action)
    if idle_stop != "off" and args.idle_action == "poweroff":
        raise RentstackError("--idle-action poweroff: under docker compose the watchdog can stop the server but not "
                             "power the host off; use `fab provision --idle-stop ... --idle-action poweroff` on a "
                             "rented host, or --idle-action stop here")

    def deploy(overrides: dict):
        dep = build_deployment(tier, args.model, {**sets, **overrides}, bind=bind, port=args.port,
                               models_dir=str(models_dir.resolve()), force=args.force,
                               model_config=args.model_config, release=release,
                               measured=measured_for_tier(tier, args.model, release),
                               tls=True if args.tls else None, tls_cert=args.tls_cert, tls_key=args.tls_key)
        return replace(dep, profiles=profiles, idle_stop=idle_stop, idle_action=args.idle_action)

    dep = deploy({})
    if tier.accelerator == "cpu":
        build_cpu_image(**({"base": args.base} if args.base else {}))
    build_front_image(**({"base": args.base} if args.base else {}))
    part_profiles = around.active_parts(profiles, idle_stop)
    build_profile_images(part_profiles, **({"base": args.base} if args.base else {}))
    if "webui" in profiles:
        ensure_webui_files(state_dir)
    if "monitoring" in profiles:
        ensure_prometheus_dir(state_dir)
    ensure_model(dep.model, models_dir)

    def start(overrides: dict, attempt: int) -> Attempt:
        current = deploy(overrides) if overrides else dep
        rendered = write_deployment(current, state_dir, CACHE_DIR / "vllm")
        stack = _stack(tier.name, state_dir, args.project)
        if attempt:
            stack.down()
        if not stack.state().startswith("running") and not port_free(current.bind, current.port):
            raise RentstackError(f"port {current.port} on {current.bind} is already in use by another program: "
                                 f"choose another with PORT=... (make) or --port")
        print(f"up: starting {stack.service} (attempt {attempt + 1}/{args.auto_fix + 1}); "
              f"waiting up to {wait_s} s for /health")
        if stack.up(wait_timeout=wait_s) and _front_answers(rendered.directory):
            return Attempt(ok=True, result=(stack, rendered))
        log = stack.logs()
        tail = "\n".join(log.splitlines()[-6:])
        print(f"up: {stack.service} did not become healthy; last log lines:\n{tail}", file=sys.stderr)
        return Attempt(ok=False, log=log, result=(stack, rendered))

    done = start_with_autofix(start, auto_fix=args.auto_fix, echo=print, warn=_stderr,
                              rerun_hint="up: rerun with AUTO_FIX=1 (make) or --auto-fix 1 to apply the first fix")
    stack, rendered = done.result
    if not done.ok:
        raise RentstackError(f"{stack.service} did not become healthy; see `make logs TIER={tier.name}`")
    if tier.accelerator == "gpu":
        calibrate(stack.logs(), tier.gpu.name, tier.gpu.memory_gib, dep.model.name)
    record = read_record(rendered.directory)
    cert = _cert(rendered.directory)
    print("\n" + "\n".join(ready_lines(record.endpoint, record.served_model_name, str(rendered.secrets_env),
                                       cert=cert, fingerprint=rendered.tls_fingerprint)))
    _print_parts(stack, dep, state_dir, record.endpoint)
    return 0


def _front_answers(tier_dir: Path) -> bool:
    """GET /health through the published port: nginx is up and reaches vLLM (compose has
    already waited for vLLM's own healthcheck, so this normally answers at once)."""
    endpoint = read_record(tier_dir).endpoint
    if wait_healthy(endpoint, timeout=30, interval=0.1, cafile=_cert(tier_dir)):
        return True
    print(f"up: the front door at {endpoint} does not answer GET /health", file=sys.stderr)
    return False


def _cert(tier_dir: Path) -> str | None:
    """The HTTPS front's certificate, for clients to trust (self-signed or not)."""
    cert = tier_dir / FRONT_DIR / "tls.crt"
    return str(cert) if cert.is_file() else None


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _print_parts(stack: Stack, dep, state_dir: Path, endpoint: str) -> None:
    if "webui" in dep.profiles:
        port = read_env_file(stack.env_file).get("RENTSTACK_WEBUI_PORT") or around.WEBUI_PORT
        print(f"chat UI: http://127.0.0.1:{port}/  (log in as {ADMIN_EMAIL}; password: WEBUI_ADMIN_PASSWORD in "
              f"{(state_dir / around.WEBUI_ADMIN_FILE).resolve()}, mode 0600)")
    if "monitoring" in dep.profiles:
        print("metrics: Prometheus scrapes /metrics through the front every 5 s; query it with "
              f"`{' '.join(stack.cmd('exec', 'prometheus', 'curl', '-s', 'localhost:9090/api/v1/targets'))}`")
    if dep.idle_stop != "off":
        print(f"idle stop: the server stops after {dep.idle_stop} without requests "
              f"(watch it: {' '.join(stack.cmd('logs', '-f', 'idle-stop'))})")


def run_down(args: argparse.Namespace) -> int:
    require_docker()
    _stack(args.tier, Path(args.state_dir), args.project).down()
    print(f"down: tier {args.tier} stopped")
    return 0


def run_status(args: argparse.Namespace) -> int:
    require_docker()
    stack = _stack(args.tier, Path(args.state_dir), args.project)
    record = read_record(stack.env_file.parent)
    state = stack.state() or "not created"
    print(f"{stack.service}: {state}; endpoint {record.base_url}")
    return 0 if state.startswith("running") else 3


def run_logs(args: argparse.Namespace) -> int:
    if not 1 <= args.tail <= 100_000:
        raise RentstackError(f"--tail {args.tail} is out of range: use 1-100000 lines")
    require_docker()
    sys.stdout.write(_stack(args.tier, Path(args.state_dir), args.project).logs(tail=args.tail))
    return 0


def run_smoke(args: argparse.Namespace) -> int:
    tier_dir = Path(args.state_dir) / check_name("--tier", args.tier)
    record = read_record(tier_dir)
    key = read_api_key(tier_dir / record.secrets_file)
    result = smoke(record.endpoint, key, record.served_model_name, args.prompt, max_tokens=64, cafile=_cert(tier_dir))
    if args.json:
        print(json.dumps({"reply": result.text, "completion_tokens": result.completion_tokens,
                          "seconds": round(result.seconds, 3), "tokens_per_s": round(result.tokens_per_s, 2)}))
    else:
        print(f"reply: {result.text}")
        print(f"{result.completion_tokens} tokens in {result.seconds:.2f} s = {result.tokens_per_s:.1f} tokens/s")
    return 0
