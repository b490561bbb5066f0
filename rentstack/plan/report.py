"""Plain-text views of a Plan and a Fit: the table renters draw by hand, one verdict line."""

from __future__ import annotations

from rentstack.plan.fit import Fit
from rentstack.plan.measured import FIELD_LABELS
from rentstack.plan.planner import Plan


def _row(label: str, values: list[str]) -> str:
    return f"  {label:<26}" + "".join(f"{v:>12}" for v in values)


def plan_table(pl: Plan, title: str = "") -> str:
    p = pl.resolved
    stages = pl.per_gpu
    heads = [f"GPU×{p.tp}" + (f" s{g['stage']}" if len(stages) > 1 else "") for g in stages]
    lines = []
    if title:
        lines.append(title)
    lines.append(
        f"  vLLM {pl.vllm_version} · {pl.gpu_mem_gib:g} GiB per GPU · tp {p.tp} pp {p.pp} · "
        f"util {p.gpu_memory_utilization} · max_model_len {p.max_model_len} · max_num_seqs {p.max_num_seqs} · "
        f"batched {p.max_num_batched_tokens} · block {p.block_size} · kv {p.kv_cache_dtype}"
        + (" · eager" if p.enforce_eager else "") + (f" · cpu_offload {p.cpu_offload_gb:g} GiB" if p.cpu_offload_gb else ""))
    lines.append(_row("GiB per GPU", heads))
    lines.append(_row("budget (total × util)", [f"{pl.requested_gib:.2f}"] * len(stages)))
    lines.append(_row("model weights", [f"{g['weights_gib']:.2f}" for g in stages]))
    if any(g["offloaded_gib"] for g in stages):
        lines.append(_row("  (offloaded to host)", [f"{g['offloaded_gib']:.2f}" for g in stages]))
    lines.append(_row("activation peak", [f"{g['activation_gib']:.2f}" for g in stages]))
    lines.append(_row("runtime overhead", [f"{g['non_torch_gib']:.2f}" for g in stages]))
    lines.append(_row("CUDA graphs" + (" (in budget)" if pl.cuda_graphs_budgeted else " (outside)"),
                      [f"{g['cuda_graph_gib']:.2f}" for g in stages]))
    lines.append(_row("KV cache", [f"{g['available_kv_gib']:.2f}" for g in stages]))
    lines.append(_row("free headroom (outside)", [f"{pl.headroom_gib:.2f}"] * len(stages)))
    lines.append(f"  KV cache: {pl.kv_cache_tokens:,} tokens ({pl.kv_bytes_per_token:,} B/token/GPU), "
                 f"{pl.max_concurrency:.2f}× requests of {p.max_model_len} tokens; longest single request "
                 f"{pl.max_model_len_fit:,}")
    lines.append(band_line(pl))
    for w in pl.warnings:
        lines.append(f"  warning: {w}")
    if pl.measured_from:
        lines.append(f"  {measured_line(pl)}")
        lines += [f"    {note}" for note in pl.measured_notes]
    lines.append(verdict_line(pl))
    return "\n".join(lines)


def band_line(pl: Plan) -> str:
    """'KV band: 88,992 – 108,448 tokens (6.10 – 7.44 GiB per GPU); from consumer: 3 fit records …'."""
    return (f"  KV band: {pl.kv_cache_tokens_low:,} – {pl.kv_cache_tokens_high:,} tokens "
            f"({pl.available_kv_gib_low:.2f} – {pl.available_kv_gib_high:.2f} GiB per GPU); "
            f"longest single request at the low end {pl.max_model_len_fit_low:,}; from {pl.band_source}")


def measured_line(pl: Plan) -> str:
    """'used measured figures from H100, vLLM 0.19.0, m: weights, cuda graphs (saved 2026-11-21)'."""
    saved = f" (saved {pl.measured_saved})" if pl.measured_saved else ""
    if not pl.measured_fields:
        return f"measured figures from {pl.measured_from}{saved} do not carry over to these flags; all modelled"
    used = ", ".join(FIELD_LABELS.get(f, f) for f in pl.measured_fields)
    return f"used measured figures from {pl.measured_from}: {used}{saved}"


def verdict_line(pl: Plan) -> str:
    if pl.fits:
        return (f"verdict: fits — {pl.kv_cache_tokens:,} KV tokens, {pl.max_concurrency:.2f}× concurrency "
                f"at {pl.resolved.max_model_len} tokens")
    return f"verdict: fails ({pl.verdict}) — {pl.error}\n  fix: {pl.fix}"


def fit_text(f: Fit, title: str = "") -> str:
    lines = [plan_table(f.plan, title)]
    lines.append("  choices:" if f.goal_met else "  choices (goal not met):")
    for key, why in f.reasons.items():
        lines.append(f"    {key:<24} {why}")
    if f.alternatives:
        lines.append("  nearest alternatives:")
        lines += [f"    - {a}" for a in f.alternatives]
    flags = " ".join(
        f"--{k}" if v is True else f"--{k} {v}" for k, v in f.params.to_flags().items()
        if v not in (None, False) and not (k in ("dtype", "kv-cache-dtype") and v == "auto")
        and not (k == "cpu-offload-gb" and not v))
    lines.append(f"  vllm serve ... {flags}")
    return "\n".join(lines)
