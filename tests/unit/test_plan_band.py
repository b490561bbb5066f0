"""The error band (rentstack.plan.band) and fit's promise to plan against its low end (issue #10)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rentstack.plan import Hardware, LaunchParams, Measured, fit, load_arch, plan
from rentstack.plan import band as band_mod

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "stacks" / "model-configs"
CONSUMER = REPO / "tests" / "data" / "consumer-startup-logs.jsonl"


def arch(name: str):
    return load_arch(CONFIGS / f"{name}.json")


def _recs(*rows):
    return tuple(dict(id=i, segment=list(seg), residual=r) for i, (seg, r) in enumerate(rows))


def test_segment_with_enough_records_uses_its_own_residuals():
    seg = ("consumer", "v1", "bf16", "tp1")
    recs = _recs((seg, 0.02), (seg, -0.05), (seg, 0.01), (("consumer", "v0", "bf16", "tp1"), 0.30))
    b = band_mod.band_for(seg, recs)
    assert b.over == pytest.approx(0.02) and b.under == pytest.approx(0.05)
    assert b.source.startswith("consumer × v1 × bf16 × tp1: 3 fit records")
    assert b.low(1020) == pytest.approx(1000) and b.high(95) == pytest.approx(100)


def test_thin_segment_borrows_its_parents_residuals_and_says_so():
    recs = _recs((("consumer", "v1", "bf16", "tp1"), 0.02), (("consumer", "v0", "bf16", "tp1"), 0.30),
                 (("consumer", "v0", "quantized", "multi-pcie"), -0.10), (("datacenter", "v1", "bf16", "tp1"), 0.9))
    b = band_mod.band_for(("consumer", "v1", "bf16", "tp1"), recs)
    assert b.over == pytest.approx(0.30) and b.under == pytest.approx(0.10)  # all three consumer records
    assert "consumer: 3 fit records" in b.source and "borrowed" in b.source


def test_a_miss_in_gib_weighs_on_small_kv_pools_and_a_relative_one_on_large_ones():
    seg = ("consumer", "v1", "bf16", "tp1")
    recs = tuple(dict(id=i, segment=list(seg), residual=r, residual_gib=g)
                 for i, (r, g) in enumerate([(0.015, 1.0), (0.04, 0.2), (-0.05, -0.5)]))
    b = band_mod.band_for(seg, recs)
    assert (b.over_gib, b.under_gib) == (pytest.approx(1.0), pytest.approx(0.5))
    # 5 GiB of KV cache: losing 1 GiB (20 %) is worse than the worst relative miss (4 %).
    assert b.low_factor(5.0) == pytest.approx(0.8)
    assert band_mod.low_tokens(40960, b, 16, kv_gib=5.0) == 32768
    # 100 GiB: the relative miss (4 GiB) is the wider one.
    assert b.low_factor(100.0) == pytest.approx(1 / 1.04)
    assert b.high_factor(5.0) == pytest.approx(1.1) and b.high_factor(100.0) == pytest.approx(1 / 0.95)
    # A KV pool smaller than the worst miss has nothing left at its low end.
    assert b.low_factor(0.5) == 0.0


def test_no_residuals_at_all_is_a_point_estimate_that_says_so():
    b = band_mod.band_for(("consumer", "v1", "bf16", "tp1"), ())
    assert (b.over, b.under) == (0.0, 0.0) and "point estimate only" in b.source


def test_card_families():
    assert band_mod.card_family("NVIDIA H100 80GB HBM3") == "datacenter"
    assert band_mod.card_family("NVIDIA GeForce RTX 4090") == "consumer"
    assert band_mod.card_family("vGPU-32GB") == "consumer"
    assert band_mod.card_family("NVIDIA GB10") == "unified"
    assert band_mod.card_family("anything", nvlink=True) == "datacenter"


def test_every_plan_carries_a_band_around_its_point_estimate():
    pl = plan(arch("qwen3-8b"), Hardware(23.58, name="NVIDIA GeForce RTX 3090"), LaunchParams(max_model_len=8192))
    assert pl.kv_cache_tokens_low < pl.kv_cache_tokens < pl.kv_cache_tokens_high
    assert pl.available_kv_gib_low < pl.available_kv_gib < pl.available_kv_gib_high
    assert pl.kv_cache_tokens_low % pl.resolved.block_size == 0
    assert pl.band_source and pl.band_segment == ("consumer", "v1", "bf16", "tp1")
    d = pl.to_dict()
    assert {"kv_cache_tokens_low", "kv_cache_tokens_high", "band_source"} <= set(d)
    assert d["kv_cache_tokens_low"] == pl.kv_cache_tokens_low


def test_a_calibration_of_this_card_narrows_the_band_to_its_rounding():
    a, hw = arch("qwen3-8b"), Hardware(23.58, name="NVIDIA GeForce RTX 3090")
    p = LaunchParams(max_model_len=8192, max_num_seqs=64, enforce_eager=True)
    wide = plan(a, hw, p)
    m = Measured(weights_gib=15.27, non_kv_gib=0.9, params=p, source="RTX 3090, vLLM 0.32.0, qwen3-8b")
    narrow = plan(a, hw, p, measured=m)
    assert narrow.band_source.startswith("calibration: RTX 3090")
    spread = narrow.kv_cache_tokens_high - narrow.kv_cache_tokens_low
    assert spread < (wide.kv_cache_tokens_high - wide.kv_cache_tokens_low) / 4
    assert (narrow.available_kv_gib - narrow.available_kv_gib_low) == pytest.approx(0.02, abs=0.001)


def test_band_json_matches_the_planner_on_the_consumer_fit_records():
    """band.json is written by scripts/fit_band.py; a planner change that moves these residuals
    without rewriting it fails here (the shared records are checked by fit_band.py --check)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import bench_planner as bench

    stored = {r["id"]: r for r in json.loads(band_mod.BAND_FILE.read_text())["records"]}
    archs = bench.load_archs([REPO / "tests" / "data" / "consumer-model-arch.json"])
    recs = [r for r in bench.load_records([CONSUMER]) if r["_split"] == "fit"]
    assert {r["id"] for r in recs} <= set(stored), "a consumer fit record is missing from band.json"
    for rec in recs:
        row = bench.evaluate(rec, archs)
        if "skipped" in row:
            pytest.fail(f"consumer fit record {rec['id']} cannot be planned here: {row['skipped']}")
        assert stored[rec["id"]]["residual"] == pytest.approx(row["signed_pct"] / 100, abs=1e-4)
        r = row["signed_pct"] / 100
        assert stored[rec["id"]]["residual_gib"] == pytest.approx(row["pred_kv_gib"] * r / (1 + r), abs=1e-3)
        assert stored[rec["id"]]["segment"] == list(row["band_segment"])


def test_shared_set_corrections_are_applied_with_their_reason(tmp_path):
    """A shared record whose own source contradicts a field is corrected on load, never edited
    in place: #9's figures (as its source lists them) add up to 0.95 × 79.18 GiB, not the 0.9
    it carries. The shared set itself lives outside the repository, so a copy of the record's
    figures stands in for it here."""
    sys.path.insert(0, str(REPO / "scripts"))
    import bench_planner as bench

    corrections = json.loads(bench.CORRECTIONS_FILE.read_text())["corrections"]
    assert all(len(c["why"]) > 40 and c["set"] for c in corrections.values())
    shared = tmp_path / "vllm-startup-logs.dev.jsonl"
    shared.write_text(json.dumps({"id": 9, "gpu_mem_total_gib": 79.18, "gpu_memory_utilization": 0.9,
                                  "weights_gib": 64.38, "activation_peak_gib": 7.38, "non_torch_gib": 0.13,
                                  "available_kv_gib": 3.33}) + "\n")
    other = tmp_path / "consumer-startup-logs.jsonl"
    other.write_text(json.dumps({"id": 9, "gpu_memory_utilization": 0.9}) + "\n")
    by_file = {r["_file"]: r for r in bench.load_records([shared, other])}
    r = by_file[shared.name]
    assert r["gpu_memory_utilization"] == 0.95
    assert by_file[other.name]["gpu_memory_utilization"] == 0.9  # only the shared file is corrected
    parts = r["weights_gib"] + r["activation_peak_gib"] + r["non_torch_gib"] + r["available_kv_gib"]
    assert parts == pytest.approx(r["gpu_memory_utilization"] * r["gpu_mem_total_gib"], abs=0.01)


# The fit never plans above the band's low end ------------------------------------------------

FIT_CASES = [
    ("qwen3-32b-awq", Hardware(23.55, name="NVIDIA GeForce RTX 4090"), {}),
    ("qwen3-14b-awq", Hardware(23.58, name="NVIDIA GeForce RTX 3090"), {}),
    ("qwen3-8b", Hardware(20.0, gpus=2, name="NVIDIA GeForce RTX 3080 20GB"), {"vllm-version": "0.8.5"}),
    ("qwen3-8b", Hardware(15.0, name="Tesla T4"), {"dtype": "float16"}),
    ("qwen3-32b-awq", Hardware(23.55, gpus=4, name="NVIDIA GeForce RTX 4090"), {}),
    ("qwen3-8b", Hardware(79.19, name="NVIDIA H100 80GB HBM3"), {}),
    ("deepseek-r1-distill-llama-70b", Hardware(32, free_mem_gib=8, name="vGPU-32GB"),
     {"gpu-memory-utilization": 0.25, "quantization": "bitsandbytes", "dtype": "bfloat16"}),
]


@pytest.mark.parametrize("model,hw,fixed", FIT_CASES, ids=[f"{m}-{h.name}" for m, h, _ in FIT_CASES])
def test_fit_never_plans_above_the_low_end(model, hw, fixed):
    f = fit(arch(model), hw, fixed=fixed)
    pl = f.plan
    assert pl.fits and pl.fits_low, f"{model}: the fit chose a start that fails at the band's low end"
    assert f.params.max_model_len <= pl.max_model_len_fit_low
    need = pl.kv_bytes_per_token * f.params.max_model_len / 2**30
    assert need <= pl.available_kv_gib_low + 1e-9
    if f.goal_met:
        assert pl.max_concurrency_low >= 4
    assert "band" in f.reasons and f"{pl.kv_cache_tokens_low:,}" in f.reasons["band"]


def test_fit_on_the_consumer_records_never_promises_more_than_vllm_logged():
    """Each consumer start with a logged KV capacity, re-fitted with its own card, version and
    batch flags: the max_model_len the fit chooses must fit in the capacity vLLM logged."""
    sys.path.insert(0, str(REPO / "scripts"))
    import bench_planner as bench

    archs = bench.load_archs([REPO / "tests" / "data" / "consumer-model-arch.json"])
    checked = 0
    for rec in bench.load_records([CONSUMER]):
        cap = bench.capacity_logged(rec)
        got, why = bench.inputs_of(rec, archs)
        if cap is None or got is None:
            continue
        a, hw, p = got
        # The profile run's size as in the logged start (V0 profiles max_model_len tokens, so
        # its capacity depends on it): the capacity vLLM logged is then the one fit plans for.
        r = plan(a, hw, p, allow_long_max_model_len=True).resolved
        fixed = {"vllm_version": r.vllm_version, "tp": r.tp, "pp": r.pp, "dtype": r.dtype,
                 "gpu_memory_utilization": r.gpu_memory_utilization, "cpu_offload_gb": r.cpu_offload_gb,
                 "max_num_batched_tokens": r.max_num_batched_tokens, "max_num_seqs": r.max_num_seqs,
                 "block_size": r.block_size, "enforce_eager": r.enforce_eager,
                 # The capacity was logged for this KV dtype; fp8 would double what fit can plan.
                 "kv_cache_dtype": r.kv_cache_dtype}
        if r.quantization:
            fixed["quantization"] = r.quantization
        f = fit(a, hw, fixed=fixed)
        assert f.params.max_model_len <= cap, f"{rec['id']}: fit chose {f.params.max_model_len} > logged {cap}"
        checked += 1
    assert checked >= 3
