"""nccl_p2p: communication between the GPUs failed (NCCL, peer-to-peer), typical of cards without NVLink."""

from __future__ import annotations

import re

from rentstack.doctor.causes.base import Cause, Context, Found
from rentstack.doctor.diagnosis import Fix
from rentstack.doctor.fixes import propose
from rentstack.doctor.phases import PHASE_WORDS

NCCL_ERROR = re.compile(
    r"NCCL error|ncclUnhandledCudaError|ncclSystemError|ncclInternalError|ncclInvalidUsage|ncclRemoteError"
    r"|peer access is not supported between these two devices|P2P is not supported|NCCL WARN"
    r"|Watchdog caught collective operation timeout|ProcessGroupNCCL.*(?:timeout|Timeout)"
    r"|CUDA error: peer mapping"
)
"""torch.distributed / pynccl failures typical of consumer cards without NVLink (vllm#14449)."""


def match(line: str) -> Found | None:
    return Found() if NCCL_ERROR.search(line) else None


def explain(ctx: Context) -> str:
    return (f"Communication between the GPUs failed {PHASE_WORDS.get(ctx.phase, '')} (NCCL / peer-to-peer). "
            "Consumer cards without NVLink often lack working P2P; vLLM then needs it turned off."
            + (" vLLM had already warned that the platform lacks GPU P2P." if ctx.facts.p2p_warning else ""))


def fixes(ctx: Context) -> list[Fix]:
    s = ctx.situation
    out = [propose(
        s, {"disable-custom-all-reduce": True},
        "consumer cards without NVLink often cannot do GPU peer-to-peer; NCCL and vLLM's custom all-reduce "
        "then fail or hang (vllm#14449); NCCL_P2P_DISABLE=1 sends traffic through host memory",
        "speed: slower multi-GPU communication", "speed", env={"NCCL_P2P_DISABLE": "1"},
    )]
    if s.tp > 1:
        out.append(propose(
            s, {"tensor-parallel-size": 1, "pipeline-parallel-size": s.tp * s.pp},
            "pipeline parallelism only passes activations between cards once per stage, far less traffic "
            "than tensor parallelism",
            "speed: higher latency per request", "speed",
        ))
    return out


CAUSE = Cause(
    name="nccl_p2p",
    summary="GPU-to-GPU communication (NCCL / P2P) failed; common on consumer cards without NVLink",
    triggers=("NCCL", "nccl", "peer", "P2P", "Watchdog"),
    match=match,
    explain=explain,
    fixes=fixes,
    secondary=True,
    examples=(
        "(VllmWorker rank=0 pid=231) ERROR 05-06 21:30:21 [multiproc_executor.py:470] RuntimeError: NCCL error: "
        "unhandled cuda error (run with NCCL_DEBUG=INFO for details)",
        "RuntimeError: CUDA error: peer access is not supported between these two devices",
    ),
)
