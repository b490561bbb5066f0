"""The error band: how far vLLM's real KV capacity has been from the planner's figure.

The planner's KV tokens are a point estimate. How far real starts landed from it depends on
the kind of deployment, so the band is read per segment — card family × accounting era ×
quantization × parallel layout — from the planner's own residuals on the dev set's fit
split (tests/data, scripts/fit_band.py writes band.json). A segment with fewer than
MIN_RECORDS fit records borrows its parent's band (the same key with the last part
dropped), up to all records: the band says which level it used and how many starts back it.

Residual r = predicted / logged − 1: r > 0 means the planner promised more than vLLM had.
Each fit record also carries its residual in GiB of KV memory per GPU (predicted − logged).
The low end is what the worst over-prediction of the segment would leave, the high end
what the worst under-prediction would give, taking for each end the wider of the two
readings: low = min(point / (1 + max r), point − max r_GiB), high = max(point / (1 + min r),
point − min r_GiB), in KV GiB, with tokens and concurrency scaled alike.

Why both: most of the planner's misses are non-KV memory it did not foresee — activation,
non-torch and CUDA-graph memory, a fixed amount of GiB whatever is left for the KV cache —
while errors in the bytes a token takes scale with the KV cache. A relative band taken
from starts with tens of GiB of KV cache under-protects the small KV pools of 24 GB cards:
the RTX PRO 6000 start c08 (fit) had 1.02 GiB less than predicted, 1.5 % of its 71 GiB,
and the RTX 4090 start c06 (scored) 0.43 GiB less, 8.6 % of its 5 GiB.
A calibration for the exact card, version and model replaces the segment's residuals with
the calibration's own spread (the rounding of the logged figures it reuses).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

BAND_FILE = Path(__file__).with_name("band.json")

MIN_RECORDS = 3
"""Fit records a segment needs before its own residuals are used."""

CALIBRATION_SPREAD_GIB = 0.02
"""A calibrated plan reuses logged figures printed to 0.01 GiB: weights and activation +
non-torch, each off by up to half a unit, so the KV GiB is known to about ±0.02 GiB."""

_DATACENTER = re.compile(r"H100|H200|H800|H20\b|A100|A800|L40S|\bL40\b|B200|B100|GB200|GB300|B300")
_UNIFIED = re.compile(r"GB10|DGX SPARK")


@dataclass(frozen=True)
class Band:
    """Relative spread around the point estimate, and where it comes from."""

    over: float
    """Worst over-prediction seen, as a fraction (≥ 0): the low end is point / (1 + over)."""
    under: float
    """Worst under-prediction seen, as a fraction in [0, 1): the high end is point / (1 − under)."""
    source: str
    """E.g. 'consumer × v1 × bf16 × multi-pcie: 3 fit records (c03, c05, 40)'."""
    over_gib: float = 0.0
    """Worst over-prediction seen in GiB of KV memory per GPU (≥ 0)."""
    under_gib: float = 0.0
    """Worst under-prediction seen in GiB of KV memory per GPU (≥ 0)."""

    def low(self, value: float) -> float:
        return value / (1 + self.over)

    def high(self, value: float) -> float:
        return value / (1 - self.under)

    def low_factor(self, kv_gib: float) -> float:
        """The low end as a fraction of a point estimate of kv_gib GiB of KV memory per GPU:
        the wider of the relative and the GiB reading, never below 0."""
        if kv_gib <= 0:
            return 1.0
        return max(0.0, min(1 / (1 + self.over), 1 - self.over_gib / kv_gib))

    def high_factor(self, kv_gib: float) -> float:
        """The high end as a fraction of the point estimate (≥ 1)."""
        if kv_gib <= 0:
            return 1.0
        return max(1 / (1 - self.under), 1 + self.under_gib / kv_gib)


def card_family(name: str, nvlink: bool = False) -> str:
    """'datacenter', 'unified' (GB10-style shared memory) or 'consumer' (the rest: GeForce,
    workstation, A10/L4/T4/V100, vGPU slices, unknown names)."""
    upper = (name or "").upper()
    if _UNIFIED.search(upper):
        return "unified"
    if nvlink or _DATACENTER.search(upper):
        return "datacenter"
    return "consumer"


def segment(name: str, nvlink: bool, engine: str, caps_whole_gpu: bool, quantized: bool, world: int,
            ) -> tuple[str, str, str, str]:
    """The band's key for one deployment."""
    era = "v0" if engine == "v0" else ("v1-whole-device" if caps_whole_gpu else "v1")
    parallel = "tp1" if world <= 1 else ("multi-nvlink" if nvlink else "multi-pcie")
    return card_family(name, nvlink), era, "quantized" if quantized else "bf16", parallel


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[dict[str, Any], ...]:
    p = Path(path)
    if not p.exists():
        return ()
    return tuple(json.loads(p.read_text()).get("records", []))


def band_for(key: tuple[str, ...], records: tuple[dict[str, Any], ...] | None = None) -> Band:
    """The band of `key` from fit-split residuals, borrowing from the parent segment when thin."""
    recs = _load(str(BAND_FILE)) if records is None else records
    for depth in range(len(key), -1, -1):
        prefix = tuple(key[:depth])
        rs = [r for r in recs if tuple(r["segment"][:depth]) == prefix]
        if len(rs) >= MIN_RECORDS or depth == 0:
            if not rs:
                return Band(0.0, 0.0, "no fit records: point estimate only")
            res = [float(r["residual"]) for r in rs]
            gib = [float(r.get("residual_gib", 0.0)) for r in rs]
            label = " × ".join(prefix) if prefix else "all segments"
            ids = ", ".join(str(r["id"]) for r in rs[:6]) + (", …" if len(rs) > 6 else "")
            borrowed = "" if depth == len(key) else f" (borrowed: {' × '.join(key)} has fewer than {MIN_RECORDS})"
            return Band(max(0.0, max(res)), min(0.95, max(0.0, -min(res))),
                        f"{label}: {len(rs)} fit records ({ids}){borrowed}",
                        over_gib=max(0.0, max(gib)), under_gib=max(0.0, -min(gib)))
    raise AssertionError("unreachable")


def calibrated(available_kv_gib: float, source: str) -> Band:
    """The band of a plan whose non-KV figures all come from a calibration of this very card."""
    rel = CALIBRATION_SPREAD_GIB / max(available_kv_gib, CALIBRATION_SPREAD_GIB)
    return Band(rel, min(rel, 0.95), f"calibration: {source} (±{CALIBRATION_SPREAD_GIB} GiB of logged rounding)")


def low_tokens(tokens: int, band: Band, block: int, kv_gib: float = 0.0) -> int:
    """Tokens at the band's low end, whole blocks only (vLLM allocates blocks). kv_gib: the
    point estimate's KV memory per GPU, for the GiB reading of the band."""
    factor = band.low_factor(kv_gib) if kv_gib > 0 else 1 / (1 + band.over)
    return int(math.floor(tokens * factor / block)) * block


def high_tokens(tokens: int, band: Band, block: int, kv_gib: float = 0.0) -> int:
    factor = band.high_factor(kv_gib) if kv_gib > 0 else 1 / (1 - band.under)
    return int(math.floor(tokens * factor / block)) * block
