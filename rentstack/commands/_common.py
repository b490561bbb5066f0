"""Arguments several commands share: choosing a tier (shipped, preset, or any card by size)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError

from rentstack.config.errors import explain
from rentstack.errors import RentstackError
from rentstack.config import Tier, custom_tier, load_tier, parse_size_gib

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = REPO / ".rentstack"
CACHE_DIR = REPO / ".cache"


def add_tier_args(parser: argparse.ArgumentParser, *, tier_required: bool = False) -> None:
    group = parser.add_argument_group("hardware")
    group.add_argument("--tier", help="a tier from stacks/ (cpu, 7gb, 3080x2, 4090x1, 4090x4)")
    group.add_argument("--preset", help="a named preset of the tier (e.g. 7gb: seed, seed-32gb)")
    group.add_argument("--gpus", type=int, help="any other card: how many (with --gpu-mem)")
    group.add_argument("--gpu-mem", help="any other card: memory per card, e.g. 24GiB")
    group.add_argument("--free-gib", type=float,
                       help="memory a process may really use per card (vGPU slice, shared card)")


def tier_from_args(args: argparse.Namespace, default: str | None = "cpu") -> Tier:
    """--tier [--preset], or --gpus N --gpu-mem X for any card; --free-gib overrides."""
    if args.gpus is not None or args.gpu_mem is not None:
        if args.preset:
            raise RentstackError("--preset belongs to a shipped tier; it cannot be used with --gpus: "
                                 "drop --preset, or use --tier with it")
        if args.tier:
            raise RentstackError("give either --tier or --gpus/--gpu-mem, not both")
        if args.gpus is None or args.gpu_mem is None:
            raise RentstackError("describe a card with both --gpus N and --gpu-mem SIZE (e.g. --gpus 2 --gpu-mem 24GiB)")
        if args.gpus < 1:
            raise RentstackError(f"--gpus {args.gpus}: need at least 1 card (use --tier cpu for none)")
        tier = custom_tier(args.gpus, parse_size_gib(args.gpu_mem), free_gib=args.free_gib)
    else:
        name = args.tier if args.tier is not None else default   # "" is refused, not the default
        if name is None:
            raise RentstackError("choose hardware: --tier NAME, or --gpus N --gpu-mem SIZE")
        tier = load_tier(name).with_preset(args.preset)
        if args.free_gib is not None:
            if tier.accelerator == "cpu":
                raise RentstackError("--free-gib applies to GPU tiers; the cpu tier has no GPU memory: drop --free-gib")
            data = tier.model_dump()
            data["gpu"]["free_gib"] = args.free_gib
            try:
                tier = Tier.model_validate(data)
            except ValidationError as exc:
                raise explain(exc, Tier, f"--free-gib {args.free_gib:g}") from None
    return tier
