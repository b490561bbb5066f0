"""Weight memory per GPU rank and pipeline stage, from the architecture and the quantization.

What vLLM loads ("Model loading took X GiB"): linear layers sharded over TP ranks
(column/row parallel), K/V projections replicated when there are fewer KV heads than
ranks, the vocab-parallel embedding and LM head (vocab padded to a multiple of 64,
vocab_parallel_embedding.pad_vocab_size) sharded over TP and kept 16-bit in quantized
checkpoints, norms replicated, and RoPE's cos/sin cache (a 16-bit buffer of
max_position_embeddings × rotary dims, one per stage and rank: rotary_embedding.get_rope
shares one instance between layers). Pipeline stages split the layers as
vllm/distributed/utils.get_pp_indices does (the remainder goes to the stages before the last).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rentstack.errors import RentstackError
from rentstack.plan.arch import ModelArch

GiB = 1024**3
VOCAB_PADDING = 64

# --quantization values and what they mean for the bytes of one linear weight.
QUANT_METHODS = (
    "awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "bitsandbytes", "compressed-tensors",
    "compressed-tensors-fp8", "mxfp4", "fbgemm_fp8", "modelopt", "none",
)


def resolve_dtype(arch: ModelArch, dtype: str) -> int:
    """Bytes of one 16/32-bit weight for --dtype (auto: the checkpoint's, fp32 served as bf16... unless asked)."""
    d = (dtype or "auto").lower()
    if d in ("float32", "float", "fp32"):
        return 4
    if d in ("auto", "bfloat16", "bf16", "float16", "fp16", "half"):
        # vLLM's "auto" serves fp32 checkpoints in 16-bit (ModelConfig._get_and_verify_dtype).
        return 2
    raise RentstackError(f"dtype {dtype!r} is not one of auto, bfloat16, float16, float32")


def quant_method(arch: ModelArch, quantization: str | None) -> str | None:
    q = (quantization or arch.quant_method or None)
    if q is None or q == "none":
        return None
    q = q.lower()
    if q not in QUANT_METHODS:
        raise RentstackError(
            f"quantization {q!r} is not modelled; choose one of: {', '.join(QUANT_METHODS)}"
        )
    if q == "compressed-tensors" and arch.quant_method == "compressed-tensors-fp8":
        return "compressed-tensors-fp8"
    return q


def linear_bytes_per_param(arch: ModelArch, method: str | None, dtype_bytes: int) -> float:
    """Bytes one linear-layer weight takes on the GPU, scales and zero points included."""
    bits = arch.quant_bits
    group = arch.quant_group_size or 128
    if method is None:
        return float(dtype_bytes)
    if method in ("fp8", "compressed-tensors-fp8", "fbgemm_fp8", "modelopt"):
        return 1.0
    if method in ("awq", "awq_marlin"):
        b = (bits or 4) / 8
        return b + (2 + b) / group  # fp16 scale + packed zero point per group
    if method in ("gptq", "gptq_marlin"):
        b = (bits or 4) / 8
        zeros = 0.0 if (method == "gptq_marlin" and arch.quant_sym) else b / group
        return b + 2 / group + zeros
    if method == "compressed-tensors":
        if (bits or 8) >= 8:
            return 1.0
        b = (bits or 4) / 8
        return b + 2 / group
    if method == "bitsandbytes":
        if (bits or 4) == 8:
            return 1.0
        # NF4 with nested statistics: 4 bits + one uint8 absmax per 64 + fp32 per 256 blocks
        return 0.5 + 1 / 64 + 4 / (64 * 256)
    if method == "mxfp4":
        # Only the MoE experts are MXFP4; dense linears stay 16-bit.
        return float(dtype_bytes)
    raise AssertionError(method)


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def pp_layer_split(num_layers: int, pp: int) -> list[int]:
    """Layers per pipeline stage (get_pp_indices: extras go to the stages before the last)."""
    base = [num_layers // pp] * pp
    for i in range(num_layers % pp):
        base[-(i + 2) if pp > 1 else 0] += 1
    return base


@dataclass(frozen=True)
class StageWeights:
    stage: int
    layers: int
    decoder_bytes: float
    """Decoder layers on one rank of this stage (what cpu_offload_gb can move to the host)."""
    embed_bytes: float
    """Embedding and/or LM head and the vision tower on one rank of this stage."""

    @property
    def total_bytes(self) -> float:
        return self.decoder_bytes + self.embed_bytes


def _layer_params(arch: ModelArch, tp: int, moe_layer: bool) -> tuple[float, float, float]:
    """(linear params, expert params, 16-bit params) of one decoder layer on one TP rank."""
    h = arch.hidden_size
    kv_rank = max(1, arch.num_kv_heads // tp) if arch.num_kv_heads >= tp else 1
    if arch.family == "mla":
        nope, rope, v = arch.qk_nope_head_dim, arch.qk_rope_head_dim, arch.v_head_dim
        heads = arch.num_heads
        if arch.q_lora_rank:
            q = h * arch.q_lora_rank + arch.q_lora_rank * heads * (nope + rope) / tp
        else:
            q = h * heads * (nope + rope) / tp
        kv = h * (arch.kv_lora_rank + rope) + arch.kv_lora_rank * heads * (nope + v) / tp
        o = heads * v * h / tp
        attn = q + kv + o
    else:
        hd = arch.head_dim
        attn = h * arch.num_heads * hd / tp + 2 * h * kv_rank * hd + arch.num_heads * hd * h / tp
    norms = 2 * h
    m = arch.mlp_matrices
    if moe_layer and arch.num_experts:
        experts = arch.num_experts * m * h * arch.moe_intermediate_size / tp
        shared = m * h * arch.shared_expert_intermediate_size / tp
        router = h * arch.num_experts
        return attn + shared, experts, norms + router
    return attn + m * h * arch.intermediate_size / tp, 0.0, norms


def rope_cache_bytes(arch: ModelArch, dtype_bytes: int) -> float:
    """RoPE's precomputed cos/sin table, built at model construction so "Model loading took"
    counts it: negligible at 32K-128K positions, but Llama 4 Scout's 10M-position config makes
    it 2.5 GiB on every rank."""
    rotary = arch.head_dim if arch.rotary_dim < 0 else arch.rotary_dim
    return float(arch.max_position_embeddings) * rotary * dtype_bytes


def stage_weights(arch: ModelArch, tp: int, pp: int, quantization: str | None, dtype: str,
                  mxfp4_expert_pad: int = 128) -> list[StageWeights]:
    """Weight bytes on one TP rank of each pipeline stage. mxfp4_expert_pad: the release's
    padding of the per-rank MXFP4 expert width (Rules.mxfp4_expert_pad)."""
    dt = resolve_dtype(arch, dtype)
    method = quant_method(arch, quantization)
    lin_b = linear_bytes_per_param(arch, method, dt)
    if method == "mxfp4":
        # MXFP4 experts: 4-bit + one e8m0 scale per 32; the MoE kernels pad hidden to 256 and
        # the per-rank expert width to a release-dependent multiple (Rules.mxfp4_expert_pad).
        h, inter = arch.hidden_size, arch.moe_intermediate_size
        pad = (_round_up(h, 256) * _round_up(math.ceil(inter / tp), mxfp4_expert_pad)) / (h * inter / tp)
        exp_b = (0.5 + 1 / 32) * pad
    else:
        exp_b = lin_b
    vocab = _round_up(arch.vocab_size, VOCAB_PADDING)
    embed = vocab * arch.hidden_size / tp * dt
    split = pp_layer_split(arch.num_layers, pp)
    out: list[StageWeights] = []
    first = 0
    for s, n in enumerate(split):
        dec = 0.0
        for i in range(first, first + n):
            moe_layer = arch.num_experts > 0 and i >= arch.num_dense_layers
            lin, exp, b16 = _layer_params(arch, tp, moe_layer)
            dec += lin * lin_b + exp * exp_b + b16 * dt
        first += n
        emb = rope_cache_bytes(arch, dt)
        if s == 0:
            emb += embed + arch.extra_params * dt / tp
        if s == pp - 1:
            emb += arch.hidden_size * dt  # final norm
            if not arch.tie_word_embeddings or pp > 1:
                emb += embed
        if arch.family == "fallback":
            # stated conservative margin for architectures the planner does not model
            dec, emb = dec * 1.15, emb * 1.15
        out.append(StageWeights(stage=s, layers=n, decoder_bytes=dec, embed_bytes=emb))
    return out


def total_weight_bytes(arch: ModelArch, quantization: str | None = None, dtype: str = "auto") -> float:
    """Whole-model weight bytes (TP 1, PP 1): what has to be downloaded and held somewhere."""
    return stage_weights(arch, 1, 1, quantization, dtype)[0].total_bytes
