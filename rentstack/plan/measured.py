"""Measured figures from a real start, and when the planner may use them instead of its model.

A calibration (rentstack.calibration) holds what one card did for one (card, vLLM
version, model). The planner's formulas are replaced by those numbers only where they carry
over to the launch being planned; everything here is pure and decides per figure:

- weights depend on the layout (tp, pp, cpu_offload_gb) and the format (dtype, quantization).
  Same layout and format: used as measured. Other layout, same format: the model's figure is
  scaled by measured / modelled at the measured layout (the model's bias is kept, the layout
  change is the model's). Other format: ignored (another checkpoint format or kernel).
- activation peak, and activation + non-torch, depend on max_num_batched_tokens and
  max_num_seqs (the profile run's size and dummy sampler) and on tp/pp: reused only when all
  match, single stage only (the log does not say which stage it was); otherwise the model.
- non-torch memory depends on tp/pp (NCCL and custom all-reduce buffers): reused when they match.
- CUDA graphs: none when enforce_eager. Otherwise the pool grows with the capture sizes
  (from max_num_seqs) and the layers per stage: same sizes and layout → as measured, else
  scaled by the model's ratio; another weight format → ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rentstack.plan import accounting, weights
from rentstack.plan.accounting import GiB
from rentstack.plan.arch import ModelArch
from rentstack.plan.params import LaunchParams
from rentstack.plan.rules import rules_for

FIELD_LABELS = {
    "weights": "weights", "activation": "activation", "non_torch": "non-torch",
    "activation+non_torch": "activation + non-torch", "cuda_graphs": "cuda graphs",
}
"""measured_fields name → the words the text output uses."""


@dataclass(frozen=True)
class Measured:
    """What one card did at startup (GiB per GPU, the limiting rank), and the launch it did it with."""

    weights_gib: float | None = None
    """'Model loading took X GiB' (largest rank)."""
    activation_gib: float | None = None
    """Activation peak of the profile run, when the log prints it."""
    non_torch_gib: float | None = None
    """Non-torch memory (CUDA context, NCCL buffers), when the log prints it."""
    non_kv_gib: float | None = None
    """Activation + non-torch together: utilization × total − weights − KV (− budgeted graphs)."""
    cuda_graph_gib: float | None = None
    """'Graph capturing finished … took X GiB'."""
    cuda_graph_budget_gib: float | None = None
    """≥0.20: the profiler's CUDA-graph estimate, which is what the KV budget subtracts."""
    params: LaunchParams | None = None
    """The launch the figures came from; None fields are vLLM's defaults for that card and
    version. None = all defaults of the planned version."""
    source: str = ""
    """Which record: '<card>, vLLM <version>, <model>'."""
    saved: str = ""
    """When the record was saved (ISO date)."""


@dataclass
class Applied:
    """The planner's per-stage replacements, in bytes, and what to tell the user."""

    fields: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    weights: list[float] | None = None
    """Per stage, before CPU offload is subtracted."""
    activation: float | None = None
    non_torch: float | None = None
    cuda_graphs: list[float] | None = None
    cuda_graph_budget: list[float] | None = None


def _fmt(p: LaunchParams, names: tuple[str, ...]) -> str:
    return ", ".join(f"{n} {getattr(p, n)}" for n in names)


def _differs(a: LaunchParams, b: LaunchParams, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for n in names if getattr(a, n) != getattr(b, n))


def apply(m: Measured, arch: ModelArch, p: LaunchParams, mp: LaunchParams, stage_bytes: list[float],
          nt_model: float, cg_model: list[float], cg_model_measured: float) -> Applied:
    """Decide which measured figures replace the model for launch `p` (resolved).

    mp: the measured launch, resolved for the same card and version. stage_bytes: the
    model's weights per stage of `p`, before CPU offload;
    nt_model: the modelled non-torch bytes; cg_model: the modelled CUDA-graph bytes per stage;
    cg_model_measured: the modelled CUDA-graph bytes of the measured launch's largest stage
    (the planner computes both, so this module does not import it).
    """
    out = Applied()
    quant_p, quant_m = weights.quant_method(arch, p.quantization), weights.quant_method(arch, mp.quantization)
    dt_p, dt_m = weights.resolve_dtype(arch, p.dtype), weights.resolve_dtype(arch, mp.dtype)
    same_format = quant_p == quant_m and dt_p == dt_m
    fmt_note = (f"measured with quantization {quant_m or 'none'}, {dt_m}-byte dtype; this plan uses "
                f"{quant_p or 'none'}, {dt_p}-byte — not reused")
    layout = ("tp", "pp", "cpu_offload_gb")

    if m.weights_gib is not None:
        if not same_format:
            out.notes.append(f"weights: {fmt_note}")
        else:
            ms = weights.stage_weights(arch, mp.tp, mp.pp, quant_m, mp.dtype,
                                       rules_for(mp.vllm_version).mxfp4_expert_pad)
            off_m = mp.cpu_offload_gb * GiB
            # The largest rank is what the log reports; its model figure includes the offload.
            big = max(ms, key=lambda s: s.total_bytes - min(off_m, s.decoder_bytes))
            ratio = (m.weights_gib * GiB + min(off_m, big.decoder_bytes)) / big.total_bytes
            out.weights = [b * ratio for b in stage_bytes]
            out.fields.append("weights")
            diff = _differs(p, mp, layout)
            if diff:
                out.notes.append(f"weights: measured at {_fmt(mp, diff)}; scaled to {_fmt(p, diff)} "
                                 f"(measured/modelled ×{ratio:.3f} applied to the model)")

    batch = ("tp", "pp", "max_num_batched_tokens", "max_num_seqs")
    batch_diff = _differs(p, mp, batch)
    single = p.pp == 1
    why_not = (f"measured at {_fmt(mp, batch_diff)}, this plan has {_fmt(p, batch_diff)}" if batch_diff else
               "measured with pipeline parallelism (which stage is unknown)" if not single else
               "measured with another weight format")
    act_ok = not batch_diff and single and same_format
    nt_ok = not _differs(p, mp, ("tp", "pp")) and single
    act = m.activation_gib * GiB if m.activation_gib is not None and act_ok else None
    nt = m.non_torch_gib * GiB if m.non_torch_gib is not None and nt_ok else None
    if m.activation_gib is not None and act is None:
        out.notes.append(f"activation: kept the model — {why_not}")
    if m.non_torch_gib is not None and nt is None:
        out.notes.append("non-torch: kept the model — measured at "
                         f"tp {mp.tp} pp {mp.pp}, this plan has tp {p.tp} pp {p.pp}")
    if act is not None:
        out.fields.append("activation")
    if nt is not None:
        out.fields.append("non_torch")
    if m.non_kv_gib is not None and (act is None or nt is None):
        if act_ok:
            total = m.non_kv_gib * GiB
            if act is not None:
                nt = max(0.0, total - act)
            elif nt is not None:
                act = max(0.0, total - nt)
            else:
                # The sum is measured, the split is not: non-torch as modelled, the rest activation.
                nt = min(nt_model, total)
                act = max(0.0, total - nt)
            out.fields.append("activation+non_torch")
        else:
            out.notes.append(f"activation + non-torch: kept the model — {why_not}")
    out.activation, out.non_torch = act, nt

    if m.cuda_graph_gib is not None or m.cuda_graph_budget_gib is not None:
        if p.enforce_eager:
            out.notes.append("cuda graphs: enforce_eager, none are captured")
        elif mp.enforce_eager:
            out.notes.append("cuda graphs: measured with enforce_eager — nothing to reuse")
        elif not same_format:
            out.notes.append(f"cuda graphs: {fmt_note}")
        else:
            scale = [c / cg_model_measured for c in cg_model]
            if m.cuda_graph_gib is not None:
                out.cuda_graphs = [m.cuda_graph_gib * GiB * s for s in scale]
            if m.cuda_graph_budget_gib is not None:
                out.cuda_graph_budget = [m.cuda_graph_budget_gib * GiB * s for s in scale]
            out.fields.append("cuda_graphs")
            n_p, n_m = (len(accounting.cuda_graph_sizes(x.max_num_seqs)) for x in (p, mp))
            diff = [f"{n_m} capture sizes (max_num_seqs {mp.max_num_seqs})"] if n_p != n_m else []
            diff += [f"{n} {getattr(mp, n)}" for n in _differs(p, mp, ("tp", "pp"))]
            if diff:
                now = ([f"{n_p} sizes (max_num_seqs {p.max_num_seqs})"] if n_p != n_m else []) + [
                    f"{n} {getattr(p, n)}" for n in _differs(p, mp, ("tp", "pp"))]
                out.notes.append(f"cuda graphs: measured with {', '.join(diff)}; scaled to {', '.join(now)} "
                                 f"by the model (×{max(scale):.3f})")
    return out
