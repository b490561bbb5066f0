#!/usr/bin/env python3
"""Throughput of one replica vs two behind vLLM's router: `make bench-replicas HOSTS=h1,h2`.

The hosts were provisioned with `fab provision --host h1,h2 --tier cpu --replicas`. The same
sweep (`rentstack bench`, vLLM's serving benchmark) runs twice from this machine: against the
first host alone through an SSH tunnel, then against `fab router` over both. Prints both
tables and the ratio of the best output tokens/s. Results under bench-results/replicas-*/.
With --on HOST the second sweep goes through the router on that host (`fab router --on`,
reached through an SSH tunnel to its front door), which is stopped again afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rentstack.remote.connection import Remote, free_local_port  # noqa: E402
from rentstack.remote.hosts import PASSWORD_ENV, Auth, parse_hosts  # noqa: E402

RS = str(REPO / ".venv" / "bin" / "rentstack")
FAB = str(REPO / ".venv" / "bin" / "fab")


def bench(url: str, key_file: Path, out: Path, args) -> dict:
    cmd = [RS, "bench", "--url", url, "--model", args.model, "--tokenizer", str(REPO / "models" / args.model),
           "--key-file", str(key_file), "--concurrency", args.concurrency, "--rounds", str(args.rounds),
           "--out", str(out)]
    proc = subprocess.run(cmd, text=True, capture_output=True)
    if proc.returncode:
        sys.exit(f"bench failed: {proc.stderr.strip()[-500:]}")
    print(proc.stdout)
    return json.loads((out / "bench.json").read_text())


def best_tokens_per_s(report: dict) -> float:
    return max(row["output_tokens_per_s"] for row in report["rows"])


def bench_router_here(key_file: Path, stamp: str, args, count: int) -> dict:
    print(f"== {count} replicas behind vLLM's router here")
    local = free_local_port()
    router = subprocess.Popen([FAB, "router", "--host", args.hosts, "--tier", args.tier, "--port", str(args.port),
                               "--local-port", str(local), "--seconds", "3600",
                               *(["--key", args.key] if args.key else [])],
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        for line in router.stdout:
            if line.startswith("ready:"):
                break
            if router.poll() is not None:
                sys.exit("the router did not start")
        return bench(f"http://127.0.0.1:{local}", key_file, REPO / "bench-results" / f"replicas-{count}-{stamp}", args)
    finally:
        router.terminate()
        router.wait(timeout=30)


def bench_router_on_host(specs, auth, key_file: Path, stamp: str, args) -> dict:  # noqa: ANN001
    import shlex

    from rentstack.remote.hosts import parse_host

    fab = [FAB, "router", "--host", args.hosts, "--tier", args.tier, "--port", str(args.port), "--on", args.on,
           *shlex.split(args.router_args), *(["--key", args.key] if args.key else [])]
    front = args.port + 1
    if "--router-port" in fab:
        front = int(fab[fab.index("--router-port") + 1])
    print(f"== {len(specs)} replicas behind vLLM's router on {args.on}")
    started = subprocess.run(fab, text=True, capture_output=True, cwd=REPO)
    if started.returncode:
        sys.exit(f"fab router --on failed: {(started.stderr or started.stdout).strip()[-500:]}")
    try:
        with Remote(parse_host(args.on), auth) as remote, remote.tunnel(free_local_port(), front) as url:
            return bench(url, key_file, REPO / "bench-results" / f"replicas-{len(specs)}-on-host-{stamp}", args)
    finally:
        subprocess.run([*fab, "--stop"], text=True, capture_output=True, cwd=REPO)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hosts", required=True, help="h1,h2 as given to fab provision --replicas")
    p.add_argument("--key", help="SSH private key (else $RENTSTACK_SSH_PASSWORD)")
    p.add_argument("--tier", default="cpu")
    p.add_argument("--port", type=int, default=8000, help="the front door's port on the hosts")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--concurrency", default="1,2,4,8,16")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--on", help="run the router on this host (one of --hosts) instead of here")
    p.add_argument("--router-args", default="", help="more `fab router --on` flags, e.g. '--peer-ssh root@10.0.0.3:22'")
    args = p.parse_args()
    specs = parse_hosts(args.hosts)
    auth = Auth(password=os.environ.get(PASSWORD_ENV), key_filename=args.key)
    key_file = REPO / ".rentstack" / "hosts" / f"replicas-{args.tier}" / "secrets.env"
    stamp = time.strftime("%Y%m%dT%H%M%S")
    results = {}

    print(f"== one replica: {specs[0].label} through an SSH tunnel")
    with Remote(specs[0], auth) as remote, remote.tunnel(free_local_port(), args.port) as url:
        results[1] = bench(url, key_file, REPO / "bench-results" / f"replicas-1-{stamp}", args)

    if args.on:
        results[len(specs)] = bench_router_on_host(specs, auth, key_file, stamp, args)
    else:
        results[len(specs)] = bench_router_here(key_file, stamp, args, len(specs))

    one, many = best_tokens_per_s(results[1]), best_tokens_per_s(results[len(specs)])
    print(f"best output tokens/s: 1 replica {one:.1f}, {len(specs)} replicas {many:.1f} ({many / one:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
