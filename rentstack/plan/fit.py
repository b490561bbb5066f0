"""fit(): choose the memory-related vLLM flags for a model on given cards, and say why.

The goal by default is the model's full context at ≥4 concurrent full-length requests;
failing that, the longest context one request can use. Every choice runs through plan(),
so a fitted configuration is one the planner predicts vLLM will start with — and it is
chosen against the error band's low end (Plan.kv_cache_tokens_low), not the point estimate:
a card that behaves like the worst start of its segment still starts. With a calibration
of this very card the band is the calibration's own spread, so the fit uses the measured figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from rentstack.errors import RentstackError
from rentstack.plan.arch import ModelArch
from rentstack.plan.measured import Measured
from rentstack.plan.params import Hardware, LaunchParams
from rentstack.plan.planner import Plan, plan
from rentstack.plan.rules import rules_for

# Host→GPU bandwidth that bounds decoding with offloaded weights (PCIe 4.0 x16 in practice).
# The 7gb seed measured 0.4 tokens/s with 60 GiB offloaded: 25 / 60 ≈ 0.42.
PCIE_GBPS = 25.0



@dataclass(frozen=True)
class Goal:
    """What the fit maximises."""

    min_context: int | None = None
    """Context every request should be able to use; None = the model's full context."""
    min_concurrency: int = 4
    """Full-length requests that should fit in the KV cache at once."""
    allow_fp8_kv: bool = True
    """May store the KV cache in fp8 (halves its size; tiny quality cost) on cards with FP8."""
    allow_cpu_offload: bool = True
    """May keep weights in host RAM when they do not fit (slow: PCIe-bound)."""


@dataclass
class Fit:
    """The chosen flags, the plan they give, and why."""

    params: LaunchParams
    plan: Plan
    reasons: dict[str, str] = field(default_factory=dict)
    alternatives: list[str] = field(default_factory=list)
    goal_met: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params.to_dict(), "vllm": self.params.to_flags(), "plan": self.plan.to_dict(),
                "reasons": dict(self.reasons), "alternatives": list(self.alternatives), "goal_met": self.goal_met}


def _tp_choices(arch: ModelArch, gpus: int) -> list[int]:
    return [t for t in (1, 2, 4, 8, 16) if t <= gpus and arch.num_heads % t == 0]


def _round_len(n: int, block: int) -> int:
    """Round a context length down to a friendly multiple (1024 above 4k, else the block size)."""
    step = 1024 if n >= 4096 else block
    return max(block, n // step * step)


def fit(arch: ModelArch, hw: Hardware, goal: Goal | None = None, fixed: dict[str, Any] | None = None,
        measured: Measured | None = None) -> Fit:
    """Choose tp/pp, utilization, context, batch sizes, eager mode, KV dtype and CPU offload.

    fixed: the values that are not the fit's to choose, under vLLM flag or field names
    (LaunchParams.flags_to_fields); measured: figures from a real start of this (card,
    version, model); every candidate is planned with them (each figure is used only where it
    carries over, see plan())."""
    goal = goal or Goal()
    hw.check()
    fx = LaunchParams.flags_to_fields(fixed)
    reasons: dict[str, str] = {}
    version = str(fx.get("vllm_version") or LaunchParams().vllm_version)
    rules = rules_for(version, pre_ampere=hw.card.pre_ampere)  # refuses an unsupported version before any search
    limit = arch.max_position_embeddings
    want_ctx = min(goal.min_context or limit, limit)

    # tp / pp: use every card; TP first (it must divide the attention heads), PP for the rest.
    if "tp" in fx or "pp" in fx:
        tp, pp = int(fx.get("tp", 1)), int(fx.get("pp", 1))
        reasons["tp"] = f"tp {tp} × pp {pp}: set by the tier"
    else:
        tps = _tp_choices(arch, hw.gpus)
        tp = max(tps)
        pp = hw.gpus // tp if hw.gpus // tp <= arch.num_layers else 1
        reasons["tp"] = ("tp 1: one card" if tp * pp == 1 else
                         f"tp {tp}" + (f" × pp {pp}" if pp > 1 else "") +
                         f": spreads weights and KV over all {tp * pp} cards"
                         + ("" if tp == hw.gpus else f" (tp must divide {arch.num_heads} heads)"))
    world = tp * pp

    # gpu_memory_utilization: vLLM's default, or what the measured free memory allows.
    if "gpu_memory_utilization" in fx:
        util = float(fx["gpu_memory_utilization"])
        reasons["gpu_memory_utilization"] = f"{util}: set by the tier"
    elif hw.free_mem_gib is not None and hw.free_mem_gib < hw.gpu_mem_gib * 0.95:
        usable = hw.free_mem_gib - 0.25
        util = math.floor(max(usable, 0.05 * hw.gpu_mem_gib) / hw.gpu_mem_gib * 100) / 100
        reasons["gpu_memory_utilization"] = (
            f"{util}: only {hw.free_mem_gib:g} of {hw.gpu_mem_gib:g} GiB is free per card; vLLM refuses to start "
            "when free memory is below utilization × total, and 0.25 GiB stays for warm-up buffers")
    else:
        util = rules.default_gpu_memory_utilization
        reasons["gpu_memory_utilization"] = f"{util}: vLLM's default; the rest holds CUDA context and warm-up buffers"

    base = LaunchParams(vllm_version=version, tp=tp, pp=pp, gpu_memory_utilization=util)
    base = replace(base, **{k: v for k, v in fx.items() if k not in ("tp", "pp", "gpu_memory_utilization")})

    def run(**changes: Any) -> Plan | None:
        try:
            pl = plan(arch, hw, replace(base, **changes), measured=measured)
            if pl.verdict == "free_memory" and "gpu_memory_utilization" not in fx:
                # vLLM refuses to start when the budget is above what is free after the CUDA
                # context (0.92 × a TP2 RTX 3080 20GB leaves less than its context takes):
                # the largest utilization that passes the check.
                lower = math.floor(pl.free_gib / hw.gpu_mem_gib * 100) / 100
                if lower > 0:
                    changes = {**changes, "gpu_memory_utilization": lower}
                    pl = plan(arch, hw, replace(base, **changes), measured=measured)
            if pl.verdict == "cuda_oom_risk" and "gpu_memory_utilization" not in fx:
                # Leave the warm-up its room outside the budget: lower utilization just enough.
                lower = math.floor((pl.resolved.gpu_memory_utilization - (pl.warmup_short_gib + 0.05)
                                    / hw.gpu_mem_gib) * 100) / 100
                if lower > 0:
                    pl = plan(arch, hw, replace(base, **{**changes, "gpu_memory_utilization": lower}),
                              measured=measured)
            return pl
        except RentstackError:
            return None

    # Search space for the free choices, cheapest first (quality and speed before memory).
    eager_opts = [fx["enforce_eager"]] if "enforce_eager" in fx else [False, True]
    kv_opts = [fx["kv_cache_dtype"]] if "kv_cache_dtype" in fx else (
        ["auto", "fp8"] if goal.allow_fp8_kv and hw.card.fp8 else ["auto"])
    best: tuple[Plan, dict[str, Any]] | None = None
    target_ctx = int(fx["max_model_len"]) if "max_model_len" in fx else want_ctx
    for kvd in kv_opts:
        for eager in eager_opts:
            ch = {"kv_cache_dtype": kvd, "enforce_eager": eager}
            pl = run(max_model_len=target_ctx, **ch)
            if pl and pl.fits and pl.fits_low and pl.max_concurrency_low >= goal.min_concurrency:
                best = (pl, {**ch, "max_model_len": target_ctx})
                break
        if best:
            break
    met = best is not None
    if best is None and "max_model_len" not in fx:
        # Longest context at concurrency 1, taking the option that gives the most.
        cands = []
        for kvd in kv_opts:
            for eager in eager_opts:
                ch = {"kv_cache_dtype": kvd, "enforce_eager": eager}
                probe = run(max_model_len=min(target_ctx, 512), **ch)
                if probe is None or probe.verdict not in ("ok", "max_model_len"):
                    continue
                n = _round_len(min(probe.max_model_len_fit_low, target_ctx), probe.resolved.block_size)
                pl = run(max_model_len=n, **ch)
                if pl and pl.fits and pl.fits_low:
                    cands.append((n, kvd != "auto", eager, pl, {**ch, "max_model_len": n}))
        if cands:
            cands.sort(key=lambda c: (-c[0], c[1], c[2]))
            best = (cands[0][3], cands[0][4])
    elif best is None:
        # max_model_len is fixed: take the option that starts with the most concurrency.
        fitting = []
        for kvd in kv_opts:
            for eager in eager_opts:
                ch = {"kv_cache_dtype": kvd, "enforce_eager": eager, "max_model_len": target_ctx}
                pl = run(**ch)
                if pl and pl.fits:
                    # Options that start even at the band's low end first.
                    fitting.append((pl.fits_low, pl.max_concurrency_low, pl, ch))
        if fitting:
            fitting.sort(key=lambda c: (not c[0], -c[1]))
            best = (fitting[0][2], fitting[0][3])
    offload = float(fx.get("cpu_offload_gb", 0.0))
    if best is None and goal.allow_cpu_offload and "cpu_offload_gb" not in fx:
        # Weights do not fit: move decoder layers to host RAM until 1 GiB of KV cache remains.
        eager = bool(fx.get("enforce_eager", True))  # graphs would only take room from the KV cache
        probe = run(max_model_len=min(target_ctx, 2048), enforce_eager=eager)
        if probe is not None:
            short = -probe.available_kv_gib_low + 1.0 + probe.kv_bytes_per_token * min(target_ctx, 2048) / 2**30
            offload = math.ceil(max(short, 1.0))
            ctx = min(target_ctx, 2048)
            pl = run(max_model_len=ctx, enforce_eager=eager, cpu_offload_gb=float(offload))
            if pl and pl.fits and pl.fits_low:
                n = target_ctx if "max_model_len" in fx else _round_len(
                    min(pl.max_model_len_fit_low, target_ctx), pl.resolved.block_size)
                pl = run(max_model_len=n, enforce_eager=eager, cpu_offload_gb=float(offload)) or pl
                best = (pl, {"max_model_len": pl.resolved.max_model_len, "enforce_eager": eager,
                             "cpu_offload_gb": float(offload), "kv_cache_dtype": base.kv_cache_dtype})
    if best is None:
        shown = target_ctx if "max_model_len" in fx else min(target_ctx, 512)
        pl = plan(arch, hw, replace(base, max_model_len=shown), allow_long_max_model_len=True, measured=measured)
        out = Fit(params=pl.resolved, plan=pl, reasons=reasons, goal_met=False)
        out.alternatives = alternatives(arch, hw, pl, target_ctx, goal.min_concurrency, measured)
        reasons["verdict"] = f"nothing fits: {pl.fix or pl.error}"
        return out
    pl, ch = best
    p = pl.resolved
    # max_num_seqs: no more sequences than the KV cache can hold at ~512 tokens each.
    if "max_num_seqs" in fx:
        reasons["max_num_seqs"] = f"{p.max_num_seqs}: set by the tier"
    else:
        default_seqs = rules.batch_defaults(hw.gpu_mem_gib, hw.card.small_batch_defaults)[1]
        cap = max(8, 2 ** int(math.log2(max(pl.kv_cache_tokens_low // 512, 1))))
        seqs = min(p.max_num_seqs, cap)
        if seqs < p.max_num_seqs:
            tuned = run(**{**ch, "max_num_seqs": seqs})
            if tuned and tuned.fits and tuned.fits_low:
                pl, p = tuned, tuned.resolved
                longer = _round_len(min(pl.max_model_len_fit_low, target_ctx), p.block_size)
                if not met and "max_model_len" not in fx and longer > p.max_model_len:
                    again = run(**{**ch, "max_num_seqs": seqs, "max_model_len": longer})
                    if again and again.fits and again.fits_low:
                        pl, p = again, again.resolved
        reasons["max_num_seqs"] = (f"{p.max_num_seqs}: the KV cache holds about {pl.kv_cache_tokens_low // 512:,} "
                                   "requests of 512 tokens" + ("; fewer dummy requests also shrink the profile's "
                                   "sampler peak" if p.max_num_seqs < default_seqs else ""))
    full = p.max_model_len
    if "max_model_len" in fx:
        reasons["max_model_len"] = f"{full}: set by the tier"
    elif met:
        reasons["max_model_len"] = (f"{full}: the model's full context; the KV cache holds "
                                    f"{pl.max_concurrency_low:.1f} requests of that length at the band's low end")
    else:
        reasons["max_model_len"] = (f"{full}: the longest one request can use at the band's low end "
                                    f"({pl.kv_cache_tokens_low:,} KV tokens); the full {limit} at concurrency "
                                    f"{goal.min_concurrency} does not fit")
    reasons["band"] = band_reason(pl)
    reasons["kv_cache_dtype"] = ("fp8: halves KV bytes per token to reach the goal (card has FP8)"
                                 if p.kv_cache_dtype != "auto" else
                                 "auto (model dtype): enough room without quantizing the KV cache")
    reasons["enforce_eager"] = (
        f"true: CUDA graphs would take {plan_cg(arch, hw, p, measured):.2f} GiB the context needs" if p.enforce_eager and
        "enforce_eager" not in fx else ("set by the tier" if "enforce_eager" in fx else
                                       f"false: CUDA graphs ({pl.cuda_graph_gib:.2f} GiB) fit and speed decoding"))
    if p.gpu_memory_utilization != util:
        # run() lowers it for vLLM's free-memory check, then for the warm-up's room: say each that applied.
        why = []
        passes_check = math.floor(pl.free_gib / hw.gpu_mem_gib * 100) / 100
        if util * hw.gpu_mem_gib > pl.free_gib:
            why.append(f"vLLM refuses to start when utilization × total ({util * hw.gpu_mem_gib:.2f} GiB) is above "
                       f"the {pl.free_gib:.2f} GiB free after the CUDA context")
        if not why or p.gpu_memory_utilization < min(util, passes_check):
            why.append(f"CUDA-graph capture and the sampler warm-up need room in the {pl.headroom_gib:.2f} GiB left "
                       "outside vLLM's budget")
        reasons["gpu_memory_utilization"] = f"{p.gpu_memory_utilization}: lowered from {util}: " + "; and ".join(why)
    reasons["max_num_batched_tokens"] = (f"{p.max_num_batched_tokens}: " + (
        "set by the tier" if "max_num_batched_tokens" in fx else
        "vLLM's default for this card; chunked prefill splits longer prompts"))
    if p.cpu_offload_gb:
        host = p.cpu_offload_gb * world
        reasons["cpu_offload_gb"] = (
            f"{p.cpu_offload_gb:g}: the weights do not fit otherwise; needs {host:g} GiB of host RAM and decodes "
            f"at about {PCIE_GBPS / p.cpu_offload_gb:.1f} tokens/s (PCIe-bound)")
    else:
        reasons["cpu_offload_gb"] = "0: the weights fit on the GPU(s)"
    out = Fit(params=p, plan=pl, reasons=reasons, goal_met=met)
    if not met:
        out.alternatives = alternatives(arch, hw, pl, target_ctx, goal.min_concurrency, measured)
    return out


def band_reason(pl: Plan) -> str:
    """What planning against the band's low end costs, and where the band comes from."""
    point, low = pl.kv_cache_tokens, pl.kv_cache_tokens_low
    cost = (point - low) / point if point else 0.0
    return (f"planned against {low:,} KV tokens, the band's low end (point estimate {point:,}; "
            f"{point - low:,} tokens = {cost:.1%} kept as headroom) — {pl.band_source}")


def plan_cg(arch: ModelArch, hw: Hardware, p: LaunchParams, measured: Measured | None = None) -> float:
    try:
        return plan(arch, hw, replace(p, enforce_eager=False), measured=measured).cuda_graph_gib
    except RentstackError:
        return 0.0


def alternatives(arch: ModelArch, hw: Hardware, pl: Plan, context: int, concurrency: int,
                 measured: Measured | None = None) -> list[str]:
    """Nearest options toward the goal, with their numbers: a 4-bit checkpoint, more cards, CPU offload.

    The 4-bit alternative is another checkpoint, so measured figures are not passed to it."""
    out: list[str] = []
    p = replace(pl.resolved, max_model_len=context)
    if arch.quant_method is None and not p.quantization:
        q = replace(arch, quant_method="awq", quant_bits=4, quant_group_size=128)
        try:
            alt = plan(q, hw, p)
            out.append(f"an AWQ 4-bit checkpoint of this model: weights {alt.weights_gib:.1f} GiB per GPU, "
                       f"{alt.kv_cache_tokens:,} KV tokens, {alt.max_concurrency:.2f}× at {context}"
                       + ("" if alt.fits else f" — still fails ({alt.verdict})"))
        except RentstackError:
            pass
    for n in (2, 4, 8):
        if n <= p.tp * p.pp or arch.num_heads % n:
            continue
        try:
            probe = plan(arch, replace(hw, gpus=n), replace(p, tp=n, pp=1, cpu_offload_gb=0.0,
                                                           max_model_len=min(context, 1024)), measured=measured)
            if not probe.fits:
                continue
            n_ctx = min(context, probe.max_model_len_fit // 1024 * 1024 or probe.max_model_len_fit)
            alt = plan(arch, replace(hw, gpus=n), replace(probe.resolved, max_model_len=n_ctx), measured=measured)
        except RentstackError:
            continue
        if alt.fits:
            out.append(f"{n}× this card (tp {n}): {alt.available_kv_gib:.1f} GiB KV per GPU, "
                       f"{alt.kv_cache_tokens:,} tokens, {alt.max_concurrency:.2f}× at {n_ctx}")
            break
    # CPU offload: move enough weights to host RAM for the goal's KV cache (or one 8k request).
    stage_w = max(g["weights_gib"] for g in pl.per_gpu)
    for ctx, conc in ((context, concurrency), (min(context, 8192), 1)):
        need_kv = pl.kv_bytes_per_token * ctx * conc / 2**30
        gib = math.ceil(need_kv - pl.available_kv_gib + 0.5)
        if 0 < gib <= stage_w:
            out.append(f"cpu_offload_gb {gib}: room for {conc}× {ctx} tokens; needs {gib * p.tp * p.pp} GiB of "
                       f"host RAM and decodes at most ~{PCIE_GBPS / gib:.1f} tokens/s (weights stream over PCIe)")
            break
    return out
