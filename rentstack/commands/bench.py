"""`rentstack bench`: vLLM's serving benchmark against a served endpoint, swept over concurrency.

Default target: the tier this machine serves (`make up`): its published endpoint, its key
(secrets.env), its served model and the model's tokenizer under models/. For a remote
server, point --url at the local end of an SSH tunnel and give --model and --tokenizer
(`fab bench` does this). Writes table.txt, bench.json and bench.png; prints the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from rentstack.bench.run import prediction_for, read_rendered, run_sweep, write_report
from rentstack.bench.sweep import BenchSettings, parse_levels, rows_from_results, table
from rentstack.commands._common import STATE_DIR
from rentstack.errors import RentstackError
from rentstack.local.deploy_dir import read_api_key
from rentstack.local.docker import require_docker


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="load-test the served endpoint over concurrency levels (table, JSON, PNG)")
    p.add_argument("--tier", default="cpu", help="the rendered tier to benchmark (default cpu)")
    p.add_argument("--state-dir", default=str(STATE_DIR))
    p.add_argument("--url", help="endpoint base URL (default: the tier's published endpoint)")
    p.add_argument("--model", help="served model name (default: the tier's)")
    p.add_argument("--tokenizer", help="directory with the model's tokenizer (default: the tier's model directory)")
    p.add_argument("--key-file", help="secrets.env holding VLLM_API_KEY (default: the tier's); "
                                      "or set VLLM_API_KEY in the environment")
    p.add_argument("--concurrency", default="1,2,4,8", help="levels, comma-separated (default 1,2,4,8)")
    p.add_argument("--input-len", type=int, default=128, help="prompt tokens per request (default 128)")
    p.add_argument("--output-len", type=int, default=32, help="generated tokens per request (default 32)")
    p.add_argument("--rounds", type=int, default=2, help="requests per level = rounds x level, at least 4")
    p.add_argument("--out", help="output directory (default .rentstack/bench/<tier>-<UTC time>)")
    p.set_defaults(func=run_bench)


def _env_file_value(path: Path, key: str) -> str | None:
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    return None


def _tier_endpoint(tier_dir: Path) -> str:
    env = tier_dir / "compose.env"
    bind = _env_file_value(env, "RENTSTACK_BIND") or "127.0.0.1"
    host = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind
    return f"http://{host}:{_env_file_value(env, 'RENTSTACK_PORT') or 8000}"


def _tokenizer_dir(tier_dir: Path, model_path: str) -> Path:
    """The model's directory on this machine: compose serves models/ as /models."""
    path = PurePosixPath(model_path)
    if path.parts[:2] == ("/", "models"):
        models = _env_file_value(tier_dir / "compose.env", "RENTSTACK_MODELS_DIR") or "models"
        return Path(models, *path.parts[2:])
    return Path(model_path)


def run_bench(args: argparse.Namespace) -> int:
    try:
        settings = BenchSettings(concurrency=parse_levels(args.concurrency), input_len=args.input_len,
                                 output_len=args.output_len, rounds=args.rounds)
    except ValueError as exc:          # pydantic's ValidationError is a ValueError
        raise RentstackError(_one_line(exc)) from None
    require_docker()
    tier_dir = Path(args.state_dir) / args.tier
    rendered = read_rendered(tier_dir) if not (args.url and args.model and args.tokenizer) else None
    base_url = (args.url or _tier_endpoint(tier_dir)).rstrip("/")
    model = args.model or str(rendered["served-model-name"])
    tokenizer = Path(args.tokenizer) if args.tokenizer else _tokenizer_dir(tier_dir, str(rendered["model"]))
    key_file = Path(args.key_file) if args.key_file else tier_dir / "secrets.env"
    api_key = os.environ.get("VLLM_API_KEY") if not args.key_file and os.environ.get("VLLM_API_KEY") \
        else read_api_key(key_file)
    if args.key_file and api_key is None:
        raise RentstackError(f"--key-file {key_file}: no VLLM_API_KEY line in it")

    if rendered is not None:
        prediction, note = prediction_for(args.tier, rendered, settings)
    else:
        prediction, note = None, "no prediction: --url/--model/--tokenizer given without a rendered tier"
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else Path(args.state_dir) / "bench" / f"{args.tier}-{stamp}"
    levels = ",".join(map(str, settings.concurrency))
    print(f"bench: {base_url} model {model}: concurrency {levels}, {settings.input_len} prompt + "
          f"{settings.output_len} output tokens per request; vLLM's benchmark client in the vLLM image")
    print(f"bench: {note}")
    results = run_sweep(settings, base_url=base_url, api_key=api_key, model=model, tokenizer_dir=tokenizer,
                        out_dir=out)
    rows = rows_from_results(results)
    title = (f"{model} on {args.tier}: {settings.input_len} in / {settings.output_len} out tokens per request")
    paths = write_report(rows, out, settings=settings, title=title, base_url=base_url, model=model,
                         prediction=prediction, results=results)
    print(table(rows, prediction))
    print(f"bench: wrote {paths['table']}, {paths['json']} and {paths['png']}")
    failed = sum(r.failed for r in rows)
    if failed:
        raise RentstackError(f"{failed} benchmark requests failed (see {paths['json']}, field errors are in "
                             f"{out / 'client.log'}): check the endpoint, the key and the model name")
    return 0


def _one_line(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "bench settings"
        return f"{field}: {err['msg']} (got {err.get('input')!r})"
    return str(exc)
