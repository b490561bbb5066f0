"""After a good GPU start, `up` saves what the card did; the next plan for it says so."""

from __future__ import annotations

import json
from pathlib import Path

from rentstack.cli import main
from rentstack.start import calibrate

GOLDEN = Path(__file__).parents[1] / "golden" / "doctor"


def test_good_gpu_start_is_saved_and_used_by_the_next_plan(tmp_path, monkeypatch, capsys):
    store = tmp_path / "calibration.json"
    monkeypatch.setenv("RENTSTACK_CALIBRATION", str(store))
    log = (GOLDEN / "v0_19_0-ok-llama31-8b-h100.log").read_text()
    path = calibrate(log, "NVIDIA H100 80GB HBM3", 79.19, "meta-llama/Llama-3.1-8B-Instruct")
    assert path == store and store.is_file()
    entry = next(iter(json.loads(store.read_text())["entries"].values()))
    assert entry["vllm_version"] == "0.19.0"
    assert abs(entry["figures"]["weights_gib"] - 14.99) < 0.01
    capsys.readouterr()

    # the Llama-3.1-8B architecture, planned on the same card and version, by the same model name
    arch = {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
            "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32, "vocab_size": 128256,
            "max_position_embeddings": 131072, "torch_dtype": "bfloat16", "tie_word_embeddings": False,
            "rms_norm_eps": 1e-5, "model_type": "llama"}
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(arch))
    code = main(["plan", "--model-config", str(cfg), "--gpu-mem-gib", "79.19", "--gpu-name", "NVIDIA H100 80GB HBM3",
                 "--vllm-version", "0.19.0", "--model-name", "meta-llama/Llama-3.1-8B-Instruct", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code in (0, 3)
    assert "weights" in " ".join(report["measured"])
    assert abs(report["weights_gib"] - 14.99) < 0.01


def test_failed_or_cpu_log_saves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("RENTSTACK_CALIBRATION", str(tmp_path / "c.json"))
    failed = (GOLDEN / "v0_19_0-sampler-oom-gpt-oss-20b-h100.log").read_text()
    assert calibrate(failed, "NVIDIA H100 80GB HBM3", 79.19, "gpt-oss-20b") is None
    assert not (tmp_path / "c.json").exists()
