"""What every cause's fixes are built from: the launch as logged, predictions, ordering.

`Situation` is the launch the log describes (vLLM defaults filled in where it is silent);
`propose` makes one Fix and attaches the planner's prediction of the next start when the model's
config.json and the card size are known (`_predict`, anchored on the log's own measurement);
`best_first` orders them. The arithmetic in the causes (rentstack/doctor/causes/) is only what
the log's own numbers support (scaling KV tokens by GiB, moving the utilization by a measured
size); the planner's numbers replace it whenever it can say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rentstack.doctor.diagnosis import Fix, PlannerInputs
from rentstack.errors import RentstackError
from rentstack.plan.params import LaunchParams
from rentstack.plan.rules import known_rules, release, rules_for_log

MAX_UTILIZATION = 0.95
"""Highest utilization the doctor proposes: above it the driver, NCCL and (≤0.19) the CUDA graphs
captured after the KV cache run out of room on every card seen in the dev records."""

SAFETY_GIB = 0.25
"""Margin added to measured sizes: vLLM rounds GiB to two decimals and the allocator fragments."""

DEFAULT_BLOCK = 16
"""KV block size on CUDA when --block-size is not set (vllm/config/cache.py)."""


def floor2(x: float) -> float:
    return math.floor(round(x * 100, 6)) / 100


def ceil2(x: float) -> float:
    return math.ceil(round(x * 100, 6)) / 100


@dataclass
class Situation:
    """The launch as the log describes it, vLLM defaults filled in where the log is silent."""

    figures: dict[str, Any]
    args: dict[str, Any]
    inputs: PlannerInputs
    version: str | None
    util: float
    util_assumed: bool
    total_gib: float | None
    max_model_len: int | None
    block: int
    eager: bool
    tp: int
    pp: int
    kv_dtype: str
    baseline: Any = None
    """The planner's plan of the launch as logged (computed once, for anchoring predictions)."""

    @classmethod
    def build(cls, figures: dict[str, Any], inputs: PlannerInputs) -> Situation:
        args = dict(figures.get("launch_args") or {})
        util = args.get("gpu-memory-utilization", figures.get("gpu_memory_utilization"))
        total = figures.get("total_gpu_gib") or figures.get("oom_total_gib") or inputs.gpu_mem_gib
        mml = args.get("max-model-len") or figures.get("max_model_len")
        return cls(
            figures=figures,
            args=args,
            inputs=inputs,
            version=figures.get("vllm_version"),
            util=float(util) if isinstance(util, (int, float)) else rules_for_log(
                figures.get("vllm_version")).default_gpu_memory_utilization,
            util_assumed=not isinstance(util, (int, float)),
            total_gib=float(total) if total else None,
            max_model_len=int(mml) if isinstance(mml, (int, float)) else None,
            block=int(args.get("block-size") or DEFAULT_BLOCK),
            eager=bool(args.get("enforce-eager", False)),
            tp=int(args.get("tensor-parallel-size") or 1),
            pp=int(args.get("pipeline-parallel-size") or 1),
            kv_dtype=str(args.get("kv-cache-dtype") or "auto"),
        )

    @property
    def graphs_budgeted(self) -> bool:
        """vLLM ≥0.20 subtracts the CUDA-graph estimate before sizing the KV cache
        (gpu_worker.determine_available_memory; VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1 by default)."""
        rules = known_rules(self.version)
        return bool(rules and rules.budgets_cuda_graphs)

    def gib_per_token(self, failure_details: dict[str, Any] | None = None) -> float | None:
        """KV GiB one token costs on the limiting card, from the log's own two numbers."""
        d = failure_details or {}
        if d.get("needed_kv_gib") and d.get("max_model_len"):
            return d["needed_kv_gib"] / d["max_model_len"]
        avail, tokens = self.figures.get("available_kv_gib"), self.figures.get("kv_cache_tokens")
        if avail and tokens and avail > 0 and tokens > 0:
            return avail / tokens
        cal = self.inputs.calibration or {}
        if cal.get("available_kv_gib") and cal.get("kv_cache_tokens"):
            return cal["available_kv_gib"] / cal["kv_cache_tokens"]
        return None

    def log_prediction(self, avail_gib: float | None, gib_per_token: float | None,
                       max_model_len: int | None = None) -> dict[str, Any] | None:
        if avail_gib is None:
            return None
        out: dict[str, Any] = {"available_kv_gib": round(avail_gib, 2), "source": "log"}
        mml = max_model_len or self.max_model_len
        if gib_per_token and avail_gib > 0:
            tokens = int(avail_gib / gib_per_token // self.block * self.block)
            out["kv_cache_tokens"] = tokens
            if mml:
                out["max_concurrency"] = round(tokens / mml, 2)
                out["fits"] = tokens >= mml
        else:
            out["fits"] = avail_gib > 0 if gib_per_token is None else False
        return out

    def graph_gib(self) -> float | None:
        """CUDA-graph memory: measured in this log, estimated by vLLM, or measured on an earlier start."""
        f, cal = self.figures, self.inputs.calibration or {}
        return f.get("cuda_graph_gib") or f.get("cuda_graph_estimate_gib") or cal.get("cuda_graph_gib")

    def raised_util(self, more_gib: float) -> float | None:
        """The utilization that gives vLLM `more_gib` more of the card (rounded up to 0.01), or
        None when the card size is unknown or it would pass MAX_UTILIZATION."""
        if not self.total_gib:
            return None
        new_util = ceil2(self.util + more_gib / self.total_gib)
        return new_util if self.util < new_util <= MAX_UTILIZATION else None

    def halved_batched_tokens(self) -> int:
        """Half the logged max-num-batched-tokens (not below 512), or 2048 when the log does not
        give it: the profile run's activation peak grows with this many tokens."""
        logged = self.args.get("max-num-batched-tokens")
        return max(512, int(logged) // 2) if logged else 2048


# --- planner adapter ---------------------------------------------------------------------
def launch_params_kwargs(flags: dict[str, Any], version: str | None) -> dict[str, Any]:
    """vLLM flags (kebab-case) → rentstack.plan.LaunchParams keyword arguments; a value that does
    not convert is left out (a log may carry odd values)."""
    out = LaunchParams.flags_to_fields(flags, strict=False)
    try:
        if version:
            out["vllm_version"] = release(version)
    except RentstackError:
        pass
    return out


def _planner_inputs(s: Situation) -> tuple[Any, Any, Any] | None:
    """(rentstack.plan, ModelArch, Hardware) for the logged launch, or None without a model
    config and a card size. Raises what the planner raises; callers treat that as 'cannot say'."""
    inputs = s.inputs
    total = s.total_gib or inputs.gpu_mem_gib
    if inputs.model_config is None or not total:
        return None
    from rentstack import plan as planner  # issue 3; optional here, the log-based figures stand in
    arch = planner.load_arch(inputs.model_config)
    hw = planner.Hardware(gpu_mem_gib=float(total), gpus=int(inputs.gpus or s.tp * s.pp),
                          free_mem_gib=inputs.free_mem_gib, name=inputs.card or "")
    return planner, arch, hw


def _planner_plan(s: Situation, changes: dict[str, Any]) -> Any | None:
    """rentstack.plan's Plan for the logged launch with `changes`, or None when it cannot say
    (no model config, no card size, planner not importable or refusing the inputs)."""
    try:
        found = _planner_inputs(s)
        if found is None:
            return None
        planner, arch, hw = found
        params = planner.LaunchParams(**launch_params_kwargs({**s.args, **changes}, s.version))
        return planner.plan(arch, hw, params)
    except Exception:  # noqa: BLE001 - a prediction is optional; a planner refusal must not break the doctor
        return None


def _predict(s: Situation, changes: dict[str, Any]) -> dict[str, Any] | None:
    """The planner's prediction for the launch with `changes`, anchored on this log.

    The log measured the KV memory of the launch as it was; the planner estimated it. Their
    difference (a few percent at most on the dev records) is added to the planner's figure for
    the changed launch, so a fix sized on vLLM's own numbers is not refused by the planner's
    rounding."""
    pred = _planner_plan(s, changes)
    if pred is None:
        return None
    out: dict[str, Any] = {
        "available_kv_gib": round(pred.available_kv_gib, 2), "kv_cache_tokens": pred.kv_cache_tokens,
        "max_concurrency": round(pred.max_concurrency, 2), "fits": pred.fits, "error": pred.error,
        "weights_gib": round(pred.weights_gib, 2), "activation_gib": round(pred.activation_gib, 2),
        "non_torch_gib": round(pred.non_torch_gib, 2), "cuda_graph_gib": round(pred.cuda_graph_gib, 2),
        "source": "planner",
    }
    logged = s.figures.get("available_kv_gib")
    if logged is None:
        return out
    if s.baseline is None:
        s.baseline = _planner_plan(s, {}) or False
    if not s.baseline:
        return out
    delta = logged - s.baseline.available_kv_gib
    avail = pred.available_kv_gib + delta
    per_token = getattr(pred, "kv_bytes_per_token", 0)
    block = getattr(getattr(pred, "resolved", None), "block_size", None) or s.block
    mml = getattr(getattr(pred, "resolved", None), "max_model_len", None) or s.max_model_len
    out.update(available_kv_gib=round(avail, 2), source="planner+log", log_offset_gib=round(delta, 3))
    if per_token and avail > 0:
        tokens = int(avail * 1024**3 // (per_token * block) * block)
        out["kv_cache_tokens"] = tokens
        if mml:
            out["max_concurrency"] = round(tokens / mml, 2)
            if getattr(pred, "verdict", "") in ("ok", "max_model_len"):
                out["fits"] = tokens >= mml
                if out["fits"]:
                    out["error"] = None
    elif avail <= 0:
        out["fits"] = False
    return out


_FIT_KEEPS = ("tensor-parallel-size", "pipeline-parallel-size", "dtype", "quantization", "max-num-batched-tokens")
"""Flags the planner's search keeps as logged: the deployment chose them (cards, checkpoint)."""

_COST_OF = {
    "max-model-len": ("context", "shorter context per request"),
    "kv-cache-dtype": ("quality", "8-bit KV cache (slight accuracy loss)"),
    "enforce-eager": ("speed", "no CUDA graphs (slower decoding)"),
    "cpu-offload-gb": ("speed", "weights in host RAM cross PCIe every step (much slower)"),
    "max-num-seqs": ("concurrency", "fewer sequences at once"),
    "gpu-memory-utilization": ("memory", "a different share of the card for vLLM"),
}


def planner_fit_fix(s: Situation) -> Fix | None:
    """The planner's own search (rentstack.plan.fit) for the logged launch: the flags it changes,
    with its reasons and plan. None without a model config and card size, or when nothing fits."""
    try:
        found = _planner_inputs(s)
        if found is None:
            return None
        planner, arch, hw = found
        fixed = {k: v for k, v in s.args.items() if k in _FIT_KEEPS}
        version = launch_params_kwargs({}, s.version).get("vllm_version")
        if version:
            fixed["vllm_version"] = version
        goal = planner.Goal(min_context=s.max_model_len, min_concurrency=1)
        result = planner.fit(arch, hw, goal, fixed)
        current = planner.resolve(arch, hw, planner.LaunchParams(**launch_params_kwargs(s.args, s.version)))
    except Exception:  # noqa: BLE001 - the planner's search is an extra, never a reason to fail
        return None
    if not result.plan.fits:
        return None
    now, then = current.to_flags(), result.params.to_flags()
    changes = {k: v for k, v in then.items() if v is not None and now.get(k) != v and k not in _FIT_KEEPS}
    if not changes:
        return None
    reasons = [f"{k}: {result.reasons[k.replace('-', '_')]}" for k in changes
               if k.replace("-", "_") in result.reasons]
    costs = [_COST_OF[k][1] for k in changes if k in _COST_OF]
    kinds = [_COST_OF[k][0] for k in changes if k in _COST_OF]
    pl = result.plan
    return Fix(
        changes=changes,
        why="the planner's search for this model and card — " + ("; ".join(reasons) or "see its plan"),
        cost="; ".join(costs) or "none",
        cost_kind=kinds[0] if kinds else "none",
        predicted={"available_kv_gib": round(pl.available_kv_gib, 2), "kv_cache_tokens": pl.kv_cache_tokens,
                   "max_concurrency": round(pl.max_concurrency, 2), "fits": pl.fits, "error": pl.error,
                   "source": "planner"},
    )


def with_planner_fit(s: Situation, fixes: list[Fix]) -> list[Fix]:
    """Add the planner's searched fix after the log's own, unless one of those is the same change."""
    extra = planner_fit_fix(s)
    if extra is None or any(f.changes == extra.changes for f in fixes):
        return fixes
    return best_first([*fixes, extra])


def propose(s: Situation, changes: dict[str, Any], why: str, cost: str, kind: str,
            log_pred: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Fix:
    """One Fix for the logged launch with `changes`: the planner's predicted next start when it can say
    (model config and card size known), else `log_pred` (the cause's own estimate from the log)."""
    predicted = _predict(s, changes) if changes else None
    return Fix(changes=changes, why=why, cost=cost, cost_kind=kind, env=env or {},
               predicted=predicted or log_pred)


def best_first(fixes: list[Fix]) -> list[Fix]:
    """Keep the proposed order, but move fixes the planner predicts to fail behind the others."""
    return sorted(fixes, key=lambda f: 1 if (f.predicted or {}).get("fits") is False else 0)


# --- for the retry loops (make up AUTO_FIX=1, fab up --auto-fix) -------------------------
def first_fix(diagnosis: Any) -> dict[str, Any]:
    """The changes of the best fix that has any (what an auto-fix retry applies), or {}.

    {} means no launch flag fixes this failure (missing files, an unknown flag with no close
    match, a start that succeeded): the caller should stop and print the explanation."""
    for fix in getattr(diagnosis, "fixes", None) or []:
        if fix.changes:
            return dict(fix.changes)
    return {}
