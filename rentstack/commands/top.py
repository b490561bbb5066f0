"""`rentstack top`: a live terminal view of a running server (KV cache, requests, tokens/s, latency, GPUs)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rentstack.commands._common import STATE_DIR
from rentstack.errors import RentstackError
from rentstack.top.live import TOKEN_ENV


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("top", help="live view of a running server from its /metrics (Ctrl-C quits)",
                       description="Show a running vLLM server's KV cache usage, running and waiting requests, "
                                   "prompt and generation tokens/s, TTFT and inter-token latency p50/p95 and "
                                   "preemptions, refreshed every --interval seconds, plus GPU memory and "
                                   "utilization where nvidia-smi finds a card.")
    p.add_argument("--tier", default="cpu", help="the tier started here with `rentstack up` (endpoint and key "
                                                 "from its rendered files)")
    p.add_argument("--state-dir", default=str(STATE_DIR))
    p.add_argument("--url", help="read this endpoint instead (e.g. an SSH tunnel's http://127.0.0.1:18000); "
                                 f"the token comes from ${TOKEN_ENV}, $VLLM_API_KEY or --key-file")
    p.add_argument("--key-file", metavar="PATH", help="a secrets.env (or a file holding only the key) for --url")
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between reads (default 2)")
    p.add_argument("--once", action="store_true",
                   help="print one frame and exit (two reads --interval apart, so rates are real)")
    p.set_defaults(func=run)


def _token_from_file(path: Path) -> str | None:
    from rentstack.top.live import token_from_secrets

    try:
        return token_from_secrets(path.read_text())
    except OSError as exc:
        raise RentstackError(f"--key-file {path}: {exc.strerror or exc}") from None


def target(args: argparse.Namespace) -> tuple[str, str | None]:
    """(base URL, token) for the server to watch, the way `rentstack smoke` finds them."""
    if args.url:
        if not args.url.startswith(("http://", "https://")):
            raise RentstackError(f"--url {args.url!r}: give a URL such as http://127.0.0.1:8000")
        token = os.environ.get(TOKEN_ENV) or os.environ.get("VLLM_API_KEY")
        if args.key_file:
            token = _token_from_file(Path(args.key_file))
        return args.url.rstrip("/"), token
    from rentstack.local.deploy_dir import read_record

    tier_dir = Path(args.state_dir) / args.tier
    if not tier_dir.is_dir():
        raise RentstackError(f"tier {args.tier} has not been rendered here ({tier_dir} is missing): "
                             f"run `make up TIER={args.tier}` first")
    record = read_record(tier_dir)
    return record.endpoint, _token_from_file(tier_dir / record.secrets_file)


def run(args: argparse.Namespace) -> int:
    from rentstack.top.live import run as live

    if not 0.2 <= args.interval <= 3600:
        raise RentstackError(f"--interval {args.interval:g}: choose between 0.2 and 3600 seconds")
    base_url, token = target(args)
    return live(base_url, token, interval=args.interval, once=args.once)
