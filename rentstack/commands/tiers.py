"""`rentstack tiers`: the shipped hardware tiers, one line each."""

from __future__ import annotations

import argparse

from rentstack.config import list_tiers, load_tier


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tiers", help="list the hardware tiers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name in list_tiers():
        tier = load_tier(name)
        hw = "no GPU" if tier.accelerator == "cpu" else (f"{tier.hosts} hosts x " if tier.hosts > 1 else "") + f"{tier.gpu.count}x {tier.gpu.memory_gib:g} GiB"
        presets = f"  presets: {', '.join(tier.presets)}" if tier.presets else ""
        print(f"{name:8} {hw:14} {tier.model:30} {tier.description}{presets}")
    return 0
