#!/usr/bin/env python3
"""Write rentstack/plan/band.json: the planner's KV-token residuals on the dev set's fit split.

The error band (rentstack.plan.band) is read from these residuals per segment. Run this after
a change to the planner's model or to the fit records, and commit the result; the unit tests
fail while band.json and the planner disagree.

    .venv/bin/python scripts/fit_band.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_planner as bench  # noqa: E402
from rentstack.plan.band import BAND_FILE  # noqa: E402


def residual_records() -> list[dict]:
    """One entry per fit-split start whose KV capacity was logged: its segment and residual."""
    archs = bench.load_archs(bench.DEFAULT_ARCH)
    out = []
    for rec in bench.load_records([Path(p) for p in bench.DEFAULT_DATA]):
        if rec["_split"] != "fit":
            continue
        row = bench.evaluate(rec, archs)
        if "skipped" in row or row.get("signed_pct") is None:
            continue
        r = row["signed_pct"] / 100
        # The same miss in GiB of KV memory per GPU: the logged capacity is the predicted
        # KV memory scaled by logged / predicted tokens (same layout on both sides).
        gib = row["pred_kv_gib"] * r / (1 + r) if row["pred_kv_gib"] > 0 else 0.0
        out.append(dict(id=rec["id"], file=rec["_file"], model=rec.get("model"), segment=list(row["band_segment"]),
                        residual=round(r, 5), residual_gib=round(gib, 3)))
    return out


def render(records: list[dict]) -> str:
    doc = {"about": ("KV-token residuals (predicted / logged - 1) of the planner on the fit split of the dev set "
                     "(shared set + tests/data), by band segment, and the same miss in GiB of KV memory per GPU "
                     "(residual_gib, predicted - logged). Written by scripts/fit_band.py; do not edit."),
           "records": records}
    return json.dumps(doc, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if band.json differs from what the planner gives now")
    args = ap.parse_args(argv)
    text = render(residual_records())
    if args.check:
        same = BAND_FILE.exists() and BAND_FILE.read_text() == text
        print("band.json is up to date" if same else "band.json is stale: run scripts/fit_band.py")
        return 0 if same else 1
    BAND_FILE.write_text(text)
    print(f"wrote {BAND_FILE.relative_to(ROOT)} ({len(json.loads(text)['records'])} fit records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
