"""`rentstack render`: write a tier's vLLM config, compose values and secrets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rentstack.calibration import measured_for_tier
from rentstack.commands._common import CACHE_DIR, REPO, STATE_DIR, add_tier_args, tier_from_args
from rentstack.errors import RentstackError
from rentstack.local.deploy_dir import write_deployment
from rentstack.render import build_deployment, render_root_compose
from rentstack.config import list_tiers, load_tier
from rentstack.config.vllm_args import parse_set


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a tier's vLLM config, compose values and API key",
                       description="Render .rentstack/<tier>/{vllm.yaml,compose.env,secrets.env}. "
                                   "Memory-related vLLM values come from the planner.")
    add_tier_args(p)
    p.add_argument("--model", help="catalog name or modelscope:ID / hf:ID / local:PATH (default: the tier's)")
    p.add_argument("--model-config", help="config.json for a model outside the catalog (for the planner)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a vLLM setting (long flag name), e.g. --set max-model-len=4096")
    p.add_argument("--port", type=int, default=8000, help="host port (default 8000)")
    p.add_argument("--bind", default="127.0.0.1", help="host address to publish on (default 127.0.0.1)")
    p.add_argument("--public", action="store_true", help="publish on 0.0.0.0 (needs the API key)")
    p.add_argument("--tls", action="store_true", help="the front serves HTTPS on any bind (--public always does)")
    p.add_argument("--tls-cert", help="certificate (PEM) for the front's HTTPS; default: a self-signed one")
    p.add_argument("--tls-key", help="the certificate's private key (PEM, unencrypted)")
    p.add_argument("--no-api-key", action="store_true", help="serve without an API key (localhost only)")
    p.add_argument("--runner", choices=("compose", "native"), default="compose",
                   help="compose: paths inside the container; native: vLLM runs on the host itself")
    p.add_argument("--models-dir", default=str(REPO / "models"), help="host directory holding model dirs")
    p.add_argument("--state-dir", default=str(STATE_DIR), help="where rendered files go (default .rentstack)")
    p.add_argument("--force", action="store_true", help="render even when the planner predicts failure")
    p.add_argument("--vllm-version", metavar="X.Y.Z[+cuNNN]", default=None,
                   help="GPU tiers: render for this vLLM release (default: the newest this machine's driver runs, "
                        "or the newest release without a GPU here)")
    p.add_argument("--compose", action="store_true",
                   help="instead: regenerate the root compose.yaml from stacks/ and templates/")
    p.add_argument("--check", action="store_true", help="with --compose: fail if compose.yaml is out of date")
    p.set_defaults(func=run)


def root_compose_text() -> str:
    return render_root_compose([load_tier(name) for name in list_tiers()])


def run(args: argparse.Namespace) -> int:
    if args.compose:
        path = REPO / "compose.yaml"
        text = root_compose_text()
        if args.check:
            if not path.is_file() or path.read_text() != text:
                raise RentstackError("compose.yaml is out of date with stacks/ or templates/: run `make compose.yaml`")
            print("compose.yaml is up to date")
            return 0
        path.write_text(text)
        print(f"wrote {path}")
        return 0
    tier = tier_from_args(args)
    sets = dict(parse_set(item) for item in args.sets)
    bind = "0.0.0.0" if args.public else args.bind
    release = None
    if tier.accelerator == "gpu":
        from rentstack.local.gpu import local_choice

        choice = local_choice(args.vllm_version, args.runner)
        print(choice.line)
        release = choice.release
    dep = build_deployment(tier, args.model, sets, runner=args.runner, bind=bind, port=args.port,
                           models_dir=str(Path(args.models_dir).resolve()) if args.runner == "compose" else args.models_dir,
                           force=args.force, require_api_key=not args.no_api_key, model_config=args.model_config,
                           release=release, measured=measured_for_tier(tier, args.model, release),
                           tls=True if args.tls else None, tls_cert=args.tls_cert, tls_key=args.tls_key)
    out = write_deployment(dep, Path(args.state_dir), CACHE_DIR / "vllm")
    print(f"rendered tier {tier.name} ({dep.model.name}) into {out.directory}")
    for note in dep.notes:
        print(f"  {note}")
    if out.tls_fingerprint:
        print(f"  front serves HTTPS with {out.front_dir / 'tls.crt'}, SHA-256 fingerprint {out.tls_fingerprint}")
    if out.api_key_created:
        print(f"  new API key stored in {out.secrets_env} (mode 0600)")
    if not dep.require_api_key:
        print("  warning: no API key: anyone who reaches the port can use the server", file=sys.stderr)
    return 0
