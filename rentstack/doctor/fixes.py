"""From a failed start to the smallest launch changes that make the next start succeed.

Each cause has one function that proposes fixes, best first, from the figures the log holds
(available KV GiB, the KV GiB one full-length request needs, the allocation that failed...)
and the launch arguments. The arithmetic here is only what the log's own numbers support
(scaling KV tokens by GiB, moving the utilization by a measured size); whenever the model's
config.json is known, `rentstack.plan` predicts each fix's result instead (see `_predict`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from rentstack.doctor.diagnosis import Fix, PlannerInputs
from rentstack.errors import did_you_mean

DEFAULT_UTILIZATION = 0.9
"""vLLM's --gpu-memory-utilization default (config/cache.py, all versions 0.8–0.33)."""

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


def version_tuple(version: str | None) -> tuple[int, ...]:
    if not version:
        return ()
    parts = re.findall(r"\d+", version)[:3]
    return tuple(int(p) for p in parts)


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
            util=float(util) if isinstance(util, (int, float)) else DEFAULT_UTILIZATION,
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
        return version_tuple(self.version) >= (0, 20)

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


# --- planner adapter ---------------------------------------------------------------------
_FLAG_TO_PARAM = {
    "tensor-parallel-size": ("tp", int),
    "pipeline-parallel-size": ("pp", int),
    "gpu-memory-utilization": ("gpu_memory_utilization", float),
    "max-model-len": ("max_model_len", int),
    "max-num-seqs": ("max_num_seqs", int),
    "max-num-batched-tokens": ("max_num_batched_tokens", int),
    "dtype": ("dtype", str),
    "quantization": ("quantization", str),
    "kv-cache-dtype": ("kv_cache_dtype", str),
    "block-size": ("block_size", int),
    "enforce-eager": ("enforce_eager", bool),
    "cpu-offload-gb": ("cpu_offload_gb", float),
}


def launch_params_kwargs(flags: dict[str, Any], version: str | None) -> dict[str, Any]:
    """vLLM flags (kebab-case) → rentstack.plan.LaunchParams keyword arguments."""
    out: dict[str, Any] = {}
    for flag, value in flags.items():
        if flag in _FLAG_TO_PARAM and value is not None:
            name, kind = _FLAG_TO_PARAM[flag]
            try:
                out[name] = kind(value)
            except (TypeError, ValueError):
                continue
    if version and version_tuple(version):
        out["vllm_version"] = ".".join(str(p) for p in version_tuple(version))
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
    now, then = current.vllm_flags(), result.params.vllm_flags()
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
    return _order([*fixes, extra])


def _fix(s: Situation, changes: dict[str, Any], why: str, cost: str, kind: str,
         log_pred: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Fix:
    predicted = _predict(s, changes) if changes else None
    return Fix(changes=changes, why=why, cost=cost, cost_kind=kind, env=env or {},
               predicted=predicted or log_pred)


def _order(fixes: list[Fix]) -> list[Fix]:
    """Keep the proposed order, but move fixes the planner predicts to fail behind the others."""
    return sorted(fixes, key=lambda f: 1 if (f.predicted or {}).get("fits") is False else 0)


# --- per cause ---------------------------------------------------------------------------
def fixes_max_model_len(s: Situation, d: dict[str, Any]) -> list[Fix]:
    length = d.get("max_model_len") or s.max_model_len
    avail = d.get("available_kv_gib", s.figures.get("available_kv_gib"))
    needed = d.get("needed_kv_gib")
    gpt = s.gib_per_token(d)
    if not gpt and d.get("kv_cache_tokens") and avail:  # V0 message: token capacity instead of GiB
        gpt = avail / d["kv_cache_tokens"]
    fixes: list[Fix] = []
    suggested = d.get("suggested_max_model_len")
    if not suggested and d.get("kv_cache_tokens"):
        suggested = int(d["kv_cache_tokens"])
    if not suggested and gpt and avail and avail > 0:
        # vLLM ≤0.8.5 drops its estimate from the message; recompute it one block short of the
        # exact figure because the logged GiB are rounded to two decimals.
        suggested = int(avail / gpt // s.block * s.block) - s.block
    if suggested and suggested > 0 and length:
        pct = 100 * (1 - suggested / length)
        fixes.append(_fix(
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
        fixes.append(_fix(
            s, {"kv-cache-memory-bytes": new_bytes},
            f"the KV cache is sized explicitly ({int(s.args['kv-cache-memory-bytes']):,} bytes); "
            f"{new_bytes:,} bytes hold one {length:,}-token request",
            f"memory: {new_bytes / 1024**3:.2f} GiB reserved for the KV cache instead of {avail} GiB", "memory",
            s.log_prediction(new_bytes / 1024**3, gpt, length),
        ))
    elif needed and avail is not None and s.total_gib:
        new_util = ceil2(s.util + (needed - avail + SAFETY_GIB) / s.total_gib)
        if new_util <= MAX_UTILIZATION and new_util > s.util:
            new_avail = avail + (new_util - s.util) * s.total_gib
            fixes.append(_fix(
                s, {"gpu-memory-utilization": new_util},
                f"{needed - avail:.2f} GiB more KV cache is needed; raising the utilization from {s.util} to "
                f"{new_util} gives vLLM {(new_util - s.util) * s.total_gib:.2f} GiB more of the {s.total_gib} GiB card",
                f"memory: {(1 - new_util) * s.total_gib:.2f} GiB left outside vLLM's budget "
                + ("(CUDA graphs are budgeted inside it in this version)" if s.graphs_budgeted or s.eager
                   else "for CUDA graphs and other processes"), "memory",
                s.log_prediction(new_avail, gpt, length),
            ))
    if needed and avail and s.kv_dtype == "auto" and needed / 2 <= avail:
        fixes.append(_fix(
            s, {"kv-cache-dtype": "fp8"},
            f"an fp8 KV cache halves the {needed} GiB one full request needs, within the {avail} GiB available",
            "quality/speed: 8-bit KV cache (slight accuracy loss; needs an fp8-capable card for full speed)",
            "quality", s.log_prediction(avail, gpt / 2 if gpt else None, length),
        ))
    return _order(fixes)


def fixes_no_kv_memory(s: Situation, d: dict[str, Any]) -> list[Fix]:
    f = s.figures
    avail = f.get("available_kv_gib")
    deficit = max(0.0, -avail) if isinstance(avail, (int, float)) else None
    gpt = s.gib_per_token()
    # Aim for at least one full-length request when the per-token cost is known, else 1 GiB.
    target = (gpt * s.max_model_len) if (gpt and s.max_model_len) else 1.0
    need = (deficit or 0.0) + target + SAFETY_GIB
    fixes: list[Fix] = []
    if s.total_gib:
        new_util = ceil2(s.util + need / s.total_gib)
        if new_util <= MAX_UTILIZATION:
            fixes.append(_fix(
                s, {"gpu-memory-utilization": new_util},
                (f"the KV budget came out at {avail} GiB; " if avail is not None else "")
                + f"{new_util} of the {s.total_gib} GiB card leaves about {target:.2f} GiB for the KV cache",
                f"memory: only {(1 - new_util) * s.total_gib:.2f} GiB of the card stays outside vLLM", "memory",
                s.log_prediction((avail or 0) + (new_util - s.util) * s.total_gib, gpt),
            ))
    graphs = f.get("cuda_graph_estimate_gib")
    if not s.eager and s.graphs_budgeted and graphs and graphs >= need - SAFETY_GIB:
        fixes.append(_fix(
            s, {"enforce-eager": True},
            f"this vLLM ({s.version}) reserves the {graphs} GiB CUDA-graph estimate before the KV cache; "
            "eager mode frees it",
            "speed: no CUDA graphs, slower decoding at small batch sizes", "speed",
            s.log_prediction((avail or 0) + graphs, gpt),
        ))
    act = f.get("activation_gib")
    mnbt = s.args.get("max-num-batched-tokens")
    if act and act / 2 >= need - SAFETY_GIB:
        new = max(512, int(mnbt) // 2) if mnbt else 2048
        fixes.append(_fix(
            s, {"max-num-batched-tokens": new},
            f"the profile run's activation peak ({act} GiB) grows with max-num-batched-tokens; {new} roughly halves it",
            "speed: long prompts are prefilled in smaller chunks (slower time to first token)", "speed",
            s.log_prediction((avail or 0) + act / 2, gpt),
        ))
    offload = math.ceil(need)
    fixes.append(_fix(
        s, {"cpu-offload-gb": offload},
        f"moving {offload} GiB of weights to host memory frees that much of the card for the KV cache"
        + ("" if deficit is not None else " (the log does not say how short it was; this is a floor)"),
        f"speed: those weights cross PCIe on every step (much slower decoding); needs {offload} GiB of host RAM",
        "speed", s.log_prediction((avail or 0) + offload, gpt),
    ))
    return _order(fixes)


def fixes_free_memory(s: Situation, d: dict[str, Any]) -> list[Fix]:
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
    return [_fix(
        s, {"gpu-memory-utilization": new_util},
        f"only {free} of {total} GiB is free at start (another process or a vGPU slice holds "
        f"{total - free:.2f} GiB); {new_util} × {total} = {new_util * total:.2f} GiB fits in it",
        f"memory: {lost:.2f} GiB less for vLLM, taken from the KV cache (fewer concurrent tokens)",
        "concurrency", s.log_prediction(avail, s.gib_per_token()) if avail is not None else None,
    )]


def fixes_cuda_oom(s: Situation, d: dict[str, Any], phase: str | None) -> list[Fix]:
    f = s.figures
    tried = d.get("oom_tried_gib")
    gpt = s.gib_per_token()
    avail = f.get("available_kv_gib")
    fixes: list[Fix] = []

    def lower_util(size: float, what: str) -> None:
        if not s.total_gib:
            return
        new_util = floor2(s.util - (size + SAFETY_GIB) / s.total_gib)
        if new_util <= 0.05:
            return
        lost = (s.util - new_util) * s.total_gib
        fixes.append(_fix(
            s, {"gpu-memory-utilization": new_util},
            f"{what}; lowering the utilization from {s.util} to {new_util} leaves {lost:.2f} GiB more outside "
            "vLLM's budget for it",
            f"concurrency: {lost:.2f} GiB less KV cache", "concurrency",
            s.log_prediction(avail - lost, gpt) if avail is not None else None,
        ))

    def eager() -> None:
        if s.eager:
            return
        fixes.append(_fix(
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
        fixes.append(_fix(
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
            fixes.append(_fix(
                s, {"tensor-parallel-size": s.tp * 2},
                f"the weights do not fit one card's budget; splitting them over {s.tp * 2} cards halves each share",
                f"cards: uses {s.tp * 2} GPUs", "memory",
            ))
        offload = math.ceil(max(2.0, (tried or 1.0) * 2))
        fixes.append(_fix(
            s, {"cpu-offload-gb": offload},
            "the weights do not fit in the card's memory; keeping part of them in host memory makes room"
            " (the log does not say how much is missing; give --model-config for the exact figure)",
            f"speed: {offload} GiB of weights cross PCIe on every step (much slower); needs that much host RAM",
            "speed",
        ))
    elif phase == "profiling":
        mnbt = s.args.get("max-num-batched-tokens")
        new = max(512, int(mnbt) // 2) if mnbt else 2048
        fixes.append(_fix(
            s, {"max-num-batched-tokens": new},
            "the profile run with max-num-batched-tokens tokens ran out of memory; the activation peak"
            f" shrinks roughly in proportion at {new}",
            "speed: long prompts prefill in smaller chunks (slower time to first token)", "speed",
        ))
        seqs = s.args.get("max-num-seqs")
        if seqs:
            fixes.append(_fix(
                s, {"max-num-seqs": max(1, int(seqs) // 2)},
                "the profile run also samples max-num-seqs dummy requests at once",
                f"concurrency: at most {max(1, int(seqs) // 2)} sequences at once", "concurrency",
            ))
    else:  # kv_cache_allocation, runtime or unplaced
        lower_util(tried or 1.0, "an allocation outside the KV cache failed"
                   + (f" ({tried:.2f} GiB)" if tried else ""))
        if phase == "runtime":
            seqs = int(s.args.get("max-num-seqs") or 256)
            fixes.append(_fix(
                s, {"max-num-seqs": max(1, seqs // 2)},
                "fewer concurrent sequences lower the sampler's and activations' peak while serving",
                f"concurrency: at most {max(1, seqs // 2)} sequences at once", "concurrency",
            ))
    return _order(fixes)


def fixes_nccl(s: Situation, d: dict[str, Any]) -> list[Fix]:
    fixes = [_fix(
        s, {"disable-custom-all-reduce": True},
        "consumer cards without NVLink often cannot do GPU peer-to-peer; NCCL and vLLM's custom all-reduce "
        "then fail or hang (vllm#14449); NCCL_P2P_DISABLE=1 sends traffic through host memory",
        "speed: slower multi-GPU communication", "speed", env={"NCCL_P2P_DISABLE": "1"},
    )]
    if s.tp > 1:
        fixes.append(_fix(
            s, {"tensor-parallel-size": 1, "pipeline-parallel-size": s.tp * s.pp},
            "pipeline parallelism only passes activations between cards once per stage, far less traffic "
            "than tensor parallelism",
            "speed: higher latency per request", "speed",
        ))
    return fixes


def fixes_port(s: Situation, d: dict[str, Any]) -> list[Fix]:
    port = d.get("port") or s.args.get("port") or 8000
    try:
        port = int(port)
    except (TypeError, ValueError):
        return []
    return [_fix(
        s, {"port": port + 1},
        f"port {port} is already taken by another process on this host",
        f"none, but clients (and any published port mapping) must use {port + 1}", "none",
    )]


def fixes_bad_argument(s: Situation, d: dict[str, Any], usage_flags: set[str]) -> list[Fix]:
    if d.get("derived_len"):
        derived = int(d["derived_len"])
        return [_fix(
            s, {"max-model-len": derived},
            f"the model's config.json allows at most {derived:,} tokens; {int(d['user_len']):,} was asked",
            f"context: {int(d['user_len']):,} → {derived:,} tokens", "context",
        )]
    unknown = d.get("unrec") or d.get("arg")
    if unknown and usage_flags:
        name = unknown.split()[0].lstrip("-")
        hint = did_you_mean(name, usage_flags)
        if hint:
            close = hint.split("'")[1]
            return [Fix(changes={}, why=f"--{name} is not a vLLM flag{hint}: rename it to --{close}",
                        cost="none", cost_kind="none")]
    return []


# --- for the retry loops (make up AUTO_FIX=1, fab up --auto-fix) -------------------------
def first_fix(diagnosis: Any) -> dict[str, Any]:
    """The changes of the best fix that has any (what an auto-fix retry applies), or {}.

    {} means no launch flag fixes this failure (missing files, an unknown flag with no close
    match, a start that succeeded): the caller should stop and print the explanation."""
    for fix in getattr(diagnosis, "fixes", None) or []:
        if fix.changes:
            return dict(fix.changes)
    return {}
