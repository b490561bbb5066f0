"""What the planner knows about a card beyond its memory: one table, looked up by name.

A row matches when its tag appears in the upper-cased card name ("NVIDIA H100 80GB HBM3"
matches H100), and a card has a capability when any matching row has it. The interconnect
is a property of the host, not the card: a tier's `gpu.p2p` / `gpu.nvlink` say it when they
are known (see Hardware.interconnect); the NVLink column is only the guess for a bare name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Card:
    """One row of the table."""

    tag: str
    """Substring of the upper-cased card name."""
    nvlink: bool = False
    """Multi-GPU boards of this card are joined by NVLink/NVSwitch: vLLM then sets up its custom
    all-reduce and NCCL symmetric buffers, ~2 GiB of non-torch memory per rank in 0.19 logs
    (H100 TP2/TP4) against ~0.2 GiB on PCIe cards (L40S TP4)."""
    fp8: bool = False
    """Hardware FP8 (Ada, Hopper, Blackwell): an fp8 KV cache is a safe choice."""
    flashmla: bool = False
    """Hopper/Blackwell: MLA models run FlashMLA, which needs 64-token KV blocks."""
    small_batch_defaults: bool = False
    """vLLM keeps the small-card batch defaults (2048 tokens / 256 seqs) on this ≥70 GiB card
    from 0.10 (engine/arg_utils.py get_batch_defaults; vLLM PR 17885: A100)."""
    pre_ampere: bool = False
    """Compute capability below 8.0 (Volta, Turing, Pascal): no Marlin AWQ/GPTQ kernels, and
    vLLM 0.8.0–0.10.1 run these cards on the V0 engine (V1 reached them in 0.10.2)."""


CARDS: tuple[Card, ...] = (
    # Hopper / Blackwell data-centre boards
    Card("H100", nvlink=True, fp8=True, flashmla=True),
    Card("H200", nvlink=True, fp8=True, flashmla=True),
    Card("H20", nvlink=True, fp8=True, flashmla=True),
    Card("H800", nvlink=True, fp8=True, flashmla=True),
    Card("B200", nvlink=True, fp8=True, flashmla=True),
    Card("B100", nvlink=True, fp8=True),
    Card("GB200", nvlink=True, fp8=True),
    Card("GB300", nvlink=True),
    Card("B300", nvlink=True),
    # Ampere data-centre boards (no FP8)
    Card("A100", nvlink=True, small_batch_defaults=True),
    Card("A800", nvlink=True),
    # Ada / Blackwell workstation and consumer cards: FP8, PCIe only
    Card("4090", fp8=True), Card("4080", fp8=True), Card("4070", fp8=True), Card("4060", fp8=True),
    Card("5090", fp8=True), Card("5080", fp8=True),
    Card("L4", fp8=True), Card("L40", fp8=True),
    Card("GB10", fp8=True), Card("RTX 6000 ADA", fp8=True), Card("RTX PRO", fp8=True),
    # Volta / Turing / Pascal
    *(Card(tag, pre_ampere=True) for tag in ("T4", "V100", "P100", "P40", "2080", "2070", "2060", "1660", "1650",
                                             "TITAN RTX", "TITAN V", "QUADRO RTX", "RTX 8000", "RTX 6000 TURING",
                                             "1080", "1070")),
)


@dataclass(frozen=True)
class Capabilities:
    """A card's capabilities: each is true when any matching row of CARDS has it."""

    nvlink: bool = False
    fp8: bool = False
    flashmla: bool = False
    small_batch_defaults: bool = False
    pre_ampere: bool = False


def capabilities(name: str) -> Capabilities:
    """The table's answer for a card name ('' or an unknown card: nothing)."""
    upper = (name or "").upper()
    rows = [c for c in CARDS if c.tag in upper]
    return Capabilities(
        nvlink=any(c.nvlink for c in rows),
        fp8=any(c.fp8 for c in rows),
        flashmla=any(c.flashmla for c in rows),
        small_batch_defaults=any(c.small_batch_defaults for c in rows),
        pre_ampere=any(c.pre_ampere for c in rows),
    )
