#!/usr/bin/env python3
"""Benchmark the memory planner against real vLLM startup logs.

Feeds only the inputs of each record (model config, card, vLLM version, flags, and the
free memory vLLM measured at start when it was logged) to rentstack.plan.plan(), then
compares its available-KV GiB, KV tokens and verdict with what vLLM logged. Also scores
the naive "weights × 1.2 + 2 GiB" estimate on the same records.

By default it reads the shared dev set and the consumer-card set in tests/data, and
summarises the score split per segment (datacenter, consumer single card, consumer
multi-GPU over PCIe, quantized, V0 era, vGPU) with the over-promise rate: the share of
scored starts where the max_model_len --fit would set (from the band's low end when the
plan carries a band, else the point estimate; rounded as fit rounds, capped at the model's
context) exceeds the KV capacity vLLM logged.

    .venv/bin/python scripts/bench_planner.py [PATH.jsonl ...] [--arch PATH.json ...]
        [--split score|fit|all] [--json]
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
from rentstack.plan.fit import _round_len  # noqa: E402
from rentstack.plan.rules import parse_version  # noqa: E402
from rentstack.versions import VLLM_VERSION  # noqa: E402


def _shared_data() -> Path:
    """The shared dev set: ../shared from the main checkout, ../../shared from a worktree."""
    for base in (ROOT.parent / "shared", ROOT.parent.parent / "shared"):
        if (base / "data").is_dir():
            return base / "data"
    return ROOT.parent / "shared" / "data"


SHARED_DATA = _shared_data()
DEFAULT_DATA = [SHARED_DATA / "vllm-startup-logs.dev.jsonl", ROOT / "tests" / "data" / "consumer-startup-logs.jsonl"]
DEFAULT_ARCH = [SHARED_DATA / "model-arch.json", ROOT / "tests" / "data" / "consumer-model-arch.json"]
SPLIT_FILE = ROOT / "tests" / "data" / "startup-split.json"
CORRECTIONS_FILE = ROOT / "tests" / "data" / "shared-corrections.json"
"""Shared-set fields their own source contradicts, each with the reason (applied on load)."""

# config.json fields that model-arch.json does not carry (num_attention_heads, tied
# embeddings, MoE and attention layout), copied from each model's Hugging Face config.json.
# Keyed by model-arch.json key. "vision_params" is the vision tower's parameter count
# (approximate) for multimodal checkpoints; the text-decoder numbers are exact.
HF_FACTS: dict[str, dict] = {
    "meta-llama/Llama-3.1-8B-Instruct": {"architectures": ["LlamaForCausalLM"], "num_attention_heads": 32},
    "Qwen/Qwen2-7B-Instruct": {"architectures": ["Qwen2ForCausalLM"], "num_attention_heads": 28},
    "Qwen/Qwen2.5-7B-Instruct": {"architectures": ["Qwen2ForCausalLM"], "num_attention_heads": 28},
    "Qwen/Qwen2.5-1.5B-Instruct": {"architectures": ["Qwen2ForCausalLM"], "num_attention_heads": 12,
                                   "tie_word_embeddings": True},
    "Qwen/Qwen2.5-0.5B-Instruct": {"architectures": ["Qwen2ForCausalLM"], "num_attention_heads": 14,
                                   "tie_word_embeddings": True},
    "meta-llama/Llama-3.2-1B": {"architectures": ["LlamaForCausalLM"], "num_attention_heads": 32,
                                "tie_word_embeddings": True},
    "meta-llama/Llama-3.2-3B-Instruct": {"architectures": ["LlamaForCausalLM"], "num_attention_heads": 24,
                                         "tie_word_embeddings": True},
    "Qwen/Qwen2.5-72B-Instruct": {"architectures": ["Qwen2ForCausalLM"], "num_attention_heads": 64},
    "Qwen/Qwen3-0.6B": {"architectures": ["Qwen3ForCausalLM"], "num_attention_heads": 16, "tie_word_embeddings": True},
    "Qwen/Qwen3-8B": {"architectures": ["Qwen3ForCausalLM"], "num_attention_heads": 32},
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": {"architectures": ["Qwen2ForCausalLM"], "num_attention_heads": 12,
                                                  "tie_word_embeddings": False},
    "Qwen/Qwen3-14B": {"architectures": ["Qwen3ForCausalLM"], "num_attention_heads": 40},
    "Qwen/Qwen3-14B-AWQ": {"architectures": ["Qwen3ForCausalLM"], "num_attention_heads": 40,
                           "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128,
                                                   "zero_point": True}},
    "Qwen/Qwen3-32B": {"architectures": ["Qwen3ForCausalLM"], "num_attention_heads": 64},
    "Qwen/Qwen3-32B-AWQ": {"architectures": ["Qwen3ForCausalLM"], "num_attention_heads": 64,
                           "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128,
                                                   "zero_point": True}},
    "Qwen/Qwen3-4B": {"architectures": ["Qwen3ForCausalLM"], "num_attention_heads": 32, "tie_word_embeddings": True},
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
    # Qwen's official GPTQ 4-bit g128 checkpoint (consumer records c25-c27; the log reports auto_gptq with
    # Marlin kernels and a 15.77 GiB checkpoint)
    "Qwen/Qwen3-30B-A3B-GPTQ-Int4": {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True},
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
    (r"RTX 3090", 23.58),
    # RTX 4090: (8.69 KV + 13.95 weights + 0.25 non-torch + 0.19 activation) / 0.98 in the
    # logged breakdown of consumer record c03 (vllm#13061)
    (r"RTX 4090", 23.55),
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
    m = re.match(r"\s*(\d+\.\d+(?:\.\d+)*)", str(rec.get("vllm_version") or ""))
    if m:
        return m.group(1)
    if (rec.get("engine") or "").startswith("V0"):
        return "0.7.3"  # the V0 engine was the default before 0.8
    return VLLM_VERSION


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
        cpu_offload_gb=float(rec.get("cpu_offload_gb") or 0.0),
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


# Card families. Datacenter cards have NVLink/NVSwitch or are sold for servers; the rest are
# the consumer and workstation cards rentstack is mostly rented on.
_DATACENTER = re.compile(r"H100|H200|H800|H20\b|A100|A800|L40S|\bL40\b|B200|B100|GB200|GB300|B300")
_UNIFIED = re.compile(r"GB10|DGX Spark")
SEGMENTS = ("datacenter", "consumer single", "consumer multi-GPU PCIe", "quantized", "V0 era", "vGPU")


def segments_of(rec: dict) -> list[str]:
    """The benchmark segments a record belongs to (a record may be in several)."""
    gpu = rec.get("gpu") or ""
    world = int(rec.get("tp") or 1) * int(rec.get("pp") or 1)
    out = []
    if _DATACENTER.search(gpu) or _UNIFIED.search(gpu) or "not stated" in gpu:
        out.append("datacenter")
    elif world > 1:
        out.append("consumer multi-GPU PCIe")
    else:
        out.append("consumer single")
    model = rec.get("model") or ""
    if rec.get("quantization") or model in CHECKPOINT_QUANT or re.search(r"AWQ|GPTQ|bnb|FP8|fp8|w4a16|w8a8", model):
        out.append("quantized")
    if (rec.get("engine") or "").startswith("V0") or parse_version(version_of(rec)) < (0, 8, 0):
        out.append("V0 era")
    if re.search(r"vGPU", gpu, re.I):
        out.append("vGPU")
    return out


def load_split(path: Path = SPLIT_FILE) -> dict[str, dict[str, str]]:
    """{data file name: {record id: "fit"|"score"}} for files whose records carry no split field."""
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {name: {str(i): part for part, ids in parts.items() for i in ids}
            for name, parts in raw.items() if isinstance(parts, dict)}


def load_records(paths: list[Path]) -> list[dict]:
    """Records of every file, each tagged with its file and split."""
    split = load_split()
    corrections = {k: v["set"] for k, v in json.loads(CORRECTIONS_FILE.read_text())["corrections"].items()}
    out: list[dict] = []
    for path in paths:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            if path.name == "vllm-startup-logs.dev.jsonl":
                rec.update(corrections.get(str(rec["id"]), {}))
            rec["_file"] = path.name
            rec["_split"] = rec.get("split") or split.get(path.name, {}).get(str(rec["id"]), "score")
            out.append(rec)
    # A consumer record that repeats a shared one (with its version read from the log) replaces it.
    replaced = {r["same_as_shared_id"] for r in out if r.get("same_as_shared_id") is not None}
    return [r for r in out if not (r["_file"] == "vllm-startup-logs.dev.jsonl" and r["id"] in replaced)]


def load_archs(paths: list[Path]) -> dict:
    archs: dict = {}
    for path in paths:
        if path.exists():
            archs.update(json.loads(path.read_text()))
    return archs


def capacity_logged(rec: dict) -> int | None:
    """KV tokens vLLM logged for this start: also for max_model_len refusals, which print it."""
    tok = rec.get("gpu_kv_cache_tokens")
    if not tok:
        return None
    want = logged_verdict(rec)
    return int(tok) if want in (None, "max_model_len") else None


def evaluate(rec: dict, archs: dict) -> dict:
    """One record planned and compared; a row with the error, the verdicts and the promise."""
    row = dict(id=rec["id"], file=rec["_file"], split=rec["_split"], segments=segments_of(rec),
               model=(rec.get("model") or "?")[:44])
    got, why = inputs_of(rec, archs)
    if got is None:
        return {**row, "skipped": why}
    arch, hw, params = got
    try:
        pl = plan(arch, hw, params, allow_long_max_model_len=True)
    except RentstackError as exc:
        return {**row, "skipped": f"planner refused the inputs: {exc}"}
    want = logged_verdict(rec)
    log_gib = rec.get("available_kv_gib")
    log_tok = capacity_logged(rec)
    bpt = pl.kv_bytes_per_token
    base_gib = pl.requested_gib - (pl.weights_gib * 1.2 + 2)
    base_tok = max(0, int(base_gib * GiB / bpt)) if bpt else 0
    pred_tok_plain = max(0, int(pl.available_kv_gib * GiB / bpt)) if bpt else 0
    err = base = signed = None
    ref = None
    if log_tok:
        ref, pred = log_tok, pl.kv_cache_tokens
    elif log_gib and want is None:
        ref, pred = int(log_gib * GiB / bpt), pred_tok_plain  # no token line: the tokens the GiB hold
    if ref:
        err, base = pct(pred, ref), pct(base_tok, ref)
        signed = (pred - ref) / ref * 100
    # What --fit would set: max_model_len from the band's low end (the point estimate before
    # the planner had a band), rounded down as fit does, capped at the model's context.
    low = getattr(pl, "kv_cache_tokens_low", None)
    basis = low if low is not None else pl.kv_cache_tokens
    promised = min(arch.max_position_embeddings, _round_len(basis, pl.resolved.block_size)) if ref else None
    return {**row, "vllm_version": pl.vllm_version, "pred_kv_gib": pl.available_kv_gib, "log_kv_gib": log_gib,
            "pred_tokens": pl.kv_cache_tokens, "log_tokens": ref, "low_tokens": low,
            "high_tokens": getattr(pl, "kv_cache_tokens_high", None), "band_source": getattr(pl, "band_source", None),
            "band_segment": getattr(pl, "band_segment", ()),
            "promised_len": promised,
            "err_pct": err, "signed_pct": signed, "base_pct": base, "verdict": pl.verdict, "logged_verdict": want,
            "over_promise": (promised > ref) if (ref and promised is not None) else None}


def _stats(xs: list[float]) -> str:
    if not xs:
        return f"{'-':>7} {'-':>7}"
    return f"{statistics.median(xs):6.2f}% {quantile(xs, 0.9):6.2f}%"


def summary(rows: list[dict], split: str) -> dict:
    """Per segment: n, median and p90 |error|, over-promise count, on the chosen split."""
    chosen = [r for r in rows if "skipped" not in r and (split == "all" or r["split"] == split)]
    out = {}
    for seg in ("all", *SEGMENTS):
        rs = [r for r in chosen if seg == "all" or seg in r["segments"]]
        errs = [r["err_pct"] for r in rs if r["err_pct"] is not None]
        over = [r for r in rs if r["over_promise"] is not None]
        out[seg] = dict(n=len(errs), median_pct=statistics.median(errs) if errs else None,
                        p90_pct=quantile(errs, 0.9) if errs else None,
                        over_promise=sum(1 for r in over if r["over_promise"]), promises=len(over))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="*", default=[str(p) for p in DEFAULT_DATA], help="startup records (.jsonl)")
    ap.add_argument("--arch", action="append", default=None, help="model-arch.json (repeatable; default: shared + tests/data)")
    ap.add_argument("--split", choices=("score", "fit", "all"), default="score", help="records the summary covers")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    paths = [Path(d) for d in args.data]
    archs = load_archs([Path(a) for a in args.arch] if args.arch else
                       [*DEFAULT_ARCH, *(p.parent / "model-arch.json" for p in paths)])
    records = load_records(paths)

    rows = [evaluate(rec, archs) for rec in records]
    hdr = (f"{'id':>4} {'split':<5} {'model':<44} {'ver':<7} {'KV GiB pred/log':>17} {'tokens pred/log':>23} "
           f"{'err%':>7} {'low':>9} {'fit len':>9}  verdict")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        if "skipped" in r:
            print(f"{r['id']:>4} {r['split']:<5} {r['model']:<44} skipped: {r['skipped']}")
            continue
        log_gib = r["log_kv_gib"]
        kv_txt = f"{r['pred_kv_gib']:7.2f}/{log_gib if log_gib is not None else '-':<7}"
        tok_txt = f"{r['pred_tokens']:>11,}/{r['log_tokens'] if r['log_tokens'] else '-':<11}"
        e_txt = f"{r['signed_pct']:+7.1f}" if r["signed_pct"] is not None else f"{'':>7}"
        low_txt = f"{r['low_tokens']:>9,}" if r["low_tokens"] is not None else f"{'':>9}"
        low_txt += f" {r['promised_len']:>9,}" if r["promised_len"] is not None else f" {'':>9}"
        flag = " OVER-PROMISE" if r["over_promise"] else ""
        vtxt = r["verdict"] + (f" (logged {r['logged_verdict']})" if r["logged_verdict"] else "") + flag
        print(f"{r['id']:>4} {r['split']:<5} {r['model']:<44} {r['vllm_version']:<7} {kv_txt:>17} {tok_txt:>23} "
              f"{e_txt} {low_txt}  {vtxt}")

    scored = [r for r in rows if "skipped" not in r]
    verdicts = [r for r in scored if r["logged_verdict"] is not None]
    agree = sum(1 for r in verdicts if r["logged_verdict"] == r["verdict"])
    false_fail = sum(1 for r in scored if r["logged_verdict"] is None and r["verdict"] != "ok")
    summ = summary(rows, args.split)
    print()
    print(f"KV tokens |relative error| on the {args.split} split, by segment (a record can be in several):")
    print(f"  {'segment':<26} {'n':>3} {'median':>7} {'p90':>7}  over-promise")
    for seg, s in summ.items():
        med = "-" if s["median_pct"] is None else f"{s['median_pct']:6.2f}%"
        p90 = "-" if s["p90_pct"] is None else f"{s['p90_pct']:6.2f}%"
        rate = f"{s['over_promise']}/{s['promises']}" + (
            f" ({100 * s['over_promise'] / s['promises']:.0f}%)" if s["promises"] else "")
        print(f"  {seg:<26} {s['n']:>3} {med:>7} {p90:>7}  {rate}")
    errs = [r["err_pct"] for r in scored if r["err_pct"] is not None and r["logged_verdict"] is None]
    base_errs = [r["base_pct"] for r in scored if r["base_pct"] is not None and r["logged_verdict"] is None]
    print(f"all splits, successful starts: planner median {_stats(errs)}; baseline (weights x 1.2 + 2 GiB) "
          f"median {_stats(base_errs)}")
    print(f"failed startups predicted as failures for the same reason: {agree}/{len(verdicts)}")
    for r in verdicts:
        print(f"  #{r['id']}: logged {r['logged_verdict']}, predicted {r['verdict']}")
    print(f"successful startups predicted to fail: {false_fail}")
    for r in rows:
        if "skipped" in r:
            print(f"  skipped #{r['id']}: {r['skipped']}")
    if args.json:
        print(json.dumps(dict(split=args.split, segments=summ, verdict_agreement=[agree, len(verdicts)],
                              false_failures=false_fail, rows=rows), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
