#!/usr/bin/env python3
"""Throughput of fetch_weights.py vs `modelscope download` against the same local hub.

Both tools download the same files (random data, several shards) from tests/hubserver.py,
which speaks the ModelScope /api/v1 calls both make. `modelscope download` is pointed at it
with MODELSCOPE_ENDPOINT (modelscope_hub config.py: explicit arg > MODELSCOPE_ENDPOINT >
deprecated MODELSCOPE_DOMAIN > www.modelscope.cn). Each tool runs --rounds times into a
fresh directory (order alternating), and the median MB/s (10^6 bytes/s, wall clock of the
whole command, start-up included) is printed. A re-run over the finished directory is timed
too: it should transfer nothing.

    .venv/bin/python scripts/bench_download.py                  # 320 MB in 4 files, 3 rounds
    .venv/bin/python scripts/bench_download.py --mb 64 --rounds 1

Needs `modelscope` in .venv-hub (python3 -m venv .venv-hub && .venv-hub/bin/pip install modelscope);
without it only fetch_weights.py is measured.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FETCH = ROOT / "scripts" / "fetch_weights.py"
MODELSCOPE = ROOT / ".venv-hub" / "bin" / "modelscope"
MODEL = "benchorg/bench-model"


def load_hubserver():  # tests/ is not a package; load the test hub by path
    spec = importlib.util.spec_from_file_location("rentstack_bench_hubserver", ROOT / "tests" / "hubserver.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def make_model(root: Path, total_mb: int, files: int) -> int:
    """Random shards plus a config; reused between runs when the sizes already match."""
    repo = root / MODEL
    repo.mkdir(parents=True, exist_ok=True)
    shard = total_mb * 1_000_000 // files
    for i in range(files):
        p = repo / f"model-{i + 1:05d}-of-{files:05d}.safetensors"
        if not p.exists() or p.stat().st_size != shard:
            with p.open("wb") as fh:
                left = shard
                while left:
                    n = min(left, 4 << 20)
                    fh.write(os.urandom(n))
                    left -= n
    (repo / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return sum(p.stat().st_size for p in repo.iterdir() if p.is_file())


def run_fetch(endpoint: str, dest: Path, workers: int) -> float:
    argv = [sys.executable, "-S", str(FETCH), "--source", "modelscope", "--model", MODEL, "--dest", str(dest),
            "--endpoint", endpoint, "--workers", str(workers), "--json", "--quiet"]
    t = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"fetch_weights.py failed: {p.stderr.strip()[-300:]}")
    return elapsed


def run_modelscope(endpoint: str, dest: Path, workers: int, cache: Path) -> float:
    argv = [str(MODELSCOPE), "download", "--model", MODEL, "--local_dir", str(dest), "--max-workers", str(workers)]
    env = dict(os.environ, MODELSCOPE_ENDPOINT=endpoint, MODELSCOPE_CACHE=str(cache))
    t = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"modelscope download failed: {(p.stderr or p.stdout).strip()[-300:]}")
    return elapsed


def check_same(src: Path, dest: Path) -> None:
    for f in src.iterdir():
        if f.is_file() and (dest / f.name).stat().st_size != f.stat().st_size:
            raise SystemExit(f"{dest / f.name} has the wrong size")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=320, help="total size of the shards (MB)")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=4, help="parallel files, the same for both tools")
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "rentstack-bench-hub")
    args = ap.parse_args()

    total = make_model(args.data, args.mb, args.files)
    tools = ["fetch_weights.py"] + (["modelscope download"] if MODELSCOPE.exists() else [])
    if len(tools) == 1:
        print(f"note: {MODELSCOPE} not found; measuring fetch_weights.py only")
    hubserver = load_hubserver()
    times: dict[str, list[float]] = {t: [] for t in tools}
    rerun: dict[str, float] = {}
    with hubserver.HubServer(args.data) as server, tempfile.TemporaryDirectory(prefix="rentstack-bench-") as work:
        w = Path(work)
        for r in range(args.rounds):
            order = tools if r % 2 == 0 else list(reversed(tools))
            for tool in order:
                dest = w / f"{tool.split()[0]}-{r}"
                server.hub.reset_counters()
                if tool == "fetch_weights.py":
                    elapsed = run_fetch(server.endpoint, dest, args.workers)
                else:
                    elapsed = run_modelscope(server.endpoint, dest, args.workers, w / "ms-cache")
                check_same(args.data / MODEL, dest)
                sent = server.hub.total_sent()
                times[tool].append(elapsed)
                print(f"round {r + 1} {tool:20s} {elapsed:6.2f} s  {total / elapsed / 1e6:7.1f} MB/s  (server sent {sent / 1e6:.0f} MB)")
                if r == args.rounds - 1:
                    server.hub.reset_counters()
                    t = time.perf_counter()
                    (run_fetch(server.endpoint, dest, args.workers) if tool == "fetch_weights.py"
                     else run_modelscope(server.endpoint, dest, args.workers, w / "ms-cache"))
                    rerun[tool] = time.perf_counter() - t
                    rerun[tool + " bytes"] = server.hub.total_sent()
                shutil.rmtree(dest, ignore_errors=True)
    print(f"\n{total / 1e6:.0f} MB in {args.files + 1} files, {args.workers} workers, median of {args.rounds}:")
    for tool in tools:
        med = statistics.median(times[tool])
        print(f"  {tool:20s} {total / med / 1e6:7.1f} MB/s  (median {med:.2f} s; re-run {rerun[tool]:.2f} s,"
              f" {int(rerun[tool + ' bytes'])} bytes sent)")


if __name__ == "__main__":
    main()
