"""GPU memory and utilization for the live view: one nvidia-smi command and a pure parser."""

from __future__ import annotations

import re
from dataclasses import dataclass

GPU_LOAD_COMMAND = ("nvidia-smi", "--query-gpu=index,name,utilization.gpu,memory.used,memory.total",
                    "--format=csv,noheader,nounits")
"""Five columns per card; vGPUs and some drivers print '[N/A]' or '[Not Supported]' for a field."""


@dataclass(frozen=True)
class GpuLoad:
    index: int
    name: str
    utilization_pct: float | None
    memory_used_mib: float | None
    memory_total_mib: float | None


def _number(cell: str) -> float | None:
    cell = cell.strip()
    return float(cell) if re.fullmatch(r"\d+(?:\.\d+)?", cell) else None


def parse_gpu_load(output: str, exit_code: int = 0) -> tuple[GpuLoad, ...]:
    """Parse GPU_LOAD_COMMAND's output; a failing nvidia-smi (no GPU, no driver) gives ()."""
    if exit_code != 0:
        return ()
    cards = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 5 or not cells[0].isdigit():
            continue
        name = ",".join(cells[1:-3]).strip()
        cards.append(GpuLoad(int(cells[0]), name, _number(cells[-3]), _number(cells[-2]), _number(cells[-1])))
    return tuple(cards)
