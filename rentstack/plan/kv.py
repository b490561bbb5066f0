"""KV-cache geometry: bytes per token, layer groups, blocks, tokens and concurrency.

Mirrors vllm/v1/kv_cache_interface.py (AttentionSpec.page_size_bytes,
SlidingWindowSpec/ChunkedLocalAttentionSpec.max_memory_usage_bytes, MLAAttentionSpec)
and vllm/v1/core/kv_cache_utils.py (get_num_blocks, the hybrid grouping with
uniform page size, get_max_concurrency_for_kv_cache_config, estimate_max_model_len).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rentstack.errors import RentstackError
from rentstack.plan.arch import ModelArch

FP8_KV = ("fp8", "fp8_e4m3", "fp8_e5m2", "fp8_ds_mla", "fp8_inc")
FP8_DS_MLA_BYTES = 656  # per token per layer (DeepSeek sparse MLA fp8 layout)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def kv_elem_bytes(kv_cache_dtype: str, model_dtype_bytes: int) -> int:
    d = (kv_cache_dtype or "auto").lower()
    if d == "auto":
        return model_dtype_bytes
    if d in FP8_KV:
        return 1
    if d in ("bfloat16", "float16", "half"):
        return 2
    raise RentstackError(f"kv_cache_dtype {kv_cache_dtype!r} is not one of auto, fp8, fp8_e4m3, fp8_e5m2")


def per_layer_token_bytes(arch: ModelArch, tp: int, elem: int, kv_cache_dtype: str = "auto") -> int:
    """KV bytes one layer stores per token on one TP rank."""
    if arch.family == "mla":
        if kv_cache_dtype == "fp8_ds_mla":
            return FP8_DS_MLA_BYTES
        # one latent (kv_lora_rank + rope dims) per token, replicated on every rank
        return (arch.kv_lora_rank + arch.qk_rope_head_dim) * elem
    heads = max(1, arch.num_kv_heads // tp)  # fewer KV heads than ranks: one replicated head each
    return 2 * heads * arch.head_dim * elem


@dataclass(frozen=True)
class KVGroup:
    kind: str
    """"full", "sliding" or "chunked"."""
    layers: int


@dataclass(frozen=True)
class KVLayout:
    """The KV cache of one pipeline stage on one rank."""

    layer_bytes_per_token: int
    layer_types: tuple[str, ...]
    block_size: int
    window: int | None

    @property
    def layers(self) -> int:
        return len(self.layer_types)

    @property
    def bytes_per_token(self) -> int:
        return self.layer_bytes_per_token * self.layers

    @property
    def page_bytes(self) -> int:
        return self.layer_bytes_per_token * self.block_size

    def groups(self) -> tuple[int, list[KVGroup]]:
        """(group_size, groups): hybrid models share one block pool across groups of
        `group_size` layers, group_size being the smallest layer count of any attention type."""
        counts = Counter(self.layer_types)
        if len(counts) <= 1:
            return self.layers, [KVGroup(self.layer_types[0] if self.layer_types else "full", self.layers)]
        size = min(counts.values())
        groups = []
        for kind, n in counts.items():
            groups += [KVGroup(kind, size)] * cdiv(n, size)
        return size, groups

    def num_blocks(self, avail_bytes: float) -> int:
        size, _ = self.groups()
        if avail_bytes <= 0:
            return 0
        return int(avail_bytes // (self.page_bytes * size))

    def blocks_per_request(self, max_model_len: int, max_num_batched_tokens: int) -> int:
        """Blocks of the shared pool one request of max_model_len tokens can occupy."""
        _, groups = self.groups()
        total = 0
        for g in groups:
            if g.kind == "full" or not self.window:
                total += cdiv(max_model_len, self.block_size)
            else:
                span = min(self.window - 1 + max_num_batched_tokens, max_model_len)
                total += cdiv(span, self.block_size) + 1
        return total

    def request_bytes(self, max_model_len: int, max_num_batched_tokens: int) -> int:
        size, _ = self.groups()
        return self.blocks_per_request(max_model_len, max_num_batched_tokens) * self.page_bytes * size

    def tokens(self, num_blocks: int, max_model_len: int, max_num_batched_tokens: int,
               from_concurrency: bool) -> int:
        """The "GPU KV cache size: N tokens" figure."""
        _, groups = self.groups()
        if from_concurrency:
            conc = self.concurrency(num_blocks, max_model_len, max_num_batched_tokens)
            return int(conc * max_model_len)
        return num_blocks // len(groups) * self.block_size

    def concurrency(self, num_blocks: int, max_model_len: int, max_num_batched_tokens: int) -> float:
        return num_blocks / self.blocks_per_request(max_model_len, max_num_batched_tokens)

    def max_model_len_for(self, avail_bytes: float, limit: int, max_num_batched_tokens: int) -> int:
        """Largest max_model_len whose one request fits avail_bytes (estimate_max_model_len)."""
        lo, hi = 0, max(limit, 1)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.request_bytes(mid, max_num_batched_tokens) <= avail_bytes:
                lo = mid
            else:
                hi = mid - 1
        return lo


def stage_layouts(arch: ModelArch, tp: int, layer_split: list[int], kv_cache_dtype: str,
                  block_size: int, model_dtype_bytes: int) -> list[KVLayout]:
    elem = kv_elem_bytes(kv_cache_dtype, model_dtype_bytes)
    per_layer = per_layer_token_bytes(arch, tp, elem, kv_cache_dtype)
    types = arch.layer_types or ("full",) * arch.num_layers
    out, first = [], 0
    for n in layer_split:
        out.append(KVLayout(per_layer, tuple(types[first:first + n]), block_size, arch.sliding_window))
        first += n
    return out
