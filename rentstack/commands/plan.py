"""`rentstack plan`: will this model start on this card, with what context and concurrency?

    rentstack plan --model-config PATH --gpu-mem-gib 24 [--tp 2 ...] [--json]
    rentstack plan --tier 4090x1 --model qwen3-14b-awq [--fit] [--json]
    rentstack plan --model qwen3-32b-awq --all-tiers
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rentstack.calibration import catalog_names, measured_for
from rentstack.errors import RentstackError, one_of
from rentstack.plan import Hardware, LaunchParams, fit, load_arch, plan
from rentstack.plan.report import fit_text, plan_table
from rentstack.versions import VLLM_VERSION


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="predict vLLM's GPU memory use and startup verdict; --fit chooses the flags",
                       description=__doc__.splitlines()[0])
    src = p.add_argument_group("model")
    src.add_argument("--model-config", metavar="PATH", help="the model's config.json (file or model directory)")
    src.add_argument("--model", metavar="M", help="a catalog model (stacks/models.yaml); its config.json ships")
    src.add_argument("--assume-dense", action="store_true",
                     help="plan an unknown architecture as a dense model with a +15%% weight margin")
    src.add_argument("--model-name", metavar="NAME",
                     help="the model's name in the calibration store (hub id or served directory); "
                          "default: the catalog name, hub id and directory, or the --model-config directory")
    hw = p.add_argument_group("hardware")
    hw.add_argument("--gpu-mem-gib", type=float, metavar="FLOAT", help="total memory per card, GiB (as CUDA reports)")
    hw.add_argument("--gpus", type=int, metavar="N", help="cards on the host (default: tp × pp)")
    hw.add_argument("--free-gib", type=float, metavar="FLOAT",
                    help="free memory per card vLLM sees at start (vGPU slice, shared card)")
    hw.add_argument("--gpu-name", default="", help="card name, e.g. 'H100' (per-card defaults, NVLink, FP8)")
    hw.add_argument("--tier", metavar="T", help="a tier from stacks/ (cards and its vLLM settings)")
    hw.add_argument("--preset", help="a named preset of the tier (e.g. 7gb: seed)")
    hw.add_argument("--all-tiers", action="store_true", help="fit --model on every GPU tier and print a matrix")
    v = p.add_argument_group("vLLM flags (unset: vLLM's default for that version and card)")
    for name, knob in LaunchParams.knobs():  # one option per LaunchParams field; values converted by from_flags
        if knob.kind is bool:
            v.add_argument(*knob.options, dest=name, action="store_true", default=None, help=knob.doc)
        else:
            v.add_argument(*knob.options, dest=name, metavar=knob.kind.__name__.upper(), help=knob.doc)
    v.add_argument("--allow-long-max-model-len", action="store_true",
                   help="allow max_model_len above the model's limit (VLLM_ALLOW_LONG_MAX_MODEL_LEN=1)")
    out = p.add_argument_group("output")
    out.add_argument("--fit", action="store_true", help="choose tp/pp, utilization, context, batch, eager, KV dtype, offload")
    out.add_argument("--json", action="store_true", help="print one JSON object")
    out.add_argument("--no-calibration", action="store_true",
                     help="ignore figures measured on this card (rentstack doctor --save-calibration); model all")
    p.set_defaults(func=run)


_CLI_LABELS = {"gpu_mem_gib": "--gpu-mem-gib", "free_mem_gib": "--free-gib", "gpus": "--gpus"}
"""Hardware fields → the flags that set them here, for error messages."""


def _cli_params(args: argparse.Namespace) -> dict[str, Any]:
    """The vLLM flags given on the command line, as LaunchParams fields, converted and bounds
    checked (errors name the option as typed)."""
    given = {knob.options[0]: getattr(args, name) for name, knob in LaunchParams.knobs()}
    return LaunchParams.flags_to_fields(given)


def _catalog_entry(name: str):
    from rentstack.config import load_catalog

    catalog = load_catalog()
    if name not in catalog:
        raise one_of("model", name, catalog)
    return catalog[name]


def _model(args: argparse.Namespace, default_model: str | None = None):
    """(arch, quantization from the catalog, label, names for the calibration lookup)."""
    quant = None
    names: list[str] = [args.model_name] if args.model_name else []
    if args.model_config:
        source, label = args.model_config, args.model_config
        path = Path(args.model_config)
        names.append(path.parent.name if path.name == "config.json" else path.stem if path.suffix else path.name)
    else:
        name = args.model or default_model
        if not name:
            raise RentstackError("name the model: --model-config PATH (its config.json) or --model NAME (catalog)")
        entry = _catalog_entry(name)
        if entry.config_path is None:
            raise RentstackError(f"catalog model {name} ships no config.json; pass --model-config PATH")
        source, label, quant = entry.config_path, name, entry.quantization
        names += catalog_names(entry)
    return load_arch(source, allow_unknown=args.assume_dense), quant, label, names


def _measured(args: argparse.Namespace, hw: Hardware, fixed: dict[str, Any], names: list[str]):
    """The calibration for this card, version and model (None with --no-calibration or no card name)."""
    if args.no_calibration:
        return None
    return measured_for(hw.name, str(fixed.get("vllm_version") or VLLM_VERSION), names)


def _tier(name: str, preset: str | None):
    from rentstack.config import load_tier

    return load_tier(name).with_preset(preset)


def _hardware_from_tier(tier, args: argparse.Namespace) -> Hardware:
    if tier.accelerator == "cpu" or tier.gpu.count < 1:
        raise RentstackError(f"tier {tier.name} has no GPU; the planner sizes GPU memory (the CPU tier's KV "
                             "cache is sized from kv_bytes_per_token at render time)")
    return Hardware.from_gpu(tier.gpu, free_mem_gib=args.free_gib, gpus=tier.total_gpus).check(_CLI_LABELS)


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload, indent=2, default=str) if args.json else text)


def run(args: argparse.Namespace) -> int:
    if args.all_tiers:
        return _all_tiers(args)
    fixed: dict[str, Any] = {}
    if args.tier:
        if args.gpu_mem_gib is not None:
            raise RentstackError("give either --tier or --gpu-mem-gib, not both")
        tier = _tier(args.tier, args.preset)
        hw = _hardware_from_tier(tier, args)
        fixed.update(LaunchParams.flags_to_fields(tier.vllm))
        arch, quant, label, names = _model(args, default_model=tier.model)
        title = f"{label} on tier {tier.name}" + (f" (preset {args.preset})" if args.preset else "")
    else:
        if args.gpu_mem_gib is None:
            raise RentstackError("give the card: --gpu-mem-gib FLOAT (total per card), or --tier NAME")
        arch, quant, label, names = _model(args)
        cli = _cli_params(args)
        gpus = args.gpus or cli.get("tp", 1) * cli.get("pp", 1)
        hw = Hardware(gpu_mem_gib=args.gpu_mem_gib, gpus=gpus, free_mem_gib=args.free_gib,
                      name=args.gpu_name).check(_CLI_LABELS)
        title = f"{label} on {gpus}× {args.gpu_mem_gib:g} GiB"
    if quant and "quantization" not in fixed:
        fixed["quantization"] = quant
    fixed.update(_cli_params(args))
    release_line = ""
    if args.tier and args.vllm_version is None:
        # The release a GPU tier gets here: from the local driver and cards, or the newest.
        from rentstack.local.gpu import local_choice

        choice = local_choice()
        fixed["vllm_version"] = choice.release.version
        release_line = choice.line
    measured = _measured(args, hw, fixed, names)
    if args.fit:
        f = fit(arch, hw, fixed=fixed, measured=measured)
        payload = {**f.plan.to_dict(), "fit": f.to_dict() | {"plan": None}}
        if release_line:
            payload["vllm_release"] = release_line
        _emit(args, payload, "\n".join(filter(None, [release_line, fit_text(f, title)])))
        return 0 if f.plan.fits else 3
    pl = plan(arch, hw, LaunchParams.from_flags(fixed), allow_long_max_model_len=args.allow_long_max_model_len, measured=measured)
    _emit(args, pl.to_dict(), plan_table(pl, title))
    return 0 if pl.fits else 3


def _all_tiers(args: argparse.Namespace) -> int:
    from rentstack.config import list_tiers

    if not (args.model or args.model_config):
        raise RentstackError("--all-tiers needs --model M (or --model-config PATH)")
    arch, quant, label, names = _model(args)
    rows, payload = [], {}
    for name in list_tiers():
        tier = _tier(name, None)
        if tier.accelerator == "cpu":
            continue
        hw = _hardware_from_tier(tier, args)
        fixed = {"quantization": quant} if quant else {}
        fixed.update(_cli_params(args))
        f = fit(arch, hw, fixed=fixed, measured=_measured(args, hw, fixed, names))
        p, pl = f.params, f.plan
        payload[name] = {**pl.to_dict(), "goal_met": f.goal_met, "alternatives": f.alternatives}
        verdict = ("full context ×4" if f.goal_met else "fits, shorter context") if pl.fits else f"no: {pl.verdict}"
        rows.append(f"{name:<8} {tier.hosts}×{tier.gpu.count}×{tier.gpu.memory_gib:<6g} tp{p.tp} pp{p.pp} "
                    f"util {p.gpu_memory_utilization:<4} ctx {p.max_model_len:>7} seqs {p.max_num_seqs:>4} "
                    f"{'eager' if p.enforce_eager else 'graphs':<6} kv {p.kv_cache_dtype:<4} "
                    f"offload {p.cpu_offload_gb:>4g}  KV {pl.kv_cache_tokens:>9,} tok  conc {pl.max_concurrency:>7.2f}  "
                    f"{verdict}" + (f"  (measured: {', '.join(pl.measured_fields)})" if pl.measured_fields else ""))
    head = f"{label}: fit per tier (goal: full context at concurrency ≥4, else longest context)"
    _emit(args, {"model": label, "tiers": payload}, "\n".join([head, *rows]))
    return 0
