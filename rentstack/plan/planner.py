"""plan(): reproduce vLLM's startup memory accounting for one launch, per GPU rank.

Per pipeline stage (all TP ranks of a stage are alike) the budget is
  requested = total · gpu_memory_utilization
  available KV = requested − weights − activation peak − non-torch − [CUDA graphs, ≥0.20]
then blocks, tokens and concurrency follow vLLM's KV-cache arithmetic, and the verdicts
vLLM gives at startup are checked in the order it checks them. The stage with the fewest
KV blocks limits the server (vLLM takes the minimum over workers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rentstack.errors import RentstackError
from rentstack.plan import accounting, band as band_mod, kv, measured as measured_mod, weights
from rentstack.plan.accounting import GiB, Rules
from rentstack.plan.arch import ModelArch
from rentstack.plan.cards import capabilities
from rentstack.plan.measured import Measured
from rentstack.plan.params import Hardware, LaunchParams
from rentstack.plan.rules import parse_version, rules_for

# CUDA context + allocator state present before vLLM's init snapshot (not charged to the
# budget from 0.9.1, but it lowers the free memory the startup check sees). Measured on
# H100: 79.19 total → 78.68 free with one GPU, 77.1–77.7 with TP 2/4 (NCCL communicators).
CONTEXT_SINGLE_GIB = 0.5
CONTEXT_MULTI_GIB = 1.6

# What the eras that charge the whole device (Rules.caps_whole_gpu) count as non-torch:
# everything on the card that torch has not allocated, measured after the profile run.
# One process on an Ampere consumer card: 0.35 GiB (RTX 3090, V0 0.6.4, record c01/#1 —
# the CUDA context, smaller than a Hopper's). With TP: 1.6 GiB, the device-wide figure
# measured on H100 TP2/4 at init and again on the seed's 2× RTX 3080 at 0.8.5
# (10.0 budget − 2.61 weights − 0.37 activation − 5.43 KV logged, record c05): there it
# also holds the allocator segments that cpu_offload's load-then-copy leaves behind.
WHOLE_DEVICE_SINGLE_CONSUMER_GIB = 0.35
WHOLE_DEVICE_MULTI_GIB = CONTEXT_MULTI_GIB

# After the KV cache is allocated vLLM captures CUDA graphs and warms the sampler up again.
# What is left must hold the sampler's buffers plus allocations the graph capture makes
# outside its pool (and the fragmentation it leaves), taken as this fraction of the pool.
# Calibrated on the 0.19 logs: gpt-oss-20b TP2 at util 0.95 OOMed with ~0.5 GiB to spare
# after a 1.55 GiB pool; Llama-3.3-70B TP2 ran with ~0.8 GiB after a 1.8 GiB pool.
WARMUP_RESERVE_OF_GRAPHS = 0.4


@dataclass
class Plan:
    """What vLLM will do with this model, card and flags. Figures are GiB per GPU of the limiting stage."""

    weights_gib: float
    activation_gib: float
    non_torch_gib: float
    cuda_graph_gib: float
    available_kv_gib: float
    kv_cache_tokens: int
    max_concurrency: float
    fits: bool
    error: str | None
    fix: str | None
    resolved: LaunchParams
    per_gpu: list[dict[str, Any]]
    gpu_mem_gib: float = 0.0
    requested_gib: float = 0.0
    free_gib: float = 0.0
    headroom_gib: float = 0.0
    """Memory left on the card after vLLM's budget: (free at start − requested)."""
    cuda_graphs_budgeted: bool = False
    kv_bytes_per_token: int = 0
    num_blocks: int = 0
    max_model_len_fit: int = 0
    """Largest max_model_len one request could use with this KV memory."""
    cpu_offload_host_gib: float = 0.0
    """Host RAM the offloaded weights take (all GPUs)."""
    verdict: str = ""
    """"ok", "free_memory", "no_kv_memory", "max_model_len", "cuda_oom_risk"."""
    warmup_short_gib: float = 0.0
    """How much the post-KV warm-up (graphs + sampler) lacks; > 0 means cuda_oom_risk."""
    warnings: list[str] = field(default_factory=list)
    vllm_version: str = ""
    cuda_graph_budget_gib: float = 0.0
    """CUDA-graph memory subtracted before the KV cache (≥0.20, graphs on; else 0)."""
    measured_fields: tuple[str, ...] = ()
    """Figures taken from a real start instead of the model: weights, activation, non_torch,
    activation+non_torch, cuda_graphs."""
    measured_from: str = ""
    """The calibration offered: '<card>, vLLM <version>, <model>' ('' = none)."""
    measured_saved: str = ""
    """When that calibration was saved (ISO date)."""
    measured_notes: list[str] = field(default_factory=list)
    """Measured figures scaled to this launch, or not reused and why."""
    kv_cache_tokens_low: int = 0
    """KV tokens at the error band's low end: the point estimate less the worst
    over-prediction the planner made on fit records of this segment (see plan.band)."""
    kv_cache_tokens_high: int = 0
    """KV tokens at the band's high end (the worst under-prediction)."""
    available_kv_gib_low: float = 0.0
    available_kv_gib_high: float = 0.0
    band_source: str = ""
    """Which residuals the band comes from: a segment and its fit records, or a calibration."""
    band_segment: tuple[str, ...] = ()
    """card family, accounting era, quantization, parallel layout (plan.band.segment)."""
    max_model_len_fit_low: int = 0
    """Largest max_model_len one request could use at the band's low end."""
    max_concurrency_low: float = 0.0
    """Full-length requests at once at the band's low end."""
    fits_low: bool = True
    """One max_model_len request still fits when the KV cache is at the band's low end."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["resolved"] = self.resolved.to_dict()
        d["measured"] = list(d.pop("measured_fields"))
        return d


def _gib(x: float) -> float:
    return x / GiB


def resolve(arch: ModelArch, hw: Hardware, p: LaunchParams, *, allow_long_max_model_len: bool = False) -> LaunchParams:
    """Validate the flags and fill every None with vLLM's default for that version and card."""
    rules = rules_for(p.vllm_version, pre_ampere=hw.card.pre_ampere)
    hw.check()
    p.check()  # every set value within the bounds LaunchParams declares
    if arch.num_heads % p.tp:
        divisors = [d for d in range(1, arch.num_heads + 1) if arch.num_heads % d == 0 and d <= max(8, p.tp)]
        raise RentstackError(
            f"tp {p.tp} does not divide the model's {arch.num_heads} attention heads; "
            f"use a tp among {', '.join(map(str, divisors))}"
        )
    if p.pp > arch.num_layers:
        raise RentstackError(f"pp {p.pp} is more than the model's {arch.num_layers} layers; lower pp")
    if p.tp * p.pp > hw.gpus:
        raise RentstackError(
            f"tp {p.tp} × pp {p.pp} needs {p.tp * p.pp} GPUs; the host has {hw.gpus} — lower tp/pp or rent more cards"
        )
    util = rules.default_gpu_memory_utilization if p.gpu_memory_utilization is None else float(
        p.gpu_memory_utilization)
    limit = arch.max_position_embeddings
    mlen = limit if p.max_model_len is None else int(p.max_model_len)
    if mlen > limit and not allow_long_max_model_len:
        raise RentstackError(
            f"max_model_len {mlen} is above the model's limit {limit} (max_position_embeddings); "
            f"lower it to ≤ {limit}, or override with VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 (--allow-long-max-model-len)"
        )
    d_mnbt, d_seqs = rules.batch_defaults(hw.gpu_mem_gib, hw.card.small_batch_defaults)
    seqs = d_seqs if p.max_num_seqs is None else int(p.max_num_seqs)
    if rules.engine == "v0":
        # V0 profiles a whole max_model_len prompt, except that it turns chunked prefill on
        # (2048-token steps) for contexts above 32K.
        default = 2048 if mlen > 32768 else max(mlen, 2048)
        mnbt = default if p.max_num_batched_tokens is None else int(p.max_num_batched_tokens)
    else:
        mnbt = d_mnbt if p.max_num_batched_tokens is None else int(p.max_num_batched_tokens)
    if mnbt < seqs and p.max_num_batched_tokens is not None and p.max_num_seqs is not None:
        raise RentstackError(
            f"max_num_batched_tokens {mnbt} is smaller than max_num_seqs {seqs}; raise it to ≥ {seqs}"
        )
    # 16 on CUDA; MLA models on Hopper/Blackwell run FlashMLA, which needs 64-token blocks.
    flashmla = arch.family == "mla" and hw.card.flashmla
    block = p.block_size if p.block_size is not None else (64 if flashmla else 16)
    kv.kv_elem_bytes(p.kv_cache_dtype, 2)  # validates the name
    weights.resolve_dtype(arch, p.dtype)
    weights.quant_method(arch, p.quantization)
    return p.with_(gpu_memory_utilization=util, max_model_len=mlen, max_num_seqs=seqs,
                   max_num_batched_tokens=mnbt, block_size=block)


def activation_bytes(arch: ModelArch, p: LaunchParams, rules: Rules, dt: int, last_stage: bool,
                     quant: str | None = None, card: str = "", offloaded_layer: float = 0.0) -> float:
    """Peak of the profile run beyond the weights: forward transients for
    max_num_batched_tokens tokens, or the dummy sampler over min(max_num_seqs, tokens)
    requests × vocab (fp32 logits, top-k/top-p), whichever is larger, plus the hidden states
    that live through both.

    Quantized kernels add what they dequantize during the prefill: one fp16 copy of the
    largest linear for AWQ/GPTQ without Marlin (pre-Ampere cards) and for bitsandbytes 4-bit
    (bitsandbytes dequantizes each shard for multi-token inputs). V0 with cpu_offload_gb
    copies one layer's offloaded weights to the GPU for each forward (functional_call), so
    that copy is in the peak too; V1 reads them through UVA views instead."""
    t = p.max_num_batched_tokens
    reqs = min(p.max_num_seqs, t)
    tp = p.tp
    if arch.num_experts:
        n = arch.moe_intermediate_size / tp
        # fused_moe caches: [T·topk, 2N], [T·topk, N], [T·topk, hidden]; ×1.4 for routing
        # and alignment buffers (Mixtral-8x7B TP2, 0.19: 1.21 GiB logged).
        fwd = 1.4 * t * max(arch.num_experts_per_tok, 1) * dt * (3 * n + arch.hidden_size)
        if arch.intermediate_size and arch.num_dense_layers:
            fwd = max(fwd, t * dt * 3 * arch.intermediate_size / tp)
    else:
        fwd = t * dt * arch.mlp_matrices * arch.intermediate_size / tp  # gate_up output (2·I) + activation (I)
    # The dequantized weight is alive during its own matmul, whose output (gate_up: all but
    # one of the MLP's intermediate-sized tensors) is being written; the activation's output
    # comes after it is freed. So the peak is the larger of the two moments.
    inter = max(arch.intermediate_size, arch.hidden_size) / tp
    up_out = t * dt * (arch.mlp_matrices - 1) * arch.intermediate_size / tp
    shard = arch.hidden_size * inter * 2  # one fp16 shard of the merged gate_up
    if not arch.num_experts and quant == "bitsandbytes":
        fwd = max(fwd, up_out + shard)
    elif not arch.num_experts and quant in ("awq", "gptq") and t >= 256 and capabilities(card).pre_ampere:
        # Cards before Ampere have no Marlin kernels: AWQ/GPTQ fall back to kernels that
        # dequantize the whole weight to fp16 for prompts of ≥256 tokens (vLLM awq.py
        # FP16_MATMUL_HEURISTIC_CONDITION), which the profile run's prefill hits.
        fwd = max(fwd, up_out + shard * (arch.mlp_matrices - 1))
    if rules.engine == "v0":
        fwd += offloaded_layer
    sampler = reqs * arch.vocab_size * rules.sampler_bytes if last_stage else 0.0
    # Hidden states alive through the MLP: residual and hidden; V0 runs the layers eagerly,
    # so the RMSNorm output is a third copy (V1's compiled graph fuses add + norm). The V0
    # profile of Llama-3.1-8B on an RTX 3090 logged 2.07 / 2.99 GiB at 20000 / 29000 tokens
    # = (3·hidden + 3·intermediate) × 2 B per token (records c01, c02).
    keep = (3 if rules.engine == "v0" else 2) * t * arch.hidden_size * dt
    return max(fwd, sampler) + keep


def non_torch_bytes(rules: Rules, hw: Hardware, world: int) -> float:
    """Non-torch memory vLLM charges to the budget, per rank.

    Eras that charge the whole device count everything torch has not allocated (the CUDA
    context included); the others only what grew after the init snapshot: cuBLAS and
    attention workspaces, plus NCCL buffers with TP/PP (and vLLM's custom all-reduce on NVLink)."""
    if rules.caps_whole_gpu:
        if world > 1:
            return WHOLE_DEVICE_MULTI_GIB * GiB
        return (CONTEXT_SINGLE_GIB if hw.nvlink else WHOLE_DEVICE_SINGLE_CONSUMER_GIB) * GiB
    nt = rules.non_torch_single_gib
    if world > 1:
        nt += rules.non_torch_nvlink_gib if hw.nvlink else rules.non_torch_pcie_gib
    return nt * GiB


def cuda_graph_bytes(arch: ModelArch, p: LaunchParams, layers: int, quant: str | None) -> float:
    """CUDA-graph pool of one rank. Measured on 0.19 (max_num_seqs 1024 → 51 sizes up to
    512): 0.64–0.98 GiB for 28–40 layer models, 1.5–1.85 GiB for 80 layers; MXFP4 MoE
    kernels add ~0.7 GiB of per-graph workspace (gpt-oss-20b: 1.55 GiB for 24 layers)."""
    if p.enforce_eager:
        return 0.0
    n_sizes = len(accounting.cuda_graph_sizes(p.max_num_seqs))
    full = len(accounting.cuda_graph_sizes(1024))
    scale = 0.35 + 0.65 * n_sizes / full
    gib = (0.45 + 0.0155 * layers) * scale
    if quant == "mxfp4":
        gib += 0.7 * scale
    return gib * GiB


def sampler_warmup_bytes(arch: ModelArch, p: LaunchParams, rules: Rules) -> float:
    """The sampler warm-up after graph capture runs max_num_seqs dummy requests."""
    return min(p.max_num_seqs, p.max_num_batched_tokens) * arch.vocab_size * rules.sampler_bytes


def _measured_launch(arch: ModelArch, hw: Hardware, p: LaunchParams, m: Measured) -> tuple[LaunchParams | None, str]:
    """The launch the figures came from, resolved like `p` (same card): or None and why not."""
    mp = m.params or LaunchParams(vllm_version=p.vllm_version)
    if parse_version(mp.vllm_version) != parse_version(p.vllm_version):
        return None, f"measured with vLLM {mp.vllm_version}, this plan is for {p.vllm_version} — not reused"
    try:
        # The start may have used more cards (its weights are still scaled to this layout).
        on = replace(hw, gpus=max(hw.gpus, mp.tp * mp.pp))
        return resolve(arch, on, mp, allow_long_max_model_len=True), ""
    except RentstackError as exc:
        return None, f"the measured launch does not apply to this model and card ({exc}) — not reused"


def plan(arch: ModelArch, hw: Hardware, params: LaunchParams | None = None, *,
         allow_long_max_model_len: bool = False, measured: Measured | None = None) -> Plan:
    """Predict vLLM's startup for this model, card and flags (pure; no I/O).

    measured: figures from a real start of this (card, version, model); each replaces the
    model's figure where it carries over to these flags (see rentstack.plan.measured)."""
    p = resolve(arch, hw, params or LaunchParams(), allow_long_max_model_len=allow_long_max_model_len)
    rules = rules_for(p.vllm_version, pre_ampere=hw.card.pre_ampere)
    dt = weights.resolve_dtype(arch, p.dtype)
    quant = weights.quant_method(arch, p.quantization)
    total = hw.gpu_mem_gib * GiB
    world = p.tp * p.pp
    context = (CONTEXT_SINGLE_GIB if world == 1 else CONTEXT_MULTI_GIB) * GiB
    measured_free = hw.free_mem_gib is not None
    free = hw.free_mem_gib * GiB if measured_free else total - context
    requested = total * p.gpu_memory_utilization
    others = max(0.0, total - free - context) if measured_free else 0.0

    stages = weights.stage_weights(arch, p.tp, p.pp, quant, p.dtype, rules.mxfp4_expert_pad)
    split = [s.layers for s in stages]
    layouts = kv.stage_layouts(arch, p.tp, split, p.kv_cache_dtype, p.block_size, dt)
    nt = non_torch_bytes(rules, hw, world)
    offload = p.cpu_offload_gb * GiB
    cg_model = [cuda_graph_bytes(arch, p, st.layers, quant) for st in stages]
    use = measured_mod.Applied()
    if measured is not None:
        mp, why = _measured_launch(arch, hw, p, measured)
        if mp is None:
            use.notes.append(why)
        else:
            quant_m = weights.quant_method(arch, mp.quantization)
            cg_ref = max(cuda_graph_bytes(arch, mp, n, quant_m) for n in weights.pp_layer_split(arch.num_layers, mp.pp))
            use = measured_mod.apply(measured, arch, p, mp, [st.total_bytes for st in stages], nt, cg_model, cg_ref)
    nt = nt if use.non_torch is None else use.non_torch

    per_gpu: list[dict[str, Any]] = []
    for i, (st, lay) in enumerate(zip(stages, layouts)):
        last = st.stage == p.pp - 1
        moved = min(offload, st.decoder_bytes)
        w = (st.total_bytes if use.weights is None else use.weights[i]) - moved
        layer_share = min(moved, st.decoder_bytes / max(st.layers, 1))
        act = (activation_bytes(arch, p, rules, dt, last, quant, hw.name, layer_share) if use.activation is None
               else use.activation)
        cg = cg_model[i] if use.cuda_graphs is None else use.cuda_graphs[i]
        budget_cg = cg if use.cuda_graph_budget is None else use.cuda_graph_budget[i]
        budget_cg = budget_cg if (rules.budgets_cuda_graphs and not p.enforce_eager) else 0.0
        avail = requested - w - act - nt - budget_cg
        if rules.caps_whole_gpu:
            avail -= others  # ≤0.9.0: memory of other processes counts against utilization
        blocks = lay.num_blocks(avail)
        per_gpu.append(dict(
            stage=st.stage, layers=st.layers, weights_gib=_gib(w), offloaded_gib=_gib(moved),
            activation_gib=_gib(act), non_torch_gib=_gib(nt), cuda_graph_gib=_gib(cg),
            cuda_graphs_budgeted=bool(budget_cg), available_kv_gib=_gib(avail), num_blocks=blocks,
            _budget=budget_cg,
            kv_bytes_per_token=lay.bytes_per_token, _layout=lay,
        ))
    lim = min(per_gpu, key=lambda g: (g["num_blocks"], g["available_kv_gib"]))
    lay: kv.KVLayout = lim.pop("_layout")
    budget_gib = _gib(lim["_budget"])
    for g in per_gpu:
        g.pop("_layout", None)
        g.pop("_budget", None)
    avail = lim["available_kv_gib"] * GiB
    blocks = lim["num_blocks"]
    mlen, mnbt = p.max_model_len, p.max_num_batched_tokens
    tokens = lay.tokens(blocks, mlen, mnbt, rules.tokens_from_concurrency)
    conc = lay.concurrency(blocks, mlen, mnbt)
    fit_len = lay.max_model_len_for(avail, max(arch.max_position_embeddings, mlen), mnbt)
    fit_len = fit_len // p.block_size * p.block_size

    plan_ = Plan(
        weights_gib=lim["weights_gib"], activation_gib=lim["activation_gib"], non_torch_gib=lim["non_torch_gib"],
        cuda_graph_gib=lim["cuda_graph_gib"], available_kv_gib=lim["available_kv_gib"],
        kv_cache_tokens=tokens, max_concurrency=round(conc, 2), fits=True, error=None, fix=None,
        resolved=p, per_gpu=per_gpu, gpu_mem_gib=hw.gpu_mem_gib, requested_gib=_gib(requested),
        free_gib=_gib(free), headroom_gib=_gib(free - requested),
        cuda_graphs_budgeted=lim["cuda_graphs_budgeted"], kv_bytes_per_token=lay.bytes_per_token,
        num_blocks=blocks, max_model_len_fit=fit_len,
        cpu_offload_host_gib=sum(g["offloaded_gib"] for g in per_gpu) * p.tp,
        verdict="ok", vllm_version=rules.label, cuda_graph_budget_gib=budget_gib,
        measured_fields=tuple(use.fields), measured_notes=list(use.notes),
        measured_from=measured.source if measured else "", measured_saved=measured.saved if measured else "",
    )
    if arch.family == "fallback":
        plan_.warnings.append(
            f"architecture {arch.architecture} is not modelled: weights estimated as a dense model +15%"
        )
    if arch.extra_params:
        # vLLM profiles a multimodal model with dummy images/videos of the largest size its
        # processor allows and keeps the encoder's outputs alive through the language model's
        # dummy forward (gpu_model_runner.profile_run). How many tokens that is depends on the
        # processor's limits, which config.json does not hold, so it is not in the figures above.
        plan_.warnings.append(
            "the vision encoder's profile run is not modelled: vLLM holds its outputs for the whole encoder "
            "budget during profiling (2.75 GiB per GPU for Qwen3-VL-30B-A3B at tp 4 on 0.11, dev record c28), "
            "so the KV figures can be that much too high; serving text only, pass "
            "--limit-mm-per-prompt '{\"image\": 0, \"video\": 0}' (vLLM then skips that profile)"
        )
    if offload and offload > max(s.decoder_bytes for s in stages):
        plan_.warnings.append(
            f"cpu_offload_gb {p.cpu_offload_gb} is more than the decoder weights per GPU "
            f"({_gib(max(s.decoder_bytes for s in stages)):.1f} GiB); the rest is unused"
        )
    _band(plan_, arch, hw, p, rules, lay, quant, use, measured)
    _verdicts(plan_, arch, hw, p, rules, lay, free, requested)
    return plan_


def _fully_calibrated(use: measured_mod.Applied, graphs_budgeted: bool) -> bool:
    """Every non-KV figure of the budget came from the calibration as measured (none scaled)."""
    f = set(use.fields)
    non_kv = "activation+non_torch" in f or {"activation", "non_torch"} <= f
    graphs = not graphs_budgeted or "cuda_graphs" in f
    # A note on weights, activation or non-torch means a figure was scaled or not reused;
    # CUDA-graph notes matter only when the graphs are in the budget.
    kept = ("weights", "activation", "non-torch") + (("cuda graphs",) if graphs_budgeted else ())
    return "weights" in f and non_kv and graphs and not any(n.startswith(kept) for n in use.notes)


def _band(pl: Plan, arch: ModelArch, hw: Hardware, p: LaunchParams, rules: Rules, lay: kv.KVLayout,
          quant: str | None, use: measured_mod.Applied, measured: Measured | None) -> None:
    """Attach the error band: the segment's fit residuals, or a calibration's own spread."""
    key = band_mod.segment(hw.name, hw.nvlink, rules.engine, rules.caps_whole_gpu, quant is not None, p.tp * p.pp)
    pl.band_segment = key
    if measured is not None and _fully_calibrated(use, pl.cuda_graphs_budgeted):
        b = band_mod.calibrated(max(pl.available_kv_gib, 0.0), measured.source)
    else:
        b = band_mod.band_for(key)
    block = p.block_size
    pl.band_source = b.source
    kv_gib = max(pl.available_kv_gib, 0.0)
    lo, hi = b.low_factor(kv_gib), b.high_factor(kv_gib)
    pl.kv_cache_tokens_low = band_mod.low_tokens(pl.kv_cache_tokens, b, block, kv_gib)
    pl.kv_cache_tokens_high = band_mod.high_tokens(pl.kv_cache_tokens, b, block, kv_gib)
    pl.available_kv_gib_low = pl.available_kv_gib * lo if pl.available_kv_gib > 0 else pl.available_kv_gib
    pl.available_kv_gib_high = pl.available_kv_gib * hi if pl.available_kv_gib > 0 else pl.available_kv_gib
    pl.max_concurrency_low = round(pl.max_concurrency * lo, 2)
    avail_low = max(0.0, pl.available_kv_gib_low) * GiB
    mlen, mnbt = p.max_model_len, p.max_num_batched_tokens
    fit_low = lay.max_model_len_for(avail_low, max(arch.max_position_embeddings, mlen), mnbt)
    pl.max_model_len_fit_low = fit_low // block * block
    pl.fits_low = avail_low > 0 and lay.request_bytes(mlen, mnbt) <= avail_low


def _fail(plan_: Plan, verdict: str, error: str, fix: str) -> None:
    plan_.fits, plan_.verdict, plan_.error, plan_.fix = False, verdict, error, fix


def _verdicts(pl: Plan, arch: ModelArch, hw: Hardware, p: LaunchParams, rules: Rules,
              lay: kv.KVLayout, free: float, requested: float) -> None:
    """vLLM's startup checks, in the order vLLM runs them."""
    total = hw.gpu_mem_gib * GiB
    util = p.gpu_memory_utilization
    if rules.checks_free_memory and free < requested:
        max_util = int((free / total) * 100) / 100
        _fail(pl, "free_memory",
              f"Free memory on device ({_gib(free):.2f}/{_gib(total):.2f} GiB) on startup is less than desired "
              f"GPU memory utilization ({util}, {_gib(requested):.2f} GiB)",
              f"lower gpu_memory_utilization to {max_util:.2f} or free the card "
              f"({_gib(total - free):.2f} GiB is already in use)")
        return
    avail = pl.available_kv_gib * GiB
    mlen = p.max_model_len
    if avail <= 0 or pl.num_blocks == 0:
        need = pl.weights_gib + pl.activation_gib + pl.non_torch_gib + pl.cuda_graph_budget_gib
        util_needed = (need + 1.0) / hw.gpu_mem_gib
        hint = (f"raise gpu_memory_utilization to {util_needed:.2f}" if util_needed <= 0.95 else
                f"spread the weights (tp {p.tp * 2}), use a quantized checkpoint, or set cpu_offload_gb "
                f"≥ {max(1.0, need + 1.0 - rules.default_gpu_memory_utilization * hw.gpu_mem_gib + p.cpu_offload_gb):.0f}")
        _fail(pl, "no_kv_memory",
              "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
              f"initializing the engine. (weights {pl.weights_gib:.2f} + activation {pl.activation_gib:.2f} + "
              f"non-torch {pl.non_torch_gib:.2f} GiB leave {pl.available_kv_gib:.2f} GiB of {pl.requested_gib:.2f})",
              hint)
        return
    need = lay.request_bytes(mlen, p.max_num_batched_tokens)
    if need > avail:
        est = pl.max_model_len_fit
        _fail(pl, "max_model_len",
              f"To serve at least one request with the models's max seq len ({mlen}), "
              f"({_gib(need):.2f} GiB KV cache is needed, which is larger than the available KV cache memory "
              f"({_gib(avail):.2f} GiB). Based on the available memory, the estimated maximum model length is {est}.",
              f"lower max_model_len to {est}, raise gpu_memory_utilization, or use kv_cache_dtype fp8")
        return
    # After the KV cache: CUDA-graph capture (when not budgeted) and the sampler warm-up
    # must fit in what the profile freed plus the headroom outside the budget.
    left = free - requested + pl.activation_gib * GiB + pl.cuda_graph_budget_gib * GiB
    left -= pl.cuda_graph_gib * GiB
    warm = sampler_warmup_bytes(arch, p, rules) if rules.engine == "v1" else 0.0
    reserve = WARMUP_RESERVE_OF_GRAPHS * pl.cuda_graph_gib * GiB
    short = warm + reserve - left
    pl.warmup_short_gib = max(0.0, _gib(short))
    if short > 0:
        new_util = int(((requested - short) / total) * 100) / 100
        what = "CUDA-graph capture" if not warm else (
            "the sampler warm-up" if not pl.cuda_graph_gib else "CUDA-graph capture and the sampler warm-up")
        _fail(pl, "cuda_oom_risk",
              f"CUDA out of memory risk: after the KV cache, {what} need "
              f"{pl.cuda_graph_gib + _gib(warm + reserve):.2f} GiB but only {_gib(left) + pl.cuda_graph_gib:.2f} GiB "
              f"is outside the KV cache",
              f"lower gpu_memory_utilization to {new_util:.2f}, lower max_num_seqs, or set enforce_eager")
