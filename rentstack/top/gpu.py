"""GPU memory and utilization for the live view: one nvidia-smi command and a pure parser."""

from __future__ import annotations

from dataclasses import dataclass

from rentstack.remote.facts import nvidia_smi_number, nvidia_smi_rows

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


def parse_gpu_load(output: str, exit_code: int = 0) -> tuple[GpuLoad, ...]:
    """Parse GPU_LOAD_COMMAND's output; a failing nvidia-smi (no GPU, no driver) gives ()."""
    return tuple(GpuLoad(index, name, *map(nvidia_smi_number, cells))
                 for index, name, cells in nvidia_smi_rows(output, exit_code))
