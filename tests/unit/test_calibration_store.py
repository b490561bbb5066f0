"""The calibration store: per (card, vLLM version, model), atomic writes, clear errors."""

from __future__ import annotations

import json

import pytest

from rentstack.calibration import lookup_calibration, save_calibration
from rentstack.calibration import normalize_card, normalize_model, store_path
from rentstack.errors import RentstackError

FIGS = {"weights_gib": 14.99, "activation_gib": 1.89, "non_torch_gib": 0.25, "cuda_graph_gib": 0.91,
        "available_kv_gib": 58.11, "kv_cache_tokens": 476000, "launch_args": {"max-model-len": 8192, "model": "x"},
        "explanation": "not a figure"}


def test_round_trip_with_explicit_path(tmp_path):
    path = tmp_path / "cal.json"
    save_calibration("H100 80GB", "0.19.0", "meta-llama/Llama-3.1-8B-Instruct", FIGS, path=path)
    record = lookup_calibration("H100 80GB", "v0.19.0", "meta-llama/Llama-3.1-8B-Instruct", path=path)
    assert record["figures"]["cuda_graph_gib"] == 0.91
    assert record["figures"]["launch_args"] == {"max-model-len": 8192}  # only memory-relevant flags
    assert "explanation" not in record["figures"]
    assert record["measured_at"]
    assert lookup_calibration("H100 80GB", "0.20.0", "meta-llama/Llama-3.1-8B-Instruct", path=path) is None


def test_env_var_overrides_the_default_path(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "store.json"
    monkeypatch.setenv("RENTSTACK_CALIBRATION", str(target))
    assert store_path() == target
    save_calibration("RTX 4090", "0.32.0", "Qwen/Qwen3-8B", FIGS)
    assert json.loads(target.read_text())["entries"]


def test_default_path_is_under_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("RENTSTACK_CALIBRATION", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert store_path() == tmp_path / ".cache" / "rentstack" / "calibration.json"


def test_writes_are_atomic_and_keep_other_entries(tmp_path):
    path = tmp_path / "cal.json"
    save_calibration("RTX 4090", "0.32.0", "a/m1", FIGS, path=path)
    save_calibration("RTX 4090", "0.32.0", "a/m2", {**FIGS, "weights_gib": 3.0}, path=path)
    save_calibration("RTX 4090", "0.32.0", "a/m1", {**FIGS, "weights_gib": 15.5}, path=path)
    entries = json.loads(path.read_text())["entries"]
    assert len(entries) == 2
    assert lookup_calibration("RTX 4090", "0.32.0", "a/m1", path=path)["figures"]["weights_gib"] == 15.5
    assert [p.name for p in tmp_path.iterdir()] == ["cal.json"]  # no temp file left behind


def test_card_and_model_names_are_normalized():
    assert normalize_card("NVIDIA GeForce RTX 4090") == normalize_card("rtx 4090") == "RTX 4090"
    assert normalize_model("/root/autodl-tmp/models/Qwen3-8B/") == "Qwen3-8B"
    assert normalize_model("Qwen/Qwen3-8B") == "Qwen/Qwen3-8B"


def test_corrupt_store_is_a_clear_error(tmp_path):
    path = tmp_path / "cal.json"
    path.write_text("{not json")
    with pytest.raises(RentstackError, match="not valid JSON"):
        lookup_calibration("RTX 4090", "0.32.0", "m", path=path)
    with pytest.raises(RentstackError, match="not valid JSON"):
        save_calibration("RTX 4090", "0.32.0", "m", FIGS, path=path)
    assert path.read_text() == "{not json"  # never overwritten blindly


def test_key_parts_are_required(tmp_path):
    with pytest.raises(RentstackError, match="card model"):
        save_calibration("", "0.32.0", "m", FIGS, path=tmp_path / "c.json")
    assert lookup_calibration("", "0.32.0", "m", path=tmp_path / "c.json") is None


def test_activation_plus_non_torch_is_derived_when_the_card_size_is_known(tmp_path):
    from pathlib import Path

    from rentstack.doctor import diagnose, iter_lines

    golden = Path(__file__).resolve().parents[1] / "golden" / "doctor" / "v0_19_0-ok-llama31-8b-h100.log"
    with golden.open("rb") as fh:
        d = diagnose(iter_lines(fh))
    path = tmp_path / "cal.json"
    save_calibration("H100", "0.19.0", "meta-llama/Llama-3.1-8B-Instruct", d.figures, path=path, gpu_mem_gib=79.19)
    figs = lookup_calibration("H100", "0.19.0", "meta-llama/Llama-3.1-8B-Instruct", path=path)["figures"]
    # dev record 65: activation 1.89 + non-torch 0.25 = 2.14 GiB; 0.95 × 79.19 − 14.99 − 58.11 = 2.13
    assert abs(figs["activation_plus_non_torch_gib"] - 2.14) < 0.02
    assert figs["total_gpu_gib"] == 79.19


# An RTX 5090 start of Qwen3-30B-A3B-GPTQ-Int4 on vLLM 0.28.0 (consumer record c25, its engine log).
C25_LOG = [
    "(EngineCore pid=5475) INFO 09-05 16:27:56 [core.py:122] Initializing a V1 LLM engine (v0.28.0) with config: "
    "model='Qwen/Qwen3-30B-A3B-GPTQ-Int4', enforce_eager=False",
    "(EngineCore pid=5475) INFO 09-05 16:28:22 [gpu_model_runner.py:5515] Model loading took 15.66 GiB memory and "
    "23.535528 seconds",
    "(EngineCore pid=5475) INFO 09-05 16:30:46 [gpu_model_runner.py:6941] Estimated CUDA graph memory: 0.65 GiB total",
    "(EngineCore pid=5475) INFO 09-05 16:30:46 [gpu_worker.py:578] Available KV cache memory: 10.34 GiB",
    "(EngineCore pid=5475) INFO 09-05 16:30:46 [kv_cache_utils.py:1869] GPU KV cache size: 112,912 tokens, "
    "Maximum concurrency for 2,048 tokens per request: 55.13x",
    "(EngineCore pid=5475) INFO 09-05 16:32:02 [gpu_model_runner.py:7048] Graph capturing finished in 75 secs, "
    "took 0.58 GiB",
    "(EngineCore pid=5475) INFO 09-05 16:32:02 [gpu_worker.py:804] Free memory on device (30.86/31.36 GiB) on "
    "startup. Desired GPU memory utilization is (0.9, 28.22 GiB). Actual usage is 16.7 GiB for consumed memory "
    "(weights + non-torch), 1.19 GiB for peak activation, and 0.58 GiB for CUDAGraph memory. Replace "
    "gpu_memory_utilization config with `--kv-cache-memory=11032338432` (10.27 GiB) to fit into requested "
    "memory, or `--kv-cache-memory=17652813824` (16.44 GiB) to fully utilize gpu memory. Current kv cache "
    "memory in use is 10.34 GiB.",
]


def test_028_activation_is_kept_without_the_graph_estimate_it_includes():
    from rentstack.calibration import measured_figures
    from rentstack.doctor.diagnose import diagnose

    figs = diagnose(C25_LOG).figures
    assert figs["activation_gib"] == 1.19 and figs["cuda_graph_estimate_gib"] == 0.65  # as logged
    kept = measured_figures(figs)
    assert kept["activation_gib"] == pytest.approx(0.54)  # the eager start of c26 logged 0.54
    # the budget still adds up: 28.22 - 16.7 consumed - 0.54 - 0.65 estimate = 10.33 of KV
    assert 28.22 - kept["weights_plus_non_torch_gib"] - kept["activation_gib"] - 0.65 == pytest.approx(10.34, abs=0.02)
