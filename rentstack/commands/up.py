"""`rentstack up|down|status|logs|smoke`: run a tier with docker compose on this machine.

up = preflight (Docker, port) -> CPU image if needed -> model directory -> render
     -> `docker compose up --wait` -> endpoint, key location and a curl line.
When the server does not become healthy, the doctor reads its log and the command prints
its advice; with --auto-fix N it applies the first fix and retries, at most N times.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from rentstack.commands._common import CACHE_DIR, REPO, STATE_DIR, add_tier_args, tier_from_args
from rentstack.errors import RentstackError
from rentstack.local.compose import Stack
from rentstack.local.docker import port_free, require_docker
from rentstack.local.image import build_cpu_image
from rentstack.local.models import ensure_model
from rentstack.local.deploy_dir import read_api_key, write_deployment
from rentstack.render import build_deployment, compose_profile
from rentstack.config.vllm_args import parse_set
from rentstack.verify import SMOKE_PROMPT, chat



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="render and start a tier here with docker compose, wait until healthy")
    add_tier_args(p)
    p.add_argument("--model", help="catalog name or modelscope:ID / hf:ID / local:PATH")
    p.add_argument("--model-config", help="config.json for a model outside the catalog")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--public", action="store_true", help="publish on 0.0.0.0 (the API key stays required)")
    p.add_argument("--force", action="store_true", help="start even when the planner predicts failure")
    p.add_argument("--auto-fix", type=int, default=0, metavar="N",
                   help="on a failed start, apply the doctor's first fix and retry, at most N times")
    p.add_argument("--base", default=None, help="base image for the CPU build (default: debootstrap'ed Debian)")
    p.add_argument("--state-dir", default=str(STATE_DIR), help="where rendered files go (default .rentstack)")
    p.add_argument("--project", default=None, help="compose project name (default rentstack)")
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
    env_file = state_dir / tier_name / "compose.env"
    if not env_file.is_file():
        raise RentstackError(f"tier {tier_name} has not been rendered here ({env_file} is missing): "
                             f"run `make up TIER={tier_name}` first")
    return Stack(profile=compose_profile(tier_name), env_file=env_file, project=project)


def _env_value(env_file: Path, key: str) -> str | None:
    for line in env_file.read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    return None


def _endpoint(stack: Stack) -> str:
    bind = _env_value(stack.env_file, "RENTSTACK_BIND") or "127.0.0.1"
    host = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind
    return f"http://{host}:{_env_value(stack.env_file, 'RENTSTACK_PORT') or 8000}"


def run_up(args: argparse.Namespace) -> int:
    require_docker()
    tier = tier_from_args(args)
    sets = dict(parse_set(item) for item in args.sets)
    bind = "0.0.0.0" if args.public else args.bind
    models_dir = REPO / "models"
    state_dir = Path(args.state_dir)

    def deploy(overrides: dict):
        return build_deployment(tier, args.model, {**sets, **overrides}, bind=bind, port=args.port,
                                models_dir=str(models_dir.resolve()), force=args.force,
                                model_config=args.model_config)

    dep = deploy({})
    if tier.accelerator == "cpu":
        build_cpu_image(**({"base": args.base} if args.base else {}))
    ensure_model(dep.model, models_dir)

    overrides: dict = {}
    for attempt in range(args.auto_fix + 1):
        rendered = write_deployment(dep, state_dir, CACHE_DIR / "vllm")
        stack = _stack(tier.name, state_dir, args.project)
        if not stack.state().startswith("running") and not port_free(dep.bind, dep.port):
            raise RentstackError(f"port {dep.port} on {dep.bind} is already in use by another program: "
                                 f"choose another with PORT=... (make) or --port")
        print(f"up: starting {stack.service} (attempt {attempt + 1}/{args.auto_fix + 1}); "
              f"waiting up to {tier.health.start_period_s + 120} s for /health")
        if stack.up(wait_timeout=tier.health.start_period_s + 120):
            if tier.accelerator == "gpu":
                calibrate(stack.logs(), tier.gpu.name, tier.gpu.memory_gib, dep.model.name)
            _print_ready(stack, dep.model.name, rendered.secrets_env)
            return 0
        log = stack.logs()
        tail = "\n".join(log.splitlines()[-6:])
        print(f"up: {stack.service} did not become healthy; last log lines:\n{tail}", file=sys.stderr)
        fix = _doctor(log)
        if not fix or attempt == args.auto_fix:
            if fix and not args.auto_fix:
                print("up: rerun with AUTO_FIX=1 (make) or --auto-fix 1 to apply the first fix", file=sys.stderr)
            raise RentstackError(f"{stack.service} did not become healthy; see `make logs TIER={tier.name}`")
        overrides.update(fix)
        print(f"up: applying the doctor's first fix: {fix}")
        stack.down()
        dep = deploy(overrides)
    return 1


def calibrate(log: str, card: str, gpu_mem_gib: float, model: str) -> Path | None:
    """After a good GPU start: save what the card really did, so the next plan uses it."""
    from rentstack.doctor import diagnose, save_calibration

    diagnosis = diagnose(log.splitlines())
    version = diagnosis.figures.get("vllm_version")
    if diagnosis.status != "ok" or not version or not card:
        return None
    path = save_calibration(card, version, model, diagnosis.figures, gpu_mem_gib=gpu_mem_gib)
    print(f"calibration: saved this start's measured figures ({card}, vLLM {version}, {model}) to {path}; "
          "the next plan for this card, version and model uses them")
    return path


def _doctor(log: str) -> dict | None:
    """Print the doctor's diagnosis of a failed start; return its first fix (vLLM flag -> value)."""
    try:
        from rentstack.doctor import diagnose, first_fix
    except ImportError:
        return None
    diagnosis = diagnose(log.splitlines())
    print(f"doctor: {diagnosis.explanation}", file=sys.stderr)
    for fix in diagnosis.fixes:
        print(f"doctor: fix: {fix.changes} — {fix.why}", file=sys.stderr)
    return first_fix(diagnosis) or None


def _print_ready(stack: Stack, model: str, secrets_env: Path) -> None:
    url = _endpoint(stack)
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 32})
    print(f"""
ready: {url}/v1  (OpenAI-compatible; model "{model}")
API key: stored in {secrets_env} (mode 0600), variable VLLM_API_KEY
try it:
  curl -s {url}/v1/chat/completions -H "Authorization: Bearer $(sed -n 's/^VLLM_API_KEY=//p' {shlex.quote(str(secrets_env))})" \\
    -H 'Content-Type: application/json' -d {shlex.quote(body)}
""".rstrip())


def run_down(args: argparse.Namespace) -> int:
    require_docker()
    _stack(args.tier, Path(args.state_dir), args.project).down()
    print(f"down: tier {args.tier} stopped")
    return 0


def run_status(args: argparse.Namespace) -> int:
    require_docker()
    stack = _stack(args.tier, Path(args.state_dir), args.project)
    state = stack.state() or "not created"
    print(f"{stack.service}: {state}; endpoint {_endpoint(stack)}/v1")
    return 0 if state.startswith("running") else 3


def run_logs(args: argparse.Namespace) -> int:
    require_docker()
    sys.stdout.write(_stack(args.tier, Path(args.state_dir), args.project).logs(tail=args.tail))
    return 0


def run_smoke(args: argparse.Namespace) -> int:
    stack = _stack(args.tier, Path(args.state_dir), args.project)
    key = read_api_key(stack.env_file.parent / "secrets.env")
    model = _served_name(stack.env_file.parent / "vllm.yaml")
    result = chat(_endpoint(stack), key, model, args.prompt)
    if result.status != 200:
        raise RentstackError(f"chat request failed with HTTP {result.status}: {result.text}")
    if args.json:
        print(json.dumps({"reply": result.text, "completion_tokens": result.completion_tokens,
                          "seconds": round(result.seconds, 3), "tokens_per_s": round(result.tokens_per_s, 2)}))
    else:
        print(f"reply: {result.text}")
        print(f"{result.completion_tokens} tokens in {result.seconds:.2f} s = {result.tokens_per_s:.1f} tokens/s")
    return 0


def _served_name(vllm_yaml: Path) -> str:
    for line in vllm_yaml.read_text().splitlines():
        if line.startswith("served-model-name:"):
            return json.loads(line.split(":", 1)[1].strip())
    raise RentstackError(f"{vllm_yaml} names no served-model-name: re-render the tier")
