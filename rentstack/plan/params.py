"""The planner's inputs besides the model: the card(s) and the vLLM launch parameters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from rentstack.versions import VLLM_VERSION

# Cards whose multi-GPU runs go over NVLink/NVSwitch: vLLM then sets up its custom
# all-reduce and NCCL symmetric buffers, which show up as ~2 GiB of non-torch memory
# per rank in 0.19 logs (H100 TP2/TP4), against ~0.2 GiB on PCIe cards (L40S TP4).
_NVLINK_CARDS = ("H100", "H200", "H20", "A100", "A800", "H800", "B200", "B100", "GB200", "GB300", "B300")


@dataclass(frozen=True)
class Hardware:
    """The GPUs one server runs on."""

    gpu_mem_gib: float
    """Total memory of one card as CUDA reports it, GiB (an "80 GB" H100 is 79.19)."""
    gpus: int = 1
    """Cards available to this server."""
    free_mem_gib: float | None = None
    """Free memory per card a vLLM process sees at start, after its own CUDA context (vLLM's
    "initial free memory"; for vGPU slices and shared cards). None = total minus ~0.5 GiB of
    context (~1.6 GiB with TP/PP, NCCL included)."""
    name: str = ""
    """Card name, e.g. "RTX 4090"; used for vLLM's per-card defaults and the NVLink guess."""

    @property
    def nvlink(self) -> bool:
        upper = self.name.upper()
        return any(tag in upper for tag in _NVLINK_CARDS)

    @property
    def is_a100(self) -> bool:
        return "A100" in self.name.upper()


@dataclass(frozen=True)
class LaunchParams:
    """vLLM launch parameters that change memory. None means vLLM's default for that version and card."""

    tp: int = 1
    """--tensor-parallel-size."""
    pp: int = 1
    """--pipeline-parallel-size."""
    gpu_memory_utilization: float | None = None
    """Fraction of each card vLLM may use, in (0, 1]; default 0.9."""
    max_model_len: int | None = None
    """Longest request (prompt + output) in tokens; default the model's limit."""
    max_num_seqs: int | None = None
    """Concurrent sequences; default 256, or 1024 on ≥70 GiB cards in recent versions."""
    max_num_batched_tokens: int | None = None
    """Tokens per scheduler step (profile-run size); default 2048, or 8192 on ≥70 GiB cards."""
    dtype: str = "auto"
    """Weight/activation dtype: auto, bfloat16, float16, float32."""
    quantization: str | None = None
    """--quantization; None = what the checkpoint's quantization_config says."""
    kv_cache_dtype: str = "auto"
    """auto (= model dtype) or fp8 / fp8_e4m3 / fp8_e5m2."""
    block_size: int | None = None
    """KV block size in tokens; default 16 on CUDA."""
    enforce_eager: bool = False
    """Disable CUDA graphs."""
    cpu_offload_gb: float = 0.0
    """GiB of weights per GPU kept in host memory (vLLM multiplies by 1024**3)."""
    vllm_version: str = VLLM_VERSION
    """vLLM release whose accounting to reproduce."""

    def with_(self, **changes: Any) -> LaunchParams:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def vllm_flags(self) -> dict[str, Any]:
        """The resolved values under vLLM's long flag names (kebab-case)."""
        out: dict[str, Any] = {
            "tensor-parallel-size": self.tp,
            "pipeline-parallel-size": self.pp,
            "gpu-memory-utilization": self.gpu_memory_utilization,
            "max-model-len": self.max_model_len,
            "max-num-seqs": self.max_num_seqs,
            "max-num-batched-tokens": self.max_num_batched_tokens,
            "dtype": self.dtype,
            "kv-cache-dtype": self.kv_cache_dtype,
            "block-size": self.block_size,
            "enforce-eager": self.enforce_eager,
            "cpu-offload-gb": self.cpu_offload_gb,
        }
        if self.quantization:
            out["quantization"] = self.quantization
        return out
