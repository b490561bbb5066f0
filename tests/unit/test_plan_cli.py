"""`rentstack plan`: the CLI contract (flag names, --json keys, exit codes, one-line errors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rentstack.cli import main

REPO = Path(__file__).resolve().parents[2]
CFG = str(REPO / "stacks" / "model-configs" / "qwen3-14b-awq.json")
JSON_KEYS = {"weights_gib", "activation_gib", "non_torch_gib", "cuda_graph_gib", "available_kv_gib",
             "kv_cache_tokens", "max_concurrency", "fits", "error",
             "kv_cache_tokens_low", "kv_cache_tokens_high", "band_source"}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["plan", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_has_the_contract_keys(capsys):
    code, out, _ = run(capsys, "--model-config", CFG, "--gpu-mem-gib", "23.64", "--json")
    data = json.loads(out)
    assert code == 0
    assert JSON_KEYS <= set(data)
    assert data["fits"] is True and data["error"] is None
    # vLLM 0.32's default utilization is 0.92 (0.9 before 0.21): 0.46 GiB more KV than at 0.9
    assert data["resolved"]["gpu_memory_utilization"] == 0.92
    assert data["kv_cache_tokens"] == pytest.approx(69248, rel=0.01)
    assert data["kv_cache_tokens_low"] < data["kv_cache_tokens"] < data["kv_cache_tokens_high"]
    assert data["band_source"]
    assert data["resolved"]["max_model_len"] == 40960


def test_every_flag_of_the_contract_is_accepted(capsys):
    code, out, err = run(capsys, "--model-config", CFG, "--gpu-mem-gib", "24", "--gpus", "2", "--tp", "2", "--pp", "1",
                         "--gpu-memory-utilization", "0.85", "--max-model-len", "8192", "--max-num-seqs", "64",
                         "--max-num-batched-tokens", "4096", "--dtype", "float16", "--quantization", "awq",
                         "--kv-cache-dtype", "fp8", "--block-size", "32", "--enforce-eager", "--cpu-offload-gb", "1",
                         "--vllm-version", "0.20.2", "--json")
    assert code == 0, err
    r = json.loads(out)["resolved"]
    assert (r["tp"], r["gpu_memory_utilization"], r["max_num_seqs"], r["max_num_batched_tokens"], r["block_size"],
            r["kv_cache_dtype"], r["enforce_eager"], r["cpu_offload_gb"], r["vllm_version"]) == (
        2, 0.85, 64, 4096, 32, "fp8", True, 1.0, "0.20.2")


def test_failure_prints_table_verdict_and_fix_exit_3(capsys):
    code, out, _ = run(capsys, "--model-config", str(REPO / "stacks/model-configs/qwen3-32b-awq.json"),
                       "--gpu-mem-gib", "23.64")
    assert code == 3
    assert "model weights" in out and "KV cache" in out and "CUDA graphs" in out
    assert "verdict: fails (max_model_len)" in out and "fix: lower max_model_len to 6096" in out


def test_bad_input_is_one_line_without_traceback(capsys):
    code, out, err = run(capsys, "--model-config", CFG, "--gpu-mem-gib", "24", "--gpu-memory-utilization", "1.5")
    assert code == 2
    assert err.count("\n") == 1 and "gpu-memory-utilization 1.5" in err and "Traceback" not in err


def test_missing_card_is_explained(capsys):
    code, _, err = run(capsys, "--model-config", CFG)
    assert code == 2 and "--gpu-mem-gib" in err


def test_fit_json_has_plan_keys_and_reasons(capsys):
    code, out, _ = run(capsys, "--model-config", CFG, "--gpu-mem-gib", "23.64", "--gpu-name", "RTX 4090", "--fit",
                       "--json")
    data = json.loads(out)
    assert code == 0
    assert JSON_KEYS <= set(data)
    assert {"tp", "gpu_memory_utilization", "max_model_len", "max_num_seqs", "kv_cache_dtype",
            "enforce_eager", "cpu_offload_gb"} <= set(data["fit"]["reasons"])


def test_tier_and_catalog_model(capsys):
    pytest.importorskip("rentstack.config")
    # At vLLM 0.32's own default utilization (0.92) four 4090s leave too little outside the
    # budget for graph capture and the sampler warm-up; the plan says so and how to fix it.
    code, out, err = run(capsys, "--tier", "4090x4", "--model", "qwen3-32b-awq", "--tp", "4")
    assert code == 3 and "verdict: fails (cuda_oom_risk)" in out and "lower gpu_memory_utilization to 0.90" in out
    code, out, err = run(capsys, "--tier", "4090x4", "--model", "qwen3-32b-awq", "--tp", "4",
                         "--gpu-memory-utilization", "0.9", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["fits"] and data["resolved"]["quantization"] == "awq"
    assert data["kv_cache_tokens"] == pytest.approx(237936, rel=0.01)
