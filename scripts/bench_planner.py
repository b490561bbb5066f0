#!/usr/bin/env python3
"""Benchmark the memory planner against real vLLM startup logs.

Feeds only the inputs of each record (model config, card, vLLM version, flags, and the
free memory vLLM measured at start when it was logged) to rentstack.plan.plan(), then
compares its available-KV GiB, KV tokens and verdict with what vLLM logged. Also scores
the naive "weights × 1.2 + 2 GiB" estimate on the same records.

    .venv/bin/python scripts/bench_planner.py [PATH.jsonl] [--arch PATH.json] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rentstack.errors import RentstackError  # noqa: E402
from rentstack.plan import Hardware, LaunchParams, load_arch, plan  # noqa: E402
from rentstack.plan.accounting import GiB  # noqa: E402
from rentstack.versions import VLLM_VERSION  # noqa: E402

DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "vllm-startup-logs.dev.jsonl"

# config.json fields that model-arch.json does not carry (num_attention_heads, tied
# embeddings, MoE and attention layout), copied from each model's Hugging Face config.json.
# Keyed by model-arch.json key. "vision_params" is the vision tower's parameter count
# (approximate) for multimodal checkpoints; the text-decoder numbers are exact.
HF_FACTS: dict[str, dict] = {
    "meta-llama/Llama-3.1-8B-Instruct": {"architectures": ["LlamaForCausalLM"], "num_attention_heads": 32},
    "Qwen/Qwen2-7B-Instruct": {"architectures": ["Qwen2ForCausalLM"], "num_attention_heads": 28},
    "Qwen/Qwen2.5-7B-Instruct": {"architectures": ["Qwen2ForCausalLM"], "num_attention_heads": 28},
    "Qwen/Qwen2.5-72B-Instruct": {"architectures": ["Qwen2ForCausalLM"], "num_attention_heads": 64},
    "Qwen/Qwen3-0.6B": {"architectures": ["Qwen3ForCausalLM"], "num_attention_heads": 16, "tie_word_embeddings": True},
    "Qwen/Qwen3-8B": {"architectures": ["Qwen3ForCausalLM"], "num_attention_heads": 32},
    "Qwen/Qwen3-14B": {"architectures": ["Qwen3ForCausalLM"], "num_attention_heads": 40},
    "Qwen/Qwen3-14B-AWQ": {"architectures": ["Qwen3ForCausalLM"], "num_attention_heads": 40,
                           "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128,
                                                   "zero_point": True}},
    "Qwen/Qwen3-32B": {"architectures": ["Qwen3ForCausalLM"], "num_attention_heads": 64},
    "meta-llama/Llama-3.3-70B-Instruct": {"architectures": ["LlamaForCausalLM"], "num_attention_heads": 64},
    "mistralai/Mistral-7B-Instruct-v0.2": {"architectures": ["MistralForCausalLM"], "num_attention_heads": 32},
    "mistralai/Mistral-Small-24B (3.1/3.2)": {"architectures": ["MistralForCausalLM"], "num_attention_heads": 32,
                                              "intermediate_size": 32768, "vision_params": 0.41e9},
    "mistralai/Mixtral-8x7B-Instruct-v0.1": {"architectures": ["MixtralForCausalLM"], "num_attention_heads": 32,
                                             "num_local_experts": 8, "num_experts_per_tok": 2},
    "ibm-granite/granite-3.1-8b-instruct": {"architectures": ["GraniteForCausalLM"], "num_attention_heads": 32,
                                            "tie_word_embeddings": True},
    "ibm-granite/granite-3.1-2b-instruct": {"architectures": ["GraniteForCausalLM"], "num_attention_heads": 32,
                                            "tie_word_embeddings": True},
    "Qwen/Qwen3-235B-A22B": {"architectures": ["Qwen3MoeForCausalLM"], "num_attention_heads": 64,
                             "moe_intermediate_size": 1536, "num_experts": 128, "num_experts_per_tok": 8},
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": {
        "architectures": ["Llama4ForConditionalGeneration"], "num_attention_heads": 40, "hidden_size": 5120,
        "vocab_size": 202048, "intermediate_size": 8192, "intermediate_size_mlp": 16384, "num_local_experts": 16,
        "num_experts_per_tok": 1, "interleave_moe_layer_step": 1, "attention_chunk_size": 8192,
        "no_rope_layer_interval": 4, "max_position_embeddings": 10485760, "vision_params": 0.9e9},
    "openai/gpt-oss-20b": {"architectures": ["GptOssForCausalLM"], "num_attention_heads": 64, "hidden_size": 2880,
                           "intermediate_size": 2880, "vocab_size": 201088, "num_local_experts": 32,
                           "num_experts_per_tok": 4, "sliding_window": 128, "max_position_embeddings": 131072,
                           "quantization_config": {"quant_method": "mxfp4"}},
    "openai/gpt-oss-120b": {"architectures": ["GptOssForCausalLM"], "num_attention_heads": 64, "hidden_size": 2880,
                            "intermediate_size": 2880, "vocab_size": 201088, "num_local_experts": 128,
                            "num_experts_per_tok": 4, "sliding_window": 128, "max_position_embeddings": 131072,
                            "quantization_config": {"quant_method": "mxfp4"}},
    "Qwen/Qwen3-VL-30B-A3B (text)": {"architectures": ["Qwen3VLMoeForConditionalGeneration"],
                                     "num_attention_heads": 32, "hidden_size": 2048, "vocab_size": 151936,
                                     "moe_intermediate_size": 768, "intermediate_size": 6144, "num_experts": 128,
                                     "num_experts_per_tok": 8, "max_position_embeddings": 262144,
                                     "vision_params": 0.54e9},
    "Qwen/Qwen3-VL-4B (text)": {"architectures": ["Qwen3VLForConditionalGeneration"], "num_attention_heads": 32,
                                "hidden_size": 2560, "vocab_size": 151936, "intermediate_size": 9728,
                                "tie_word_embeddings": True, "max_position_embeddings": 262144,
                                "vision_params": 0.41e9},
    "Qwen/Qwen2.5-7B-Instruct-AWQ": {"architectures": ["Qwen2ForCausalLM"], "num_attention_heads": 28,
                                     "torch_dtype": "float16",
                                     "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128,
                                                             "zero_point": True}},
    "Qwen/Qwen3-30B-A3B": {"architectures": ["Qwen3MoeForCausalLM"], "num_attention_heads": 32,
                           "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8},
    "Qwen/Qwen2.5-14B (DeepSeek-R1-Distill-Qwen-14B)": {"architectures": ["Qwen2ForCausalLM"],
                                                        "num_attention_heads": 40},
    "Qwen/Qwen1.5-MoE-A2.7B": {"architectures": ["Qwen2MoeForCausalLM"], "num_attention_heads": 16,
                               "moe_intermediate_size": 1408, "intermediate_size": 5632, "num_experts": 60,
                               "num_experts_per_tok": 4, "shared_expert_intermediate_size": 5632},
    "microsoft/phi-2": {"architectures": ["PhiForCausalLM"], "num_attention_heads": 32, "torch_dtype": "float16"},
    "microsoft/phi-4": {"architectures": ["Phi3ForCausalLM"], "num_attention_heads": 40},
    "codellama/CodeLlama-7b-hf": {"architectures": ["LlamaForCausalLM"], "num_attention_heads": 32},
    "google/gemma-7b": {"architectures": ["GemmaForCausalLM"], "num_attention_heads": 16, "tie_word_embeddings": True},
    "google/gemma-2-2b-it": {"architectures": ["Gemma2ForCausalLM"], "num_attention_heads": 8, "hidden_size": 2304,
                             "intermediate_size": 9216, "vocab_size": 256000, "max_position_embeddings": 8192,
                             "sliding_window": 4096, "tie_word_embeddings": True},
    "google/gemma-2-9b-it": {"architectures": ["Gemma2ForCausalLM"], "num_attention_heads": 16, "hidden_size": 3584,
                             "intermediate_size": 14336, "vocab_size": 256000, "max_position_embeddings": 8192,
                             "sliding_window": 4096, "tie_word_embeddings": True},
    "google/gemma-2-27b-it": {"architectures": ["Gemma2ForCausalLM"], "num_attention_heads": 32, "hidden_size": 4608,
                              "intermediate_size": 36864, "vocab_size": 256000, "max_position_embeddings": 8192,
                              "sliding_window": 4096, "tie_word_embeddings": True},
    "google/gemma-3-4b-it": {"architectures": ["Gemma3ForConditionalGeneration"], "num_attention_heads": 8,
                             "hidden_size": 2560, "intermediate_size": 10240, "vocab_size": 262208,
                             "max_position_embeddings": 131072, "sliding_window": 1024, "sliding_window_pattern": 6,
                             "tie_word_embeddings": True, "vision_params": 0.42e9},
    "google/gemma-3-12b-it": {"architectures": ["Gemma3ForConditionalGeneration"], "num_attention_heads": 16,
                              "hidden_size": 3840, "intermediate_size": 15360, "vocab_size": 262208,
                              "max_position_embeddings": 131072, "sliding_window": 1024, "sliding_window_pattern": 6,
                              "tie_word_embeddings": True, "vision_params": 0.42e9},
    "google/gemma-3-27b-it": {"architectures": ["Gemma3ForConditionalGeneration"], "num_attention_heads": 32,
                              "hidden_size": 5376, "intermediate_size": 21504, "vocab_size": 262208,
                              "max_position_embeddings": 131072, "sliding_window": 1024, "sliding_window_pattern": 6,
                              "tie_word_embeddings": True, "vision_params": 0.42e9},
    "deepseek-ai/DeepSeek-V2-Lite-Chat": {
        "architectures": ["DeepseekV2ForCausalLM"], "num_attention_heads": 16, "intermediate_size": 10944,
        "moe_intermediate_size": 1408, "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6,
        "first_k_dense_replace": 1, "qk_nope_head_dim": 128, "v_head_dim": 128, "max_position_embeddings": 163840},
    "moonshotai/Kimi-VL-A3B-Instruct (Moonlight text)": {
        "architectures": ["DeepseekV3ForCausalLM"], "num_attention_heads": 16, "hidden_size": 2048,
        "vocab_size": 163840, "intermediate_size": 11264, "moe_intermediate_size": 1408, "n_routed_experts": 64,
        "n_shared_experts": 2, "num_experts_per_tok": 6, "first_k_dense_replace": 1, "qk_nope_head_dim": 128,
        "v_head_dim": 128, "max_position_embeddings": 131072, "vision_params": 0.41e9},
    "MiniMaxAI/MiniMax-M2.x": {"architectures": ["MiniMaxM2ForCausalLM"], "num_attention_heads": 48,
                               "vocab_size": 200064, "intermediate_size": 1536, "num_local_experts": 256,
                               "num_experts_per_tok": 8, "max_position_embeddings": 196608,
                               "quantization_config": {"quant_method": "fp8"}},
    "zai-org/GLM-4.6": {"architectures": ["Glm4MoeForCausalLM"], "num_attention_heads": 96, "intermediate_size": 12288,
                        "moe_intermediate_size": 1536, "n_routed_experts": 160, "num_experts_per_tok": 8,
                        "n_shared_experts": 1, "first_k_dense_replace": 3, "max_position_embeddings": 202752},
}

# Vision towers of multimodal checkpoints whose text model shares an arch key (parameters, approximate).
VISION_PARAMS: dict[str, float] = {
    "ibm-granite/granite-vision-3.3-2b": 0.43e9,  # SigLIP so400m
}

# quantization_config of the checkpoints the records name (from their config.json).
CHECKPOINT_QUANT: dict[str, dict] = {
    "RedHatAI/Llama-3.3-70B-Instruct-fp8-dynamic": {"quant_method": "compressed-tensors", "config_groups": {
        "group_0": {"weights": {"num_bits": 8, "type": "float"}}}},
    "RedHatAI/Qwen2.5-7B-Instruct-fp8-dynamic": {"quant_method": "compressed-tensors", "config_groups": {
        "group_0": {"weights": {"num_bits": 8, "type": "float"}}}},
    "redhatai/Llama-3.3-70B-Instruct-quantized.w8a8": {"quant_method": "compressed-tensors", "config_groups": {
        "group_0": {"weights": {"num_bits": 8, "type": "int"}}}},
    "RedHatAI/Mistral-Small-3.1-24B-Instruct-2503-quantized.w8a8": {"quant_method": "compressed-tensors",
        "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "int"}}}},
    "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16": {"quant_method": "compressed-tensors", "config_groups": {
        "group_0": {"weights": {"num_bits": 4, "type": "int", "group_size": 128, "symmetric": True}}}},
    "TheBloke/Mistral-7B-Instruct-v0.2-GPTQ": {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True},
    "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8": {"quant_method": "fp8"},
    "Qwen/Qwen3-VL-30B-A3B (FP8)": {"quant_method": "fp8"},
    "Qwen/Qwen3-VL-4B-Instruct-FP8": {"quant_method": "fp8"},
    "QuantTrio/GLM-4.6-AWQ": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True},
}

# Total memory CUDA reports for cards named without a figure, GiB (as in vLLM/torch messages).
CARD_GIB = [
    (r"H100|H800", 79.19), (r"H200", 139.8), (r"A100.*80|A800.*80", 79.15), (r"A100.*40", 39.39),
    (r"L40S|\bL40\b", 44.42), (r"\bL4\b", 22.49), (r"A10G?\b", 22.49), (r"\bT4\b", 14.75),
    (r"V100.*32", 31.74), (r"V100", 15.77), (r"A6000|RTX 6000 Ada", 47.54),
    (r"RTX 3090", 23.58), (r"RTX 4090", 23.64),
    # DGX Spark GB10: 128 GB unified LPDDR5x, of which CUDA reports ≈119.7 GiB (assumed)
    (r"GB10", 119.7),
]


def _mib_total(gpu: str) -> float | None:
    m = re.search(r"([\d,]+)\s*MiB total", gpu)
    return int(m.group(1).replace(",", "")) / 1024 if m else None


def card_gib(rec: dict) -> float | None:
    if rec.get("gpu_mem_total_gib"):
        return float(rec["gpu_mem_total_gib"])
    gpu = rec.get("gpu") or ""
    if (mib := _mib_total(gpu)) is not None:
        return mib
    if "size not stated" in gpu:
        return None  # e.g. "A100 (memory size not stated)": 40 or 80 GB
    for pattern, gib in CARD_GIB:
        if re.search(pattern, gpu):
            return gib
    return None


def version_of(rec: dict) -> str:
    engine = rec.get("engine") or ""
    if engine.startswith("V0"):
        return "0.7.3"  # the V0 engine was the default before 0.8
    m = re.match(r"\s*(\d+\.\d+(?:\.\d+)*)", str(rec.get("vllm_version") or ""))
    return m.group(1) if m else VLLM_VERSION


def config_for(rec: dict, archs: dict) -> dict | None:
    key = rec.get("arch_key")
    if not key or key not in archs:
        return None
    a = archs[key]
    cfg = {
        "num_hidden_layers": a.get("L"), "num_key_value_heads": a.get("kv"), "head_dim": a.get("hd"),
        "hidden_size": a.get("hidden"), "vocab_size": a.get("vocab"), "intermediate_size": a.get("inter"),
        "max_position_embeddings": a.get("maxpos"), "torch_dtype": "bfloat16",
    }
    if a.get("kind") == "mla":
        cfg.update(kv_lora_rank=a.get("kv_lora_rank"), qk_rope_head_dim=a.get("qk_rope"))
    facts = dict(HF_FACTS.get(key, {}))
    vision = facts.pop("vision_params", 0)
    cfg.update({k: v for k, v in facts.items()})
    cfg = {k: v for k, v in cfg.items() if v is not None}
    if rec.get("model") in CHECKPOINT_QUANT:
        cfg["quantization_config"] = CHECKPOINT_QUANT[rec["model"]]
    cfg["_vision_params"] = VISION_PARAMS.get(rec.get("model"), vision)
    return cfg


def inputs_of(rec: dict, archs: dict):
    """(arch, hardware, params) from a record's inputs, or a reason it cannot be planned."""
    if "--enable-expert-parallel" in (rec.get("notes") or ""):
        return None, ("launched with --enable-expert-parallel (weights per GPU imply data parallel × TP over "
                      "8 ranks); the planner models TP/PP only")
    cfg = config_for(rec, archs)
    if cfg is None:
        return None, "no architecture data for this model"
    vision = cfg.pop("_vision_params", 0)
    try:
        arch = load_arch(cfg)
    except RentstackError as exc:
        return None, f"config incomplete: {exc}"
    if vision:
        from dataclasses import replace
        arch = replace(arch, extra_params=int(vision))
    total = card_gib(rec)
    if total is None:
        return None, "card memory not stated"
    tp, pp = int(rec.get("tp") or 1), int(rec.get("pp") or 1)
    q = rec.get("quantization")
    q = q.split()[0] if q else None
    if q in ("compressed-tensors", "fp8", "awq", "mxfp4"):
        q = None  # read from the checkpoint's quantization_config, as vLLM does
    dtype = rec.get("dtype") or "auto"
    hw = Hardware(gpu_mem_gib=total, gpus=tp * pp, free_mem_gib=rec.get("init_free_gib"), name=rec.get("gpu") or "")
    params = LaunchParams(
        tp=tp, pp=pp, gpu_memory_utilization=rec.get("gpu_memory_utilization"),
        max_model_len=rec.get("max_model_len"), max_num_seqs=rec.get("max_num_seqs"),
        max_num_batched_tokens=rec.get("max_num_batched_tokens"), dtype=dtype, quantization=q,
        kv_cache_dtype=rec.get("kv_cache_dtype") or "auto", block_size=rec.get("block_size"),
        enforce_eager=bool(rec.get("enforce_eager")), vllm_version=version_of(rec),
    )
    return (arch, hw, params), None


def logged_verdict(rec: dict) -> str | None:
    err = (rec.get("error") or "").lower()
    if not err:
        return None
    if "out of memory" in err:
        return "cuda_oom_risk"
    if "kv cache" in err and ("max_model_len" in err or "max seq len" in err or "needed" in err):
        return "max_model_len"
    if "no available memory" in err:
        return "no_kv_memory"
    if "free memory" in err:
        return "free_memory"
    return "other"


def pct(a: float, b: float) -> float:
    return abs(a - b) / abs(b) * 100 if b else float("nan")


def quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(DEFAULT_DATA), help="startup records (.jsonl)")
    ap.add_argument("--arch", default=None, help="model-arch.json (default: next to the data)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    data = Path(args.data)
    archs = json.loads(Path(args.arch or data.parent / "model-arch.json").read_text())
    records = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]

    rows, errs, base_errs, verdicts, skipped = [], [], [], [], []
    hdr = f"{'id':>4} {'model':<44} {'ver':<7} {'KV GiB pred/log':>17} {'tokens pred/log':>23} {'err%':>6} {'base%':>6}  verdict"
    print(hdr)
    print("-" * len(hdr))
    for rec in records:
        got, why = inputs_of(rec, archs)
        model = (rec.get("model") or "?")[:44]
        if got is None:
            skipped.append((rec["id"], why))
            print(f"{rec['id']:>4} {model:<44} {'':<7} skipped: {why}")
            continue
        arch, hw, params = got
        try:
            pl = plan(arch, hw, params, allow_long_max_model_len=True)
        except RentstackError as exc:
            skipped.append((rec["id"], f"planner refused the inputs: {exc}"))
            print(f"{rec['id']:>4} {model:<44} refused: {exc}")
            continue
        want = logged_verdict(rec)
        log_gib = rec.get("available_kv_gib")
        log_tok = rec.get("gpu_kv_cache_tokens")
        bpt = pl.kv_bytes_per_token
        # Baseline: vLLM's budget minus weights × 1.2 + 2 GiB, same weights and KV bytes/token.
        base_gib = pl.requested_gib - (pl.weights_gib * 1.2 + 2)
        base_tok = max(0, int(base_gib * GiB / bpt)) if bpt else 0
        pred_tok_plain = max(0, int(pl.available_kv_gib * GiB / bpt)) if bpt else 0
        err = base = None
        if log_tok:
            err, base = pct(pl.kv_cache_tokens, log_tok), pct(base_tok, log_tok)
            tok_txt = f"{pl.kv_cache_tokens:>11,}/{log_tok:<11,}"
        elif log_gib:
            # no token line logged: compare the tokens the logged GiB would hold
            implied = int(log_gib * GiB / bpt)
            err, base = pct(pred_tok_plain, implied), pct(base_tok, implied)
            tok_txt = f"{pred_tok_plain:>11,}/~{implied:<10,}"
        else:
            tok_txt = f"{pl.kv_cache_tokens:>11,}/{'-':<11}"
        if err is not None and want is None:
            errs.append(err)
            base_errs.append(base)
        if want is not None:
            verdicts.append((rec["id"], want, pl.verdict, pl.error))
        kv_txt = f"{pl.available_kv_gib:7.2f}/{log_gib if log_gib is not None else '-':<7}"
        vtxt = pl.verdict + (f" (logged {want})" if want else "")
        e_txt = f"{err:6.1f}" if err is not None and want is None else f"{'':>6}"
        b_txt = f"{base:6.1f}" if base is not None and want is None else f"{'':>6}"
        print(f"{rec['id']:>4} {model:<44} {pl.vllm_version:<7} {kv_txt:>17} {tok_txt:>23} {e_txt} {b_txt}  {vtxt}")
        rows.append(dict(id=rec["id"], pred_kv_gib=pl.available_kv_gib, log_kv_gib=log_gib,
                         pred_tokens=pl.kv_cache_tokens, log_tokens=log_tok, err_pct=err, base_pct=base,
                         verdict=pl.verdict, logged_verdict=want))

    med, p90 = statistics.median(errs) if errs else float("nan"), quantile(errs, 0.9)
    bmed, bp90 = statistics.median(base_errs) if base_errs else float("nan"), quantile(base_errs, 0.9)
    agree = sum(1 for _, w, p, _ in verdicts if w == p)
    false_fail = sum(1 for r in rows if r["logged_verdict"] is None and r["verdict"] != "ok")
    print()
    print(f"scored records: {len(errs)}   skipped: {len(skipped)}   logged failures: {len(verdicts)}")
    print(f"KV tokens |relative error|  planner: median {med:.2f}%  p90 {p90:.2f}%")
    print(f"                          baseline: median {bmed:.2f}%  p90 {bp90:.2f}%  (weights x 1.2 + 2 GiB)")
    print(f"baseline / planner median error: {bmed / med if med else float('inf'):.1f}x")
    print(f"failed startups predicted as failures for the same reason: {agree}/{len(verdicts)}")
    for rid, want, got, msg in verdicts:
        print(f"  #{rid}: logged {want}, predicted {got}" + (f" — {msg[:110]}" if msg else ""))
    print(f"successful startups predicted to fail: {false_fail}")
    for rid, why in skipped:
        print(f"  skipped #{rid}: {why}")
    if args.json:
        print(json.dumps(dict(median_pct=med, p90_pct=p90, baseline_median_pct=bmed, baseline_p90_pct=bp90,
                              verdict_agreement=[agree, len(verdicts)], false_failures=false_fail,
                              skipped=skipped, rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
