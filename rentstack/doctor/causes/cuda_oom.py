"""cuda_oom: an allocation outside the KV cache failed (weights, profiling, CUDA graphs, sampler, serving)."""

from __future__ import annotations

import math
import re
from typing import Any

from rentstack.doctor.causes.base import Cause, Context, Found
from rentstack.doctor.diagnosis import Fix
from rentstack.doctor.fixes import SAFETY_GIB, best_first, floor2, propose
from rentstack.doctor.phases import PHASE_WORDS

SAMPLER_OOM = re.compile(r"CUDA out of memory occurred when warming up sampler with (?P<n>\d+) dummy requests")
"""gpu_model_runner.py _dummy_sampler_run: OOM while sampling a [num_reqs, vocab] fp32 tensor."""

TORCH_OOM = re.compile(
    r"(?:torch\.(?:cuda\.)?OutOfMemoryError: )?CUDA out of memory\. Tried to allocate (?P<tried>[0-9.]+) ?(?P<unit>[GMK]i?B)"
    r"(?:\. GPU (?P<gpu>\d+) has a total capacity of (?P<total>[0-9.]+) ?(?P<tunit>[GMK]i?B) of which "
    r"(?P<free>[0-9.]+) ?(?P<funit>[GMK]i?B) is free)?"
)
"""PyTorch's caching allocator message (c10/cuda/CUDACachingAllocator.cpp)."""

GENERIC_OOM = re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|cudaErrorMemoryAllocation")


def _to_gib(value: float, unit: str | None) -> float:
    unit = (unit or "GiB").upper().replace("I", "")
    return value * {"GB": 1.0, "MB": 1 / 1024, "KB": 1 / 1024**2}.get(unit, 1.0)


def match(line: str) -> Found | None:
    m = SAMPLER_OOM.search(line)
    if m:
        return Found("sampler_warmup", {"sampler_dummy_requests": int(m.group("n"))})
    m = TORCH_OOM.search(line)
    if m:
        details: dict[str, Any] = {"oom_tried_gib": round(_to_gib(float(m.group("tried")), m.group("unit")), 4)}
        if m.group("total"):
            details["oom_total_gib"] = round(_to_gib(float(m.group("total")), m.group("tunit")), 4)
            details["oom_free_gib"] = round(_to_gib(float(m.group("free")), m.group("funit")), 4)
            details["oom_gpu"] = int(m.group("gpu"))
        return Found(None, details)
    if GENERIC_OOM.search(line):
        return Found()
    return None


def explain(ctx: Context) -> str:
    d, s, phase = ctx.details, ctx.situation, ctx.phase
    model = s.figures.get("model") or "the model"
    text = f"The card ran out of memory {PHASE_WORDS.get(phase, '')}"
    if d.get("oom_tried_gib"):
        text += f" (an allocation of {d['oom_tried_gib'] * 1024:.0f} MiB failed"
        text += f" with {d['oom_free_gib'] * 1024:.0f} MiB free)" if d.get("oom_free_gib") is not None else ")"
    text += "."
    if phase == "cuda_graph_capture" and not s.graphs_budgeted:
        text += (f" vLLM {s.version or ''} captures CUDA graphs after the KV cache is allocated, outside "
                 "gpu-memory-utilization, so they must fit in what the utilization leaves free.")
    elif phase == "sampler_warmup":
        text += " The sampler warm-up builds one logits row per concurrent sequence (max-num-seqs × vocabulary)."
    elif phase == "weight_loading":
        text += f" The weights of {model} do not fit the card."
    return text


def fixes(ctx: Context) -> list[Fix]:
    s, d, phase = ctx.situation, ctx.details, ctx.phase
    f = s.figures
    tried = d.get("oom_tried_gib")
    gpt = s.gib_per_token()
    avail = f.get("available_kv_gib")
    out: list[Fix] = []

    def lower_util(size: float, what: str) -> None:
        if not s.total_gib:
            return
        new_util = floor2(s.util - (size + SAFETY_GIB) / s.total_gib)
        if new_util <= 0.05:
            return
        lost = (s.util - new_util) * s.total_gib
        out.append(propose(
            s, {"gpu-memory-utilization": new_util},
            f"{what}; lowering the utilization from {s.util} to {new_util} leaves {lost:.2f} GiB more outside "
            "vLLM's budget for it",
            f"concurrency: {lost:.2f} GiB less KV cache", "concurrency",
            s.log_prediction(avail - lost, gpt) if avail is not None else None,
        ))

    def eager() -> None:
        if s.eager:
            return
        out.append(propose(
            s, {"enforce-eager": True},
            "eager mode captures no CUDA graphs, so their memory is never needed",
            "speed: slower decoding, most at small batch sizes", "speed",
            s.log_prediction(avail + (s.graph_gib() or 0) if s.graphs_budgeted and avail is not None else avail, gpt),
        ))

    if phase == "sampler_warmup":
        n = int(d.get("sampler_dummy_requests") or s.args.get("max-num-seqs") or 256)
        free = d.get("oom_free_gib")
        per_req = (tried / n) if tried else None
        new_n = n // 2
        if per_req and free is not None:
            fit = int(max(0.0, free - SAFETY_GIB) / per_req)
            new_n = max(1, min(n // 2, 2 ** int(math.log2(fit)) if fit >= 1 else 1))
        conc = f.get("max_concurrency")
        if conc and new_n >= conc:
            cost = (f"concurrency: at most {new_n} sequences at once; the KV cache holds only {conc} full-length "
                    "requests anyway, so full-length concurrency is unchanged")
        else:
            cost = f"concurrency: at most {new_n} sequences at once (was {n})"
        out.append(propose(
            s, {"max-num-seqs": new_n},
            f"the sampler warm-up allocates a [{n} × vocab] fp32 tensor"
            + (f" ({tried * 1024:.0f} MiB)" if tried else "") + f"; with {new_n} sequences it is "
            + (f"{per_req * new_n * 1024:.0f} MiB" if per_req else "half as large"),
            cost, "concurrency", s.log_prediction(avail, gpt) if avail is not None else None,
        ))
        if tried:
            lower_util(tried, f"the sampler needed {tried * 1024:.0f} MiB outside the KV cache")
    elif phase == "cuda_graph_capture":
        graphs = s.graph_gib()
        size = graphs if graphs else (tried or 0.5) + 0.5
        what = (f"capturing CUDA graphs needs about {size:.2f} GiB outside vLLM's budget"
                + (" (measured)" if graphs else " (estimated from the failed allocation)"))
        lower_util(size, what)
        eager()
    elif phase == "weight_loading":
        gpus = s.inputs.gpus
        if gpus and gpus >= s.tp * 2:
            out.append(propose(
                s, {"tensor-parallel-size": s.tp * 2},
                f"the weights do not fit one card's budget; splitting them over {s.tp * 2} cards halves each share",
                f"cards: uses {s.tp * 2} GPUs", "memory",
            ))
        offload = math.ceil(max(2.0, (tried or 1.0) * 2))
        out.append(propose(
            s, {"cpu-offload-gb": offload},
            "the weights do not fit in the card's memory; keeping part of them in host memory makes room"
            " (the log does not say how much is missing; give --model-config for the exact figure)",
            f"speed: {offload} GiB of weights cross PCIe on every step (much slower); needs that much host RAM",
            "speed",
        ))
    elif phase == "profiling":
        new = s.halved_batched_tokens()
        out.append(propose(
            s, {"max-num-batched-tokens": new},
            "the profile run with max-num-batched-tokens tokens ran out of memory; the activation peak"
            f" shrinks roughly in proportion at {new}",
            "speed: long prompts prefill in smaller chunks (slower time to first token)", "speed",
        ))
        seqs = s.args.get("max-num-seqs")
        if seqs:
            out.append(propose(
                s, {"max-num-seqs": max(1, int(seqs) // 2)},
                "the profile run also samples max-num-seqs dummy requests at once",
                f"concurrency: at most {max(1, int(seqs) // 2)} sequences at once", "concurrency",
            ))
    else:  # kv_cache_allocation, runtime or unplaced
        lower_util(tried or 1.0, "an allocation outside the KV cache failed"
                   + (f" ({tried:.2f} GiB)" if tried else ""))
        if phase == "runtime":
            seqs = int(s.args.get("max-num-seqs") or 256)
            out.append(propose(
                s, {"max-num-seqs": max(1, seqs // 2)},
                "fewer concurrent sequences lower the sampler's and activations' peak while serving",
                f"concurrency: at most {max(1, seqs // 2)} sequences at once", "concurrency",
            ))
    return best_first(out)


CAUSE = Cause(
    name="cuda_oom",
    summary="an allocation outside the KV cache ran out of GPU memory (weights, profiling, graphs, sampler, serving)",
    triggers=("out of memory", "rror"),  # 'OutOfMemoryError', 'cudaErrorMemoryAllocation'
    match=match,
    explain=explain,
    fixes=fixes,
    figures=("oom_tried_gib", "oom_free_gib", "oom_total_gib", "sampler_dummy_requests"),
    memory=True,
    examples=(
        "(EngineCore_DP0 pid=112) ERROR 08-14 11:03:11 [core.py:866] torch.OutOfMemoryError: CUDA out of memory. "
        "Tried to allocate 786.00 MiB. GPU 0 has a total capacity of 79.19 GiB of which 693.06 MiB is free.",
        "RuntimeError: CUDA out of memory occurred when warming up sampler with 1024 dummy requests. Please try "
        "lowering `max_num_seqs` or `gpu_memory_utilization` when initializing the engine.",
        "RuntimeError: CUDA error: out of memory",
    ),
)
