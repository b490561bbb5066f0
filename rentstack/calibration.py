"""The calibration store: measured figures from real starts, per (card model, vLLM version, model).

The planner's estimates are formulas; a good start logs what the card really did (weights,
activation peak, non-torch memory, CUDA graphs, KV capacity). `save_calibration` keeps those
numbers in one JSON file, written atomically (temp file + rename, so a crash or a concurrent
reader never sees half a file), and `lookup_calibration` gives them back for the next plan.
`measured_for` turns a record into the planner's `Measured` input. This is an I/O edge: the
callers (commands, executors) read it and hand the figures to the pure planner and renderer.

Store: $RENTSTACK_CALIBRATION, else ~/.cache/rentstack/calibration.json. Format:
{"format": 1, "entries": {"<card>|<version>|<model>": {"card", "vllm_version", "model",
"measured_at", "figures": {...}}}}.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rentstack.errors import RentstackError
from rentstack.plan.measured import Measured
from rentstack.plan.params import LaunchParams
from rentstack.plan.rules import known_rules

ENV_VAR = "RENTSTACK_CALIBRATION"
FORMAT = 1

MEASURED_KEYS = (
    "vllm_version", "model", "weights_gib", "activation_gib", "non_torch_gib", "weights_plus_non_torch_gib", "cuda_graph_gib",
    "cuda_graph_estimate_gib", "available_kv_gib", "kv_cache_tokens", "max_concurrency",
    "max_concurrency_tokens", "total_gpu_gib", "init_free_gib", "gpu_memory_utilization", "max_model_len",
)
"""Figures worth keeping: what the card did, plus the settings needed to read them."""

LAUNCH_KEYS = tuple(knob.flag for _, knob in LaunchParams.knobs() if knob.flag)
"""Launch arguments worth keeping: the memory-relevant vLLM flags (LaunchParams' table)."""


def store_path(path: str | os.PathLike | None = None) -> Path:
    if path:
        return Path(path)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path.home() / ".cache" / "rentstack" / "calibration.json"


def normalize_card(card: str) -> str:
    """'NVIDIA GeForce RTX 4090' and 'rtx 4090' are the same card."""
    words = card.replace("_", " ").split()
    drop = {"nvidia", "geforce", "tesla"}
    return " ".join(w for w in words if w.lower() not in drop).upper()


def normalize_model(model: str) -> str:
    """A hub id stays as is; a local directory is known by its last path component."""
    model = model.rstrip("/")
    if model.startswith(("/", "./", "~")) or os.sep in model and model.count("/") > 1:
        return Path(model).name
    return model


def normalize_version(version: str) -> str:
    return version.strip().lstrip("v")


def _key(card: str, version: str, model: str) -> str:
    return f"{normalize_card(card)}|{normalize_version(version)}|{normalize_model(model)}"


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"format": FORMAT, "entries": {}}
    except OSError as exc:
        raise RentstackError(f"cannot read calibration store {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RentstackError(f"calibration store {path} is not valid JSON (line {exc.lineno}); "
                             f"move it aside or set {ENV_VAR} to another file") from exc
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        raise RentstackError(f"calibration store {path} has no 'entries' object; move it aside")
    return data


def measured_figures(figures: dict[str, Any], gpu_mem_gib: float | None = None) -> dict[str, Any]:
    """The subset of a Diagnosis' figures that a calibration keeps.

    V1 logs print the activation peak and non-torch memory only in a few versions (the
    'Actual usage' line of 0.10.2 and 0.28+, whose activation includes the CUDA-graph estimate
    from 0.28 on: taken out here); otherwise their sum is what the budget leaves
    after the weights, the KV cache and (0.20+, graphs on) the CUDA-graph estimate:
    activation_plus_non_torch_gib = utilization × total − weights − KV (− graphs)."""
    out = {k: figures[k] for k in MEASURED_KEYS if figures.get(k) is not None}
    args = figures.get("launch_args") or {}
    estimate = figures.get("cuda_graph_estimate_gib")
    if ("weights_plus_non_torch_gib" in out and "activation_gib" in out and estimate
            and _graphs_budgeted(figures.get("vllm_version")) and not args.get("enforce-eager")):
        # The 0.28+ "Actual usage" line reports the CUDA-graph estimate the worker subtracted
        # inside its "peak activation" (gpu_worker: peak_activation_memory =
        # transient_peak_headroom + cudagraph_memory_estimate_applied). Kept as is, a reused
        # calibration would charge the graphs twice. RTX 5090, 0.28 (records c25/c26): 1.19 GiB
        # with graphs = 0.54 eager + the 0.65 estimate.
        out["activation_gib"] = round(max(0.0, out["activation_gib"] - estimate), 3)
    launch = {k: args[k] for k in LAUNCH_KEYS if k in args}
    if launch:
        out["launch_args"] = launch
    total = figures.get("total_gpu_gib") or gpu_mem_gib
    util = args.get("gpu-memory-utilization", figures.get("gpu_memory_utilization"))
    weights, kv = figures.get("weights_gib"), figures.get("available_kv_gib")
    if total and "total_gpu_gib" not in out:
        out["total_gpu_gib"] = total
    if total and util and weights is not None and kv is not None:
        rest = float(util) * float(total) - weights - kv
        if _graphs_budgeted(figures.get("vllm_version")) and not args.get("enforce-eager"):
            rest -= figures.get("cuda_graph_estimate_gib") or 0.0
        out["activation_plus_non_torch_gib"] = round(rest, 3)
    return out


def _graphs_budgeted(version: str | None) -> bool:
    rules = known_rules(version)
    return bool(rules and rules.budgets_cuda_graphs)


def save_calibration(card: str, version: str, model: str, figures: dict[str, Any],
                     path: str | os.PathLike | None = None, gpu_mem_gib: float | None = None) -> Path:
    """Record the figures of a good start; replaces an earlier record for the same key."""
    if not card or not version or not model:
        raise RentstackError("calibration needs the card model, the vLLM version and the model "
                             f"(got card={card!r}, version={version!r}, model={model!r})")
    target = store_path(path)
    data = _load(target)
    data["format"] = FORMAT
    data["entries"][_key(card, version, model)] = {
        "card": normalize_card(card),
        "vllm_version": normalize_version(version),
        "model": normalize_model(model),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "figures": measured_figures(figures, gpu_mem_gib),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".calibration-", suffix=".json", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


def lookup_calibration(card: str, version: str, model: str,
                       path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The record saved for (card, version, model) — {"card", "vllm_version", "model", "measured_at",
    "figures"} — or None."""
    if not card or not version or not model:
        return None
    return _load(store_path(path))["entries"].get(_key(card, version, model))


def catalog_names(entry: Any) -> list[str]:
    """Names a catalog model's starts are saved under: the catalog name (served name), the hub
    id(s), and the directory rentstack serves it from (/models/<dirname>)."""
    src = getattr(entry, "source", None)
    ref = getattr(src, "ref", None) if getattr(src, "scheme", "") in ("hf", "modelscope") else None
    names = [entry.name, getattr(entry, "hf_id", None), ref, getattr(src, "dirname", None)]
    return [normalize_model(n) for n in names if n]


def measured_for(card: str, version: str, models: list[str] | tuple[str, ...],
                 path: str | os.PathLike | None = None):
    """The planner's input from the store: a rentstack.plan.Measured for the first of `models`
    (names the same weights go by: catalog name, hub id, model directory) saved for this card
    and vLLM version, or None. The one lookup `rentstack plan` and rendering share."""
    if not card or not version:
        return None
    for model in dict.fromkeys(m for m in models if m):
        record = lookup_calibration(card, version, model, path)
        if record:
            break
    else:
        return None
    figs = record.get("figures") or {}
    try:
        params = LaunchParams.from_flags(figs.get("launch_args"), vllm_version=record["vllm_version"])
    except RentstackError as exc:
        raise RentstackError(f"calibration store {store_path(path)}: record {record['card']}|"
                             f"{record['vllm_version']}|{record['model']} has a bad launch argument ({exc}); "
                             "save it again with `rentstack doctor LOG --save-calibration`") from None

    def num(key: str) -> float | None:
        value = figs.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return Measured(
        weights_gib=num("weights_gib"), activation_gib=num("activation_gib"), non_torch_gib=num("non_torch_gib"),
        non_kv_gib=num("activation_plus_non_torch_gib"), cuda_graph_gib=num("cuda_graph_gib"),
        cuda_graph_budget_gib=num("cuda_graph_estimate_gib"), params=params,
        source=f"{record['card']}, vLLM {record['vllm_version']}, {record['model']}",
        saved=str(record.get("measured_at", ""))[:10],
    )


def measured_for_tier(tier: Any, model: str | None = None, release: Any = None,
                      path: str | os.PathLike | None = None) -> Measured | None:
    """What a render of `tier` plans with: the record for its card, the vLLM release it runs
    (a rentstack.releases.Release or a version string; default the release build_deployment
    would pick) and the model (a catalog name or reference; default the tier's). None for the
    CPU tier, a tier without a card name, or a model reference that does not resolve
    (build_deployment reports that one itself)."""
    from rentstack.config import resolve_model
    from rentstack.releases import default_release

    if tier.accelerator == "cpu" or not tier.gpu.name:
        return None
    try:
        entry = resolve_model(model or tier.model)
    except RentstackError:
        return None
    version = release if isinstance(release, str) else getattr(release or default_release(), "version")
    return measured_for(tier.gpu.name, version, catalog_names(entry), path)
