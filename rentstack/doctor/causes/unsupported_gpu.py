"""unsupported_gpu: this vLLM build (or the torch it installed) has no kernels for the card.

Like driver_too_old, the fix is another release, not a vLLM flag: the explanation names the
releases that ship kernels for the card, computed from rentstack/config/releases.yaml.
"""

from __future__ import annotations

import re

from rentstack.doctor.causes.base import Cause, Context, Found

UNSUPPORTED_GPU = re.compile(
    r"no kernel image is available for execution on the device"
    r"|with CUDA capability (?P<sm>sm_\d+) is not compatible with the current PyTorch installation"
)
"""cudaErrorNoKernelImageForDevice (209), raised by whichever kernel runs first on a card the
build left out (RTX 5090 on the v0.9.0 image, vllm#18995); torch's own warning names the
capability ('NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the
current PyTorch installation', torch/cuda/__init__.py _check_capability, vllm#13306)."""


def match(line: str) -> Found | None:
    m = UNSUPPORTED_GPU.search(line)
    if not m:
        return None
    return Found("startup", {"sm": m.group("sm")} if m.group("sm") else {})


def advice(sm: str | None) -> str:
    from rentstack.releases import card_support

    support = card_support()
    if sm:
        cap = f"{sm[3:-1]}.{sm[-1]}"
        if cap in support:
            return (f"Releases with kernels for {sm}: vLLM {support[cap]}. `fab provision` / `make up` read each "
                    "card's compute capability and pick one of them (drop --vllm-version / VLLM=).")
    known = "; ".join(f"sm_{c.replace('.', '')}: vLLM {r}" for c, r in support.items())
    return (f"Releases differ in the cards they ship kernels for ({known}). `fab provision` / `make up` read "
            "each card's compute capability (nvidia-smi --query-gpu=compute_cap) and pick a release that "
            "has them (drop --vllm-version / VLLM=).")


def explain(ctx: Context) -> str:
    version = ctx.situation.figures.get("vllm_version")
    who = f"vLLM {version}" if version else "This vLLM"
    return f"{who} has no CUDA kernels for this GPU. " + advice(ctx.details.get("sm"))


CAUSE = Cause(
    name="unsupported_gpu",
    summary="this vLLM build has no kernels for the card (another release fixes it)",
    triggers=("no kernel image", "is not compatible with the current PyTorch"),
    match=match,
    explain=explain,
    figures=("sm",),
    examples=(
        "RuntimeError: CUDA error: no kernel image is available for execution on the device",
        "UserWarning: NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current "
        "PyTorch installation.",
    ),
)
