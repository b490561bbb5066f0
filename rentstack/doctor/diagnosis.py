"""What the doctor returns: a Diagnosis with its Fixes, and the inputs it may be given."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Fix:
    """One concrete change to the launch, what it costs and what the next start should show."""

    changes: dict[str, Any]
    """New values keyed by vLLM's long flag names, e.g. {"max-model-len": 11200}; {} = no flag fixes it."""
    why: str
    """Why this change makes the next start succeed, with the numbers it rests on."""
    cost: str
    """What the renter gives up, in plain words."""
    cost_kind: str = "none"
    """context | concurrency | speed | memory | quality | none."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables to set alongside (e.g. NCCL_P2P_DISABLE=1)."""
    predicted: dict[str, Any] | None = None
    """Expected figures of the next start (available_kv_gib, kv_cache_tokens, max_concurrency, fits)
    and their `source`: "planner" (rentstack.plan with the model's config) or "log" (scaled from
    this log's own figures)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": dict(self.changes),
            "env": dict(self.env),
            "why": self.why,
            "cost": self.cost,
            "cost_kind": self.cost_kind,
            "predicted": dict(self.predicted) if self.predicted is not None else None,
        }


@dataclass
class Diagnosis:
    """The verdict on one vLLM start."""

    status: str
    """"ok" (the server came up) or "failed"."""
    cause: str | None
    """One of rentstack.doctor.causes.CAUSES (a registered cause or "unknown"), or None when ok."""
    phase: str | None
    """Where the start was: startup, weight_loading, profiling, kv_cache_allocation,
    cuda_graph_capture, sampler_warmup, runtime."""
    figures: dict[str, Any]
    """Numbers the log holds: weights_gib, available_kv_gib, kv_cache_tokens, max_concurrency,
    cuda_graph_gib, vllm_version, launch_args, ..."""
    fixes: list[Fix]
    """Best first; empty when no launch flag can fix it."""
    explanation: str
    """What happened, in plain words."""
    evidence: str | None = None
    """The log line the verdict rests on."""
    input_kind: str = "vllm"
    """vllm | empty | binary | not_vllm."""
    complete: bool = True
    """False when the log ends mid-start with no error (still starting, killed, or truncated)."""
    lines: int = 0
    """Lines read."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "cause": self.cause,
            "phase": self.phase,
            "figures": dict(self.figures),
            "fixes": [f.to_dict() for f in self.fixes],
            "explanation": self.explanation,
            "evidence": self.evidence,
            "input_kind": self.input_kind,
            "complete": self.complete,
            "lines": self.lines,
        }


@dataclass
class PlannerInputs:
    """What the log does not say but the planner needs; every field optional."""

    model_config: str | Path | dict | None = None
    """config.json path, model directory or dict: lets the planner predict each fix."""
    gpu_mem_gib: float | None = None
    """Total memory of one card, GiB (vLLM's V1 log rarely prints it)."""
    gpus: int | None = None
    """Cards on the host (for tensor-parallel fixes)."""
    free_mem_gib: float | None = None
    """Free memory per card measured before the start (shared cards, vGPU slices)."""
    card: str = ""
    """Card name, e.g. "RTX 4090" (the planner's per-card defaults, calibration key)."""
    calibration: dict[str, Any] | None = None
    """Figures measured on an earlier good start of the same (card, vLLM version, model)."""

    @classmethod
    def coerce(cls, value: PlannerInputs | dict | None) -> PlannerInputs:
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            known = {k: v for k, v in value.items() if k in cls.__dataclass_fields__}
            return cls(**known)
        raise TypeError(f"planner_inputs must be PlannerInputs, dict or None, not {type(value).__name__}")
