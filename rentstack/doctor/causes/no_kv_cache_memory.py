"""no_kv_cache_memory: the weights, activations and overhead left nothing for the KV cache."""

from __future__ import annotations

import math
import re

from rentstack.doctor.causes.base import Cause, Context, Found, gib
from rentstack.doctor.diagnosis import Fix
from rentstack.doctor.fixes import SAFETY_GIB, best_first, propose

NO_KV_MEMORY = re.compile(r"No available memory for the cache blocks")
"""v1/core/kv_cache_utils.py check_enough_kv_cache_memory (all versions; V0 worker.py too)."""


def match(line: str) -> Found | None:
    if "No available memory" in line and NO_KV_MEMORY.search(line):
        return Found("kv_cache_allocation")
    return None


def explain(ctx: Context) -> str:
    s = ctx.situation
    avail = s.figures.get("available_kv_gib")
    return ("Nothing is left for the KV cache: the weights, the profile run's activations and runtime "
            f"overhead already use the whole budget (gpu-memory-utilization {s.util}"
            + (f" of {gib(s.total_gib)}" if s.total_gib else "") + ")"
            + (f"; vLLM computed {gib(avail)} for the KV cache" if avail is not None else "")
            + ". Raising the utilization gives vLLM more of the card; lowering it makes this worse.")


def fixes(ctx: Context) -> list[Fix]:
    s = ctx.situation
    f = s.figures
    avail = f.get("available_kv_gib")
    deficit = max(0.0, -avail) if isinstance(avail, (int, float)) else None
    gpt = s.gib_per_token()
    # Aim for at least one full-length request when the per-token cost is known, else 1 GiB.
    target = (gpt * s.max_model_len) if (gpt and s.max_model_len) else 1.0
    need = (deficit or 0.0) + target + SAFETY_GIB
    out: list[Fix] = []
    new_util = s.raised_util(need)
    if new_util is not None:
        out.append(propose(
            s, {"gpu-memory-utilization": new_util},
            (f"the KV budget came out at {avail} GiB; " if avail is not None else "")
            + f"{new_util} of the {s.total_gib} GiB card leaves about {target:.2f} GiB for the KV cache",
            f"memory: only {(1 - new_util) * s.total_gib:.2f} GiB of the card stays outside vLLM", "memory",
            s.log_prediction((avail or 0) + (new_util - s.util) * s.total_gib, gpt),
        ))
    graphs = f.get("cuda_graph_estimate_gib")
    if not s.eager and s.graphs_budgeted and graphs and graphs >= need - SAFETY_GIB:
        out.append(propose(
            s, {"enforce-eager": True},
            f"this vLLM ({s.version}) reserves the {graphs} GiB CUDA-graph estimate before the KV cache; "
            "eager mode frees it",
            "speed: no CUDA graphs, slower decoding at small batch sizes", "speed",
            s.log_prediction((avail or 0) + graphs, gpt),
        ))
    act = f.get("activation_gib")
    if act and act / 2 >= need - SAFETY_GIB:
        new = s.halved_batched_tokens()
        out.append(propose(
            s, {"max-num-batched-tokens": new},
            f"the profile run's activation peak ({act} GiB) grows with max-num-batched-tokens; {new} roughly halves it",
            "speed: long prompts are prefilled in smaller chunks (slower time to first token)", "speed",
            s.log_prediction((avail or 0) + act / 2, gpt),
        ))
    offload = math.ceil(need)
    out.append(propose(
        s, {"cpu-offload-gb": offload},
        f"moving {offload} GiB of weights to host memory frees that much of the card for the KV cache"
        + ("" if deficit is not None else " (the log does not say how short it was; this is a floor)"),
        f"speed: those weights cross PCIe on every step (much slower decoding); needs {offload} GiB of host RAM",
        "speed", s.log_prediction((avail or 0) + offload, gpt),
    ))
    return best_first(out)


CAUSE = Cause(
    name="no_kv_cache_memory",
    summary="the weights, activations and overhead used the whole memory budget; none is left for the KV cache",
    triggers=("No available memory",),
    match=match,
    explain=explain,
    fixes=fixes,
    memory=True,
    examples=(
        "(EngineCore_0 pid=140) ERROR 09-22 17:06:24 [core.py:718] ValueError: No available memory for the "
        "cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.",
    ),
)
