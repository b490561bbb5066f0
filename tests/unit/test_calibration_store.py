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
