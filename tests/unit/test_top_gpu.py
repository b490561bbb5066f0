"""nvidia-smi's GPU load query → GpuLoad, on its documented CSV format (no GPU on this machine)."""

from __future__ import annotations

from pathlib import Path

from rentstack.top.gpu import GPU_LOAD_COMMAND, GpuLoad, parse_gpu_load

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "top"


def test_two_cards():
    text = (GOLDEN / "nvidia-smi-gpu-load.rtx4090x2.documented-format.txt").read_text()
    assert parse_gpu_load(text) == (
        GpuLoad(0, "NVIDIA GeForce RTX 4090", 97.0, 22816.0, 24564.0),
        GpuLoad(1, "NVIDIA GeForce RTX 4090", 0.0, 1.0, 24564.0),
    )


def test_vgpu_without_utilization():
    text = (GOLDEN / "nvidia-smi-gpu-load.vgpu-a10-24q.documented-format.txt").read_text()
    (card,) = parse_gpu_load(text)
    assert card.utilization_pct is None and card.memory_used_mib == 18342.0


def test_failing_nvidia_smi_means_no_gpu():
    no_driver = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                 "Make sure that the latest NVIDIA driver is installed and running.\n")
    assert parse_gpu_load(no_driver, exit_code=9) == ()
    assert parse_gpu_load("No devices were found\n") == ()


def test_the_command_asks_for_the_five_columns_the_parser_reads():
    assert "--query-gpu=index,name,utilization.gpu,memory.used,memory.total" in GPU_LOAD_COMMAND
    assert "--format=csv,noheader,nounits" in GPU_LOAD_COMMAND
