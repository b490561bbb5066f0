"""insufficient_free_memory: at start, less memory was free than the utilization asks for."""

from __future__ import annotations

import re

from rentstack.doctor.causes.base import Cause, Context, Found, gib
from rentstack.doctor.diagnosis import Fix
from rentstack.doctor.fixes import floor2, propose

FREE_MEMORY = re.compile(
    r"Free memory on device(?: (?P<device>\S+))? \((?P<free>[0-9.]+)/(?P<total>[0-9.]+) ?GiB\) on startup"
    r" is less than (?:desired GPU memory utilization|the engine's budget[^(]*?)\s*\((?P<util>[0-9.]+), (?P<requested>[0-9.]+) ?GiB\)"
)
"""v1/worker/gpu_worker.py init_device (0.9.1–0.18) / v1/worker/utils.py (0.19+). NB: 0.33 also logs
an INFO line starting 'Free memory on device (...) on startup. Desired ...' that is not an error;
this pattern needs 'is less than'."""

FREE_MEMORY_CPU = re.compile(
    r"Available memory on node (?P<node>\d+) \((?P<free>[0-9.]+)/(?P<total>[0-9.]+) ?GiB\) on startup is less than "
    r"desired CPU memory utilization \((?P<util>[0-9.]+), (?P<requested>[0-9.]+) ?GiB\)"
)
"""v1/worker/cpu_worker.py (CPU builds, 0.32): the same check against host memory of one NUMA node."""


def match(line: str) -> Found | None:
    m = FREE_MEMORY.search(line) or FREE_MEMORY_CPU.search(line)
    if not m:
        return None
    where = m.groupdict().get("device") or (f"cpu node {m.group('node')}" if "node" in m.groupdict() else None)
    return Found("startup", dict(
        device=where, free_gib=float(m.group("free")), total_gpu_gib=float(m.group("total")),
        gpu_memory_utilization=float(m.group("util")), requested_gib=float(m.group("requested")),
    ))


def explain(ctx: Context) -> str:
    d = ctx.details
    cpu = str(d.get("device") or "").startswith("cpu")
    where = "of host memory on this NUMA node (CPU backend)" if cpu else "on the card"
    return (f"At start only {gib(d.get('free_gib'))} of {gib(d.get('total_gpu_gib'))} {where} was free, "
            f"but gpu-memory-utilization {d.get('gpu_memory_utilization')} asks for "
            f"{gib(d.get('requested_gib'))}. Another process (or a vGPU slice) holds the rest.")


def fixes(ctx: Context) -> list[Fix]:
    s, d = ctx.situation, ctx.details
    free, total = d.get("free_gib"), d.get("total_gpu_gib") or s.total_gib
    util = d.get("gpu_memory_utilization", s.util)
    if not free or not total:
        return []
    # vLLM needs free ≥ total × utilization at start; stay a step below what is free.
    new_util = floor2(free / total - 0.01)
    if new_util <= 0:
        return []
    lost = (util - new_util) * total
    avail = s.figures.get("available_kv_gib")
    cal = s.inputs.calibration or {}
    if avail is None and cal.get("available_kv_gib") is not None and cal.get("gpu_memory_utilization"):
        avail = cal["available_kv_gib"] - (cal["gpu_memory_utilization"] - new_util) * total
    elif avail is not None:
        avail = avail - lost
    return [propose(
        s, {"gpu-memory-utilization": new_util},
        f"only {free} of {total} GiB is free at start (another process or a vGPU slice holds "
        f"{total - free:.2f} GiB); {new_util} × {total} = {new_util * total:.2f} GiB fits in it",
        f"memory: {lost:.2f} GiB less for vLLM, taken from the KV cache (fewer concurrent tokens)",
        "concurrency", s.log_prediction(avail, s.gib_per_token()) if avail is not None else None,
    )]


CAUSE = Cause(
    name="insufficient_free_memory",
    summary="another process (or a vGPU slice) held memory the utilization asked for at start",
    triggers=("Free memory", "Available memory on node"),
    match=match,
    explain=explain,
    fixes=fixes,
    figures=("free_gib", "total_gpu_gib", "gpu_memory_utilization", "requested_gib"),
    memory=True,
    examples=(
        "(EngineCore_0 pid=164) ERROR 09-20 03:11:57 [core.py:718] ValueError: Free memory on device "
        "(19.84/23.64 GiB) on startup is less than desired GPU memory utilization (0.9, 21.28 GiB). Decrease "
        "GPU memory utilization or reduce GPU memory used by other processes.",
        "(EngineCore pid=88) ERROR 11-02 08:00:21 [core.py:1510] ValueError: Free memory on device cuda:0 "
        "(11.63/23.99 GiB) on startup is less than desired GPU memory utilization (0.92, 22.07 GiB).",
        "(VllmWorker-0 pid=3011) ERROR 11-21 14:38:13 [multiproc_executor.py:953] ValueError: Available memory "
        "on node 0 (18.4/23.54 GiB) on startup is less than desired CPU memory utilization (0.92, 21.66 GiB).",
    ),
)
