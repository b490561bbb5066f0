"""GPU memory planner: vLLM's own startup accounting, computed before anything is rented.

config.json (+ card + flags) → ModelArch → plan() → Plan (weights, activation, non-torch,
CUDA graphs, KV cache, tokens, concurrency, and vLLM's verdict); fit() searches the flags.
Both take `measured=Measured(...)`: figures from a real start that replace the model's where
they carry over (the calibration store is read by the callers, not here).
Pure: the only I/O is load_arch reading one config.json.
"""

from __future__ import annotations

from rentstack.plan.arch import KNOWN_ARCHITECTURES, ModelArch, load_arch
from rentstack.plan.fit import Fit, Goal, fit
from rentstack.plan.measured import Measured
from rentstack.plan.params import Hardware, LaunchParams
from rentstack.plan.planner import Plan, plan, resolve
from rentstack.versions import VLLM_VERSION


def kv_bytes_per_token(arch: ModelArch, params: LaunchParams | None = None) -> int:
    """KV-cache bytes one token takes on one rank (the largest pipeline stage), all layers.

    Also used to size the CPU tier's KV cache (vLLM's --kv-cache-memory / VLLM_CPU_KVCACHE_SPACE).
    """
    from rentstack.plan import kv, weights

    p = params or LaunchParams()
    dt = weights.resolve_dtype(arch, p.dtype)
    split = weights.pp_layer_split(arch.num_layers, p.pp)
    layouts = kv.stage_layouts(arch, p.tp, split, p.kv_cache_dtype, p.block_size or 16, dt)
    return max(lay.bytes_per_token for lay in layouts)


__all__ = [
    "VLLM_VERSION", "KNOWN_ARCHITECTURES", "ModelArch", "load_arch", "Hardware", "LaunchParams",
    "Plan", "plan", "resolve", "Fit", "Goal", "fit", "kv_bytes_per_token", "Measured",
]
