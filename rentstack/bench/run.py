"""The executor of a sweep: run vLLM's benchmark client in the vLLM image, write the results.

The client runs in the locally built CPU image (`make image`): it holds vLLM's benchmark
code, so the host needs no vLLM. It reaches the endpoint on the host's network (a local
`make up`, or the local end of an SSH tunnel) and reads the API key from OPENAI_API_KEY,
passed by name so the key is never on a command line.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import asdict
from pathlib import Path

import yaml

from rentstack.bench.sweep import BenchSettings, Prediction, Row, driver_input, predicted_concurrency, table
from rentstack.errors import RentstackError
from rentstack.versions import VLLM_CPU_IMAGE

DRIVER = Path(__file__).with_name("driver.py")
RESULTS = "results.jsonl"


def run_sweep(settings: BenchSettings, *, base_url: str, api_key: str | None, model: str, tokenizer_dir: Path,
              out_dir: Path, image: str = VLLM_CPU_IMAGE, network: str = "host") -> list[dict]:
    """Run every level; return vLLM's result dicts (also left in out_dir/results.jsonl)."""
    if not (tokenizer_dir / "tokenizer_config.json").is_file() and not (tokenizer_dir / "tokenizer.json").is_file():
        raise RentstackError(f"tokenizer directory {tokenizer_dir} has no tokenizer.json/tokenizer_config.json: "
                             "point --tokenizer at the served model's directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = driver_input(settings, base_url=base_url, model=model, tokenizer="/tokenizer", out=f"/out/{RESULTS}")
    cmd = ["docker", "run", "-i", "--rm", "--name", f"rentstack-bench-{os.getpid()}", "--network", network, "-e", "OPENAI_API_KEY",
           "-e", "HF_HUB_OFFLINE=1", "-e", "VLLM_NO_USAGE_STATS=1",
           "-v", f"{tokenizer_dir.resolve()}:/tokenizer:ro", "-v", f"{out_dir.resolve()}:/out",
           "--entrypoint", "python3", image, "-", json.dumps(spec)]
    env = {**os.environ, "OPENAI_API_KEY": api_key or ""}
    log = out_dir / "client.log"
    with log.open("w") as fh:
        proc = subprocess.run(cmd, input=DRIVER.read_text(), text=True, stdout=fh, stderr=subprocess.STDOUT, env=env)
    results_file = out_dir / RESULTS
    results = [json.loads(line) for line in results_file.read_text().splitlines() if line.strip()] \
        if results_file.is_file() else []
    if proc.returncode != 0 or len(results) != len(settings.concurrency):
        tail = " | ".join(log.read_text().strip().splitlines()[-3:])
        raise RentstackError(f"the benchmark client stopped after {len(results)} of {len(settings.concurrency)} "
                             f"levels (exit {proc.returncode}); see {log}: {tail}")
    return results


def write_report(rows: list[Row], out_dir: Path, *, settings: BenchSettings, title: str, base_url: str,
                 model: str, prediction: Prediction | None, results: list[dict]) -> dict[str, Path]:
    """bench.json (everything), table.txt and bench.png in out_dir."""
    from rentstack.bench.plot import plot

    failed = sum(r.failed for r in rows)
    doc = {"endpoint": base_url, "model": model, "settings": settings.model_dump(mode="json"),
           "prediction": asdict(prediction) if prediction else None,
           "rows": [_jsonable(r.to_dict()) for r in rows], "failed_requests": failed,
           "vllm_results": [_jsonable(r) for r in results]}
    paths = {"json": out_dir / "bench.json", "table": out_dir / "table.txt", "png": out_dir / "bench.png"}
    paths["json"].write_text(json.dumps(doc, indent=2) + "\n")
    paths["table"].write_text(table(rows, prediction) + "\n")
    plot(rows, paths["png"], title=title, prediction=prediction, output_len=settings.output_len)
    return paths


def _jsonable(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


# --------------------------------------------------------------------------- a rendered tier


def read_rendered(tier_dir: Path) -> dict:
    """The vLLM settings a rendered tier directory serves with (its vllm.yaml)."""
    path = tier_dir / "vllm.yaml"
    if not path.is_file():
        raise RentstackError(f"{path} is missing: render or start the tier first (make up TIER=...)")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or "served-model-name" not in data:
        raise RentstackError(f"{path} names no served-model-name: re-render the tier")
    return data


def prediction_for(tier_name: str, rendered: dict, settings: BenchSettings) -> tuple[Prediction | None, str]:
    """The planner's max concurrency for this sweep's request size on the rendered deployment.

    Re-plans the tier with the rendered settings (the same pure planner `render` used):
    GPU tiers from the plan's KV tokens, the cpu tier from its KV space and the model's
    bytes per token."""
    from rentstack import plan as planner
    from rentstack.config import load_tier
    from rentstack.render import build_deployment

    fixed = {"model", "served-model-name", "host", "port"}
    sets = {k: v for k, v in rendered.items() if k not in fixed}
    try:
        tier = load_tier(tier_name)
        dep = build_deployment(tier, str(rendered["served-model-name"]), sets, force=True)
        seqs = int(dep.settings.get("max-num-seqs", 256))
        block = int(dep.settings.get("block-size") or 16)
        if tier.accelerator == "cpu":
            if dep.model.config_path is None:
                return None, "no prediction: the model has no config.json in the catalog"
            arch = planner.load_arch(str(dep.model.config_path))
            per_token = planner.kv_bytes_per_token(arch, planner.LaunchParams(dtype=str(sets.get("dtype", "auto"))))
            kv_tokens = dep.cpu_kv_gib * 2**30 // per_token
        elif dep.plan is not None:
            kv_tokens = int(dep.plan.kv_cache_tokens)
        else:
            return None, "no prediction: the tier was rendered without a memory plan"
    except RentstackError as exc:
        return None, f"no prediction: {exc}"
    pred = predicted_concurrency(seqs, kv_tokens, settings.request_tokens, block)
    return pred, f"planner: {pred.why}"
