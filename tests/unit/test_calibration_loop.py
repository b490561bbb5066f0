"""The calibration loop: what the doctor measured on a good start is what the next plan uses.

A real start (golden log, Llama-3.1-8B on one H100, vLLM 0.19.0) is saved with
`rentstack doctor --save-calibration`; `rentstack plan` for the same card, version and model
then shows the measured weights, CUDA graphs and activation + non-torch, and says so.
Each figure is reused only where it carries over to the planned flags.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from rentstack.cli import main
from rentstack.calibration import lookup_calibration, measured_for_tier, save_calibration
from rentstack.plan import Hardware, LaunchParams, Measured, load_arch, plan
from rentstack.render.deployment import build_deployment
from rentstack.config import load_tier

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "doctor"
LOG = GOLDEN / "v0_19_0-ok-llama31-8b-h100.log"
AWQ_LOG = GOLDEN / "v0_28_0-ok-qwen3-14b-awq-l4-pp2.log"
H100 = 79.19  # an "80 GB" H100 as CUDA reports it; the log does not print the total
CARD = "NVIDIA H100 80GB HBM3"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
# From the log: weights 14.99, KV 58.11 at utilization 0.95, graphs 0.91 (estimate 0.84).
NON_KV = round(0.95 * H100 - 14.99 - 58.11, 3)

# meta-llama/Llama-3.1-8B-Instruct's config.json (memory-relevant fields).
LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 128256, "max_position_embeddings": 131072, "torch_dtype": "bfloat16",
    "tie_word_embeddings": False, "hidden_act": "silu", "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
}


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    path = tmp_path / "calibration.json"
    monkeypatch.setenv("RENTSTACK_CALIBRATION", str(path))
    return path


@pytest.fixture
def model_dir(tmp_path) -> Path:
    d = tmp_path / "Llama-3.1-8B-Instruct"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(LLAMA_CONFIG))
    return d


@pytest.fixture
def saved(capsys) -> None:
    code = main(["doctor", str(LOG), "--save-calibration", "--card", CARD, "--gpu-mem-gib", str(H100)])
    out = capsys.readouterr().out
    assert code == 0 and "Measured figures saved" in out


def plan_cli(capsys, model_dir: Path, *extra: str, card: str = "H100 80GB HBM3", version: str = "0.19.0",
             name: str = MODEL, json_out: bool = True):
    argv = ["plan", "--model-config", str(model_dir), "--model-name", name, "--gpu-mem-gib", str(H100),
            "--gpu-name", card, "--vllm-version", version, "--max-model-len", "8192",
            "--gpu-memory-utilization", "0.95", *extra]
    code = main(argv + (["--json"] if json_out else []))
    out = capsys.readouterr().out
    return code, (json.loads(out) if json_out else out)


def test_the_doctor_saves_the_figures_of_the_golden_start(saved):
    record = lookup_calibration("H100 80GB HBM3", "0.19.0", MODEL)
    figs = record["figures"]
    assert (figs["weights_gib"], figs["cuda_graph_gib"], figs["cuda_graph_estimate_gib"]) == (14.99, 0.91, 0.84)
    assert figs["activation_plus_non_torch_gib"] == pytest.approx(NON_KV)
    assert figs["launch_args"] == {"gpu-memory-utilization": 0.95, "max-model-len": 8192}


def test_plan_of_the_same_card_version_model_uses_the_measured_figures(saved, model_dir, capsys):
    code, d = plan_cli(capsys, model_dir)
    assert code == 0
    assert d["measured"] == ["weights", "activation+non_torch", "cuda_graphs"]
    assert d["weights_gib"] == pytest.approx(14.99)
    assert d["cuda_graph_gib"] == pytest.approx(0.91)
    assert d["activation_gib"] + d["non_torch_gib"] == pytest.approx(NON_KV)
    # Same flags as the logged start, so the KV cache is the logged one.
    assert d["available_kv_gib"] == pytest.approx(58.11, abs=0.005)
    assert d["kv_cache_tokens"] == pytest.approx(476000, rel=0.001)
    assert d["measured_from"] == "H100 80GB HBM3, vLLM 0.19.0, meta-llama/Llama-3.1-8B-Instruct"
    assert d["measured_notes"] == []

    today = datetime.now(timezone.utc).date().isoformat()
    _, text = plan_cli(capsys, model_dir, json_out=False)
    assert (f"used measured figures from H100 80GB HBM3, vLLM 0.19.0, meta-llama/Llama-3.1-8B-Instruct: "
            f"weights, activation + non-torch, cuda graphs (saved {today})") in text
    assert "14.99" in text and "58.11" in text


def test_no_calibration_flag_plans_from_the_model(saved, model_dir, capsys):
    _, d = plan_cli(capsys, model_dir, "--no-calibration")
    assert d["measured"] == [] and d["measured_from"] == ""
    # The model's own figures: its weights now agree with the logged 14.99 to 0.001 GiB (the
    # RoPE cache is counted), so the CUDA graphs (0.95 planned vs 0.91 logged) tell them apart.
    assert d["weights_gib"] == pytest.approx(14.989, abs=0.001)
    assert d["cuda_graph_gib"] == pytest.approx(0.95, abs=0.01)


@pytest.mark.parametrize("card, version, name", [
    ("A100-SXM4-80GB", "0.19.0", MODEL),          # another card
    ("H100 80GB HBM3", "0.20.0", MODEL),          # another vLLM
    ("H100 80GB HBM3", "0.19.0", "Qwen/Qwen3-8B"),  # another model
])
def test_another_card_version_or_model_does_not_use_it(saved, model_dir, capsys, card, version, name):
    _, d = plan_cli(capsys, model_dir, card=card, version=version, name=name)
    _, base = plan_cli(capsys, model_dir, "--no-calibration", card=card, version=version, name=name)
    assert d["measured"] == [] and d["measured_from"] == ""
    assert d["weights_gib"] == base["weights_gib"] != pytest.approx(14.99, abs=0.001)


def test_other_tp_scales_the_weights_and_keeps_the_modelled_activation(saved, model_dir, capsys):
    _, d = plan_cli(capsys, model_dir, "--tp", "2", "--gpus", "2")
    _, base = plan_cli(capsys, model_dir, "--tp", "2", "--gpus", "2", "--no-calibration")
    _, base_tp1 = plan_cli(capsys, model_dir, "--no-calibration")
    ratio = 14.99 / base_tp1["weights_gib"]
    assert d["measured"] == ["weights", "cuda_graphs"]
    assert d["weights_gib"] == pytest.approx(base["weights_gib"] * ratio, rel=1e-6)
    assert d["activation_gib"] == base["activation_gib"] and d["non_torch_gib"] == base["non_torch_gib"]
    assert any(n.startswith("weights: measured at tp 1; scaled to tp 2") for n in d["measured_notes"])
    assert any(n.startswith("activation + non-torch: kept the model — measured at tp 1") for n in d["measured_notes"])


def test_other_batch_size_keeps_the_modelled_activation(saved, model_dir, capsys):
    _, d = plan_cli(capsys, model_dir, "--max-num-batched-tokens", "4096")
    _, base = plan_cli(capsys, model_dir, "--max-num-batched-tokens", "4096", "--no-calibration")
    assert d["measured"] == ["weights", "cuda_graphs"]
    assert d["weights_gib"] == pytest.approx(14.99) and d["cuda_graph_gib"] == pytest.approx(0.91)
    assert d["activation_gib"] == base["activation_gib"]
    assert ("activation + non-torch: kept the model — measured at max_num_batched_tokens 8192, "
            "this plan has max_num_batched_tokens 4096") in d["measured_notes"]


def test_fewer_capture_sizes_scale_the_cuda_graphs(saved, model_dir, capsys):
    _, d = plan_cli(capsys, model_dir, "--max-num-seqs", "64")
    _, base = plan_cli(capsys, model_dir, "--max-num-seqs", "64", "--no-calibration")
    _, base_full = plan_cli(capsys, model_dir, "--no-calibration")
    assert "cuda_graphs" in d["measured"]
    assert d["cuda_graph_gib"] == pytest.approx(0.91 * base["cuda_graph_gib"] / base_full["cuda_graph_gib"], rel=1e-6)
    assert d["cuda_graph_gib"] < 0.91
    assert any(n.startswith("cuda graphs: measured with 51 capture sizes (max_num_seqs 1024)")
               for n in d["measured_notes"])


def test_enforce_eager_uses_no_graph_figure(saved, model_dir, capsys):
    _, d = plan_cli(capsys, model_dir, "--enforce-eager")
    assert d["cuda_graph_gib"] == 0.0 and "cuda_graphs" not in d["measured"]
    assert d["weights_gib"] == pytest.approx(14.99)
    assert "cuda graphs: enforce_eager, none are captured" in d["measured_notes"]


def test_another_weight_format_ignores_weights_and_graphs(saved, model_dir, capsys):
    _, d = plan_cli(capsys, model_dir, "--quantization", "fp8")
    _, base = plan_cli(capsys, model_dir, "--quantization", "fp8", "--no-calibration")
    assert d["measured"] == []
    assert d["weights_gib"] == base["weights_gib"] and d["cuda_graph_gib"] == base["cuda_graph_gib"]
    assert any(n.startswith("weights: measured with quantization none") and n.endswith("not reused")
               for n in d["measured_notes"])


def test_fit_takes_the_measured_figures_too(saved, model_dir, capsys):
    _, d = plan_cli(capsys, model_dir, "--fit", "--max-num-seqs", "1024", "--max-num-batched-tokens", "8192")
    assert d["weights_gib"] == pytest.approx(14.99)
    assert "weights" in d["measured"]


def test_catalog_model_matches_the_hub_id_of_a_pp2_start(capsys):
    # Qwen/Qwen3-14B-AWQ on 2× L4 with pp 2, vLLM 0.28.0: the catalog's qwen3-14b-awq.
    assert main(["doctor", str(AWQ_LOG), "--save-calibration", "--card", "NVIDIA L4", "--gpu-mem-gib", "22.03"]) == 0
    capsys.readouterr()
    argv = ["plan", "--model", "qwen3-14b-awq", "--gpu-mem-gib", "22.03", "--gpus", "2", "--pp", "2",
            "--gpu-name", "L4", "--vllm-version", "0.28.0", "--max-model-len", "40960",
            "--gpu-memory-utilization", "0.9"]
    assert main([*argv, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["measured"] == ["weights", "cuda_graphs"]
    assert max(g["weights_gib"] for g in d["per_gpu"]) == pytest.approx(5.01)
    assert [g["cuda_graph_gib"] for g in d["per_gpu"]] == pytest.approx([0.52, 0.52])
    main(argv)
    assert "used measured figures from L4, vLLM 0.28.0, Qwen/Qwen3-14B-AWQ: weights, cuda graphs" in capsys.readouterr().out


def test_render_plans_a_gpu_tier_with_the_calibration():
    tier = load_tier("4090x1")
    from rentstack.versions import VLLM_VERSION

    save_calibration(tier.gpu.name, VLLM_VERSION, "qwen3-14b-awq",
                     {"vllm_version": VLLM_VERSION, "weights_gib": 9.5, "cuda_graph_gib": 0.7})
    assert build_deployment(tier, "qwen3-14b-awq").plan.measured_fields == ()  # render itself reads no store
    dep = build_deployment(tier, "qwen3-14b-awq", measured=measured_for_tier(tier, "qwen3-14b-awq"))
    assert dep.plan.measured_fields == ("weights", "cuda_graphs")
    assert dep.plan.weights_gib == pytest.approx(9.5)
    assert any(n.startswith(f"planner: used measured figures from RTX 4090, vLLM {VLLM_VERSION}, qwen3-14b-awq: "
                            "weights, cuda graphs") for n in dep.notes)


def test_planner_takes_measured_values_without_any_store(model_dir):
    """Pure: the planner gets the figures as a value; ≥0.20 budgets the graph estimate, not the capture."""
    arch = load_arch(str(model_dir))
    hw = Hardware(gpu_mem_gib=H100, name="H100")
    p = LaunchParams(vllm_version="0.20.2", max_model_len=8192, gpu_memory_utilization=0.9)
    m = Measured(weights_gib=14.25, non_kv_gib=2.0, cuda_graph_gib=0.87, cuda_graph_budget_gib=0.61,
                 params=LaunchParams(vllm_version="0.20.2", gpu_memory_utilization=0.9), source="x")
    pl = plan(arch, hw, p, measured=m)
    assert pl.measured_fields == ("weights", "activation+non_torch", "cuda_graphs")
    assert (pl.cuda_graph_gib, pl.cuda_graph_budget_gib) == pytest.approx((0.87, 0.61))
    assert pl.available_kv_gib == pytest.approx(0.9 * H100 - 14.25 - 2.0 - 0.61)
    other = plan(arch, hw, p.with_(vllm_version="0.19.0"), measured=m)
    assert other.measured_fields == () and other.measured_notes == [
        "measured with vLLM 0.20.2, this plan is for 0.19.0 — not reused"]


def test_a_start_on_more_cards_still_scales_the_weights(model_dir):
    arch = load_arch(str(model_dir))
    hw = Hardware(gpu_mem_gib=H100, name="H100")
    p = LaunchParams(vllm_version="0.19.0", max_model_len=8192)
    m = Measured(weights_gib=7.6, params=LaunchParams(vllm_version="0.19.0", tp=2), source="x")
    base_tp1 = plan(arch, hw, p)
    base_tp2 = plan(arch, Hardware(gpu_mem_gib=H100, gpus=2, name="H100"), p.with_(tp=2))
    pl = plan(arch, hw, p, measured=m)
    assert pl.measured_fields == ("weights",)
    assert pl.weights_gib == pytest.approx(base_tp1.weights_gib * 7.6 / base_tp2.weights_gib, rel=1e-9)
    assert pl.measured_notes[0].startswith("weights: measured at tp 2; scaled to tp 1")
