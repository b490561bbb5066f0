"""`fab bench`: the load sweep against a rented host's server, through an SSH tunnel.

The benchmark client runs here (in the local vLLM image), like `rentstack bench`; from the
host it needs only the served model's name, the key (read over SSH, kept in memory) and the
tokenizer files (copied into .rentstack/hosts/<host>/tokenizers/<model>/).
"""

from __future__ import annotations

import base64
import datetime as dt
import shlex
from pathlib import Path, PurePosixPath

import yaml

from rentstack.bench.run import prediction_for, run_sweep, write_report
from rentstack.bench.sweep import BenchSettings, rows_from_results, table
from rentstack.errors import RentstackError
from rentstack.remote.connection import Remote, free_local_port
from rentstack.remote.hosts import Auth, HostSpec
from rentstack.remote.layout import Layout
from rentstack.remote.options import Options
from rentstack.render.secrets import SECRETS_FILE, parse_api_key

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "tokenizer.model", "added_tokens.json", "config.json", "generation_config.json")
"""What transformers' AutoTokenizer reads from a model directory (no weights)."""


def host_model_dir(layout: Layout, model_path: str) -> str:
    """The served model's directory on the host: compose serves DATA/models as /models."""
    path = PurePosixPath(model_path)
    if path.parts[:2] == ("/", "models"):
        return str(PurePosixPath(layout.models, *path.parts[2:]))
    return model_path


def fetch_tokenizer(remote: Remote, directory: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    got = []
    for name in TOKENIZER_FILES:
        path = shlex.quote(f"{directory}/{name}")
        code, out = remote.run(f"if [ -f {path} ]; then base64 -w0 -- {path}; else exit 3; fi")
        if code == 0:
            (dest / name).write_bytes(base64.b64decode(out.strip()))
            got.append(name)
    if "tokenizer_config.json" not in got and "tokenizer.json" not in got:
        raise RentstackError(f"{directory} on the host has no tokenizer files: is the model there? (fab status)")
    return dest


def bench_host(spec: HostSpec, auth: Auth, opts: Options, settings: BenchSettings, out: Path | None) -> str:
    layout = Layout(opts.data_dir)
    tdir = layout.tier_dir(opts.tier)
    with Remote(spec, auth) as remote:
        text = remote.read(f"{tdir}/vllm.yaml")
        if text is None:
            raise RentstackError(f"tier {opts.tier} is not rendered on {spec.label}: run `fab provision` first")
        rendered = yaml.safe_load(text)
        key = parse_api_key(remote.read(f"{tdir}/{SECRETS_FILE}") or "")
        model = str(rendered["served-model-name"])
        tokenizer = fetch_tokenizer(remote, host_model_dir(layout, str(rendered["model"])),
                                    opts.local_state / spec.slug / "tokenizers" / model)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = out or opts.local_state / spec.slug / "bench" / f"{opts.tier}-{stamp}"
        prediction, note = prediction_for(opts.tier, rendered, settings)
        with remote.tunnel(free_local_port(), opts.port) as url:
            results = run_sweep(settings, base_url=url, api_key=key, model=model, tokenizer_dir=tokenizer,
                                out_dir=out)
    rows = rows_from_results(results)
    title = f"{model} on {spec.label} ({opts.tier}): {settings.input_len} in / {settings.output_len} out tokens"
    paths = write_report(rows, out, settings=settings, title=title, base_url=f"ssh tunnel to {spec.label}:{opts.port}",
                         model=model, prediction=prediction, results=results)
    failed = sum(r.failed for r in rows)
    lines = [f"bench: {spec.label} through an SSH tunnel; {note}", table(rows, prediction),
             f"bench: wrote {paths['table']}, {paths['json']} and {paths['png']}"]
    if failed:
        raise RentstackError("\n".join(lines) + f"\n{failed} benchmark requests failed: see {out / 'client.log'}")
    return "\n".join(lines)
