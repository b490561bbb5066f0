"""This machine's GPUs, read with the same facts (commands + parsers) a rented host is read with."""

from __future__ import annotations

import subprocess

from rentstack.releases import Choice, GpuHost, choose_or_default
from rentstack.remote.facts import GPU_CAPS, GPUS, NVIDIA_DRIVER, facts_from_sections, facts_script, split_sections


def local_gpu_host() -> GpuHost | None:
    """Driver, CUDA version and cards from the local nvidia-smi; None without a GPU."""
    script = facts_script((GPUS, GPU_CAPS, NVIDIA_DRIVER))
    try:
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return GpuHost.from_facts(facts_from_sections(split_sections(out)))


def local_choice(requested: str | None = None, runner: str = "compose") -> Choice:
    """The vLLM release for a GPU tier on this machine (`make up`, `make plan`)."""
    return choose_or_default(local_gpu_host(), runner, requested)  # type: ignore[arg-type]
