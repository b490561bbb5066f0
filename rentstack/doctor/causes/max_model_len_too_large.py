"""max_model_len_too_large: one request of the full context does not fit the KV cache."""

from __future__ import annotations

import math
import re

from rentstack.doctor.causes.base import Cause, Context, Found, gib
from rentstack.doctor.diagnosis import Fix
from rentstack.doctor.fixes import SAFETY_GIB, best_first, propose

MAX_SEQ_LEN_V1 = re.compile(
    r"max seq len \((?P<len>\d+)\), \((?P<needed>[0-9.]+) ?GiB KV cache is needed, which is larger than "
    r"the available KV cache memory \((?P<avail>-?[0-9.]+) ?GiB\)\.?(?P<rest>.*)"
)
"""kv_cache_utils.py: 'To serve at least one request with the models's max seq len (L), (X GiB KV
cache is needed ... (Y GiB). Based on the available memory, the estimated maximum model length
is N.' The estimate is missing in 0.8.5 (a string-concatenation bug) and whenever N would be 0."""

ESTIMATED_MAX_LEN = re.compile(r"estimated maximum model length is (?P<len>\d+)")

MAX_SEQ_LEN_V0 = re.compile(
    r"The model's max seq len \((?P<len>\d+)\) is larger than the maximum number of tokens that can be "
    r"stored in KV cache \((?P<tokens>\d+)\)"
)
"""V0 worker.py / cpu_worker.py raise_if_cache_size_invalid."""


def match(line: str) -> Found | None:
    m = MAX_SEQ_LEN_V1.search(line)
    if m:
        est = ESTIMATED_MAX_LEN.search(m.group("rest") or "")
        return Found("kv_cache_allocation", dict(
            max_model_len=int(m.group("len")), needed_kv_gib=float(m.group("needed")),
            available_kv_gib=float(m.group("avail")),
            suggested_max_model_len=int(est.group("len")) if est else None,
        ))
    m = MAX_SEQ_LEN_V0.search(line)
    if m:
        return Found("kv_cache_allocation",
                     dict(max_model_len=int(m.group("len")), kv_cache_tokens=int(m.group("tokens"))))
    return None


def explain(ctx: Context) -> str:
    d, s = ctx.details, ctx.situation
    length = d.get("max_model_len") or s.max_model_len
    if d.get("needed_kv_gib") is not None:
        text = (f"One request of the full context ({length:,} tokens) needs {gib(d['needed_kv_gib'])} of KV "
                f"cache, but only {gib(d.get('available_kv_gib'))} is left after the weights and activations.")
    else:
        text = (f"One request of the full context ({length:,} tokens) does not fit the KV cache, which holds "
                f"{d.get('kv_cache_tokens', '?'):,} tokens.")
    if d.get("suggested_max_model_len"):
        text += f" vLLM estimates the longest that fits at {d['suggested_max_model_len']:,} tokens."
    return text


def fixes(ctx: Context) -> list[Fix]:
    s, d = ctx.situation, ctx.details
    length = d.get("max_model_len") or s.max_model_len
    avail = d.get("available_kv_gib", s.figures.get("available_kv_gib"))
    needed = d.get("needed_kv_gib")
    gpt = s.gib_per_token(d)
    if not gpt and d.get("kv_cache_tokens") and avail:  # V0 message: token capacity instead of GiB
        gpt = avail / d["kv_cache_tokens"]
    out: list[Fix] = []
    suggested = d.get("suggested_max_model_len")
    if not suggested and d.get("kv_cache_tokens"):
        suggested = int(d["kv_cache_tokens"])
    if not suggested and gpt and avail and avail > 0:
        # vLLM ≤0.8.5 drops its estimate from the message; recompute it one block short of the
        # exact figure because the logged GiB are rounded to two decimals.
        suggested = int(avail / gpt // s.block * s.block) - s.block
    if suggested and suggested > 0 and length:
        pct = 100 * (1 - suggested / length)
        out.append(propose(
            s, {"max-model-len": int(suggested)},
            f"one {length:,}-token request needs {needed if needed is not None else '?'} GiB of KV cache but "
            f"{avail} GiB is available; {int(suggested):,} tokens is the longest that fits"
            + (" (vLLM's own estimate)" if d.get("suggested_max_model_len") else ""),
            f"context: {length:,} → {int(suggested):,} tokens per request (−{pct:.0f} %)", "context",
            s.log_prediction(avail, gpt, int(suggested)),
        ))
    if needed and s.args.get("kv-cache-memory-bytes"):
        # An explicit KV size bypasses profiling and the utilization (gpu_worker, 0.10.2+).
        new_bytes = math.ceil((needed + SAFETY_GIB / 5) * 1024**3 / 1e6) * 1_000_000
        out.append(propose(
            s, {"kv-cache-memory-bytes": new_bytes},
            f"the KV cache is sized explicitly ({int(s.args['kv-cache-memory-bytes']):,} bytes); "
            f"{new_bytes:,} bytes hold one {length:,}-token request",
            f"memory: {new_bytes / 1024**3:.2f} GiB reserved for the KV cache instead of {avail} GiB", "memory",
            s.log_prediction(new_bytes / 1024**3, gpt, length),
        ))
    elif needed and avail is not None and s.total_gib:
        new_util = s.raised_util(needed - avail + SAFETY_GIB)
        if new_util is not None:
            new_avail = avail + (new_util - s.util) * s.total_gib
            out.append(propose(
                s, {"gpu-memory-utilization": new_util},
                f"{needed - avail:.2f} GiB more KV cache is needed; raising the utilization from {s.util} to "
                f"{new_util} gives vLLM {(new_util - s.util) * s.total_gib:.2f} GiB more of the {s.total_gib} GiB card",
                f"memory: {(1 - new_util) * s.total_gib:.2f} GiB left outside vLLM's budget "
                + ("(CUDA graphs are budgeted inside it in this version)" if s.graphs_budgeted or s.eager
                   else "for CUDA graphs and other processes"), "memory",
                s.log_prediction(new_avail, gpt, length),
            ))
    if needed and avail and s.kv_dtype == "auto" and needed / 2 <= avail:
        out.append(propose(
            s, {"kv-cache-dtype": "fp8"},
            f"an fp8 KV cache halves the {needed} GiB one full request needs, within the {avail} GiB available",
            "quality/speed: 8-bit KV cache (slight accuracy loss; needs an fp8-capable card for full speed)",
            "quality", s.log_prediction(avail, gpt / 2 if gpt else None, length),
        ))
    return best_first(out)


CAUSE = Cause(
    name="max_model_len_too_large",
    summary="one request of the full context (max-model-len) needs more KV cache than there is",
    triggers=("max seq len",),
    match=match,
    explain=explain,
    fixes=fixes,
    figures=("needed_kv_gib", "suggested_max_model_len", "max_model_len", "available_kv_gib"),
    memory=True,
    examples=(
        "(EngineCore_DP0 pid=89) ERROR 10-09 14:22:14 [core.py:708] ValueError: To serve at least one request "
        "with the models's max seq len (32000), (7.81 GiB KV cache is needed, which is larger than the available "
        "KV cache memory (4.45 GiB). Based on the available memory, the estimated maximum model length is 18224. "
        "Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.",
        "ValueError: The model's max seq len (32768) is larger than the maximum number of tokens that can be "
        "stored in KV cache (21408). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` "
        "when initializing the engine.",
    ),
)
