"""`rentstack top`: a live terminal view of a running server (KV cache, requests, tokens/s, latency, GPUs)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rentstack.commands._common import STATE_DIR
from rentstack.errors import RentstackError
from rentstack.safe import check_name, check_text
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
        raise RentstackError(f"--key-file {path}: {exc.strerror or exc}: check the path (a secrets.env, or a file holding only the key)") from None


def _check_url(value: str) -> str:
    """An http(s) base URL with a host, nothing after the port but an optional path."""
    from urllib.parse import urlsplit

    url = check_text("--url", value).rstrip("/")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in range
    except ValueError:
        parts, port = None, None
    if parts is not None and (parts.username or parts.password):
        raise RentstackError("--url holds a user name or password: give http://HOST:PORT only; the token "
                             f"comes from ${TOKEN_ENV} (or $VLLM_API_KEY) or --key-file")
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.query
            or parts.fragment or " " in url):
        raise RentstackError(f"--url {url!r}: give the server's base URL, such as http://127.0.0.1:8000")
    del port
    return url


def target(args: argparse.Namespace) -> tuple[str, str | None]:
    """(base URL, token) for the server to watch, the way `rentstack smoke` finds them."""
    if args.url:
        url = _check_url(args.url)
        token = os.environ.get(TOKEN_ENV) or os.environ.get("VLLM_API_KEY")
        if args.key_file:
            token = _token_from_file(Path(check_text("--key-file", args.key_file)))
        return url, token
    from rentstack.local.deploy_dir import read_record

    tier = check_name("tier", args.tier)
    tier_dir = Path(check_text("--state-dir", args.state_dir)) / tier
    if not tier_dir.is_dir():
        raise RentstackError(f"tier {tier} has not been rendered here ({tier_dir} is missing): "
                             f"run `make up TIER={tier}` first")
    record = read_record(tier_dir)
    return record.endpoint, _token_from_file(tier_dir / record.secrets_file)


def run(args: argparse.Namespace) -> int:
    from rentstack.top.live import run as live

    if not 0.2 <= args.interval <= 3600:
        raise RentstackError(f"--interval {args.interval:g}: choose between 0.2 and 3600 seconds")
    base_url, token = target(args)
    return live(base_url, token, interval=args.interval, once=args.once)
