"""Provisioning one host, the pure part: the request resolved and fitted to the host.

``resolve_inputs`` validates tier and model before any connection; ``host_tier`` puts the
host's real GPU numbers into the tier. The steps that act on a host live in
rentstack.remote.steps (one module per concern), the orchestration in rentstack.remote.tasks.
"""

from __future__ import annotations

from pathlib import Path

from rentstack.config import CatalogModel, Tier, load_tier, resolve_model
from rentstack.errors import RentstackError
from rentstack.remote.facts import HostFacts
from rentstack.remote.options import InputError, Options

REPO = Path(__file__).resolve().parents[2]
LOCAL_MODELS = REPO / "models"


def resolve_inputs(opts: Options) -> tuple[Tier, CatalogModel]:
    """Tier and model, validated before any connection: a typo fails with one line, nothing written."""
    try:
        tier = load_tier(opts.tier)
        return tier, resolve_model(opts.model or tier.model)
    except InputError:
        raise
    except RentstackError as exc:
        raise InputError(str(exc)) from None


def host_tier(tier: Tier, facts: HostFacts) -> Tier:
    """The tier with the GPU count, memory and free memory this host reports (item 6: plan
    with real numbers, not the tier's nominal ones). CPU tiers are returned unchanged."""
    if tier.accelerator == "cpu":
        return tier
    if not facts.gpus:
        raise RentstackError(f"tier {tier.name} needs {tier.gpu.count} GPU(s) but this host has none "
                             "(nvidia-smi sees no GPU): boot the instance with its GPU, or use --tier cpu")
    if len(facts.gpus) < tier.gpu.count:
        raise RentstackError(f"tier {tier.name} needs {tier.gpu.count} GPUs but this host has {len(facts.gpus)} "
                             f"({facts.gpus[0].name}): pick a tier for {len(facts.gpus)} GPU(s)")
    used = facts.gpus[: tier.gpu.count]
    total = min(g.memory_total_mib for g in used) / 1024
    frees = [g.memory_free_mib for g in used if g.memory_free_mib is not None]
    free = min(frees) / 1024 if len(frees) == len(used) else None
    gpu = tier.gpu.model_copy(update={"name": used[0].name, "memory_gib": round(total, 2),
                                      "free_gib": round(min(free, total), 2) if free else None})
    return tier.model_copy(update={"gpu": gpu})
