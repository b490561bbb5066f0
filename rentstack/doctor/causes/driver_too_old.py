"""driver_too_old: the host's NVIDIA driver cannot run the CUDA build this vLLM was made with.

The fix is not a vLLM flag: it is another release (the newest the driver runs, from the
release matrix in rentstack/config/releases.yaml) or a newer driver, so the explanation
carries it and no launch fix is proposed.
"""

from __future__ import annotations

import re

from rentstack.doctor.causes.base import Cause, Context, Found

DRIVER_TOO_OLD = re.compile(
    r"unsatisfied condition: cuda>=(?P<need>\d+\.\d+)"
    r"|The NVIDIA driver on your system is too old \(found version (?P<found>\d+)\)"
    r"|CUDA driver version is insufficient for CUDA runtime version"
    r"|Error 804: forward compatibility was attempted on non supported HW"
    r"|Error 803: system has unsupported display driver / cuda driver combination"
    r"|the provided PTX was compiled with an unsupported toolchain"
)
"""Where each comes from (../shared/notes/vllm-cuda-driver-matrix.md §3):
- the container runtime refusing the image's NVIDIA_REQUIRE_CUDA gate (nvidia-container-cli;
  vllm#18813 `cuda>=12.8` for 0.9.0);
- torch's CUDA init (torch/cuda/__init__.py _check_driver: 'found version 12080' is the
  driver's CUDA 12.8; verl-omni#133 with vLLM 0.20.2);
- cudaErrorInsufficientDriver (35), cudaErrorCompatNotSupportedOnDevice (804: the image's
  cuda-compat libraries on a GeForce card, vllm#5510), cudaErrorSystemDriverMismatch (803:
  compat libraries shadowing the host driver, vllm#33447) and cudaErrorUnsupportedPtxVersion
  (222: PTX from a newer toolkit than the driver, vllm#31700 and #38619), as torch raises them."""


def match(line: str) -> Found | None:
    m = DRIVER_TOO_OLD.search(line)
    if not m:
        return None
    details: dict[str, object] = {}
    if m.group("need"):
        details["needs_cuda"] = m.group("need")
    if m.group("found"):
        from rentstack.releases import cuda_of_code

        details["driver_cuda"] = cuda_of_code(int(m.group("found")))
    if "803" in m.group(0) or "804" in m.group(0):
        details["compat_libraries"] = True
    return Found("startup", details)


def advice(version: str | None, driver_cuda: str | None, needs_cuda: str | None) -> str:
    """The fix from the release matrix: what this driver runs, and what this release needs."""
    from rentstack.releases import load_matrix, newest_for_cuda, releases_for_version

    m = load_matrix()
    parts: list[str] = []
    builds = releases_for_version(version) if version else []
    need = needs_cuda or (builds[0].cuda if builds else None)
    if need and need in m.cuda_drivers:
        who = f"vLLM {version}" if version else "This image"
        parts.append(f"{who} needs CUDA {need}, i.e. driver ≥ {m.min_driver(need)}")
    if driver_cuda:
        best = newest_for_cuda(driver_cuda)
        parts.append(f"this driver supports CUDA {driver_cuda}, "
                     + (f"so the newest release it runs is vLLM {best.name}" if best
                        else "older than any release rentstack installs"))
    how = ("run `fab provision` / `make up` again without --vllm-version (VLLM=): they read the driver "
           "and pick the newest release it runs, or rent a host with a newer driver (RunPod "
           "allowedCudaVersions, Vast cuda_max_good, AutoDL's CUDA filter)")
    text = "; ".join(parts)
    if text.startswith("this"):
        text = "T" + text[1:]
    return (text + ". " if text else "") + how[0].upper() + how[1:] + "."


def explain(ctx: Context) -> str:
    version = ctx.situation.figures.get("vllm_version")
    compat = ("The image's CUDA forward-compatibility libraries do not work on this card or driver "
              "(they only help datacenter GPUs). " if ctx.details.get("compat_libraries") else "")
    return (f"The host's NVIDIA driver is too old for the CUDA build of this vLLM. {compat}"
            + advice(version, ctx.details.get("driver_cuda"), ctx.details.get("needs_cuda")))


CAUSE = Cause(
    name="driver_too_old",
    summary="the host's NVIDIA driver is older than the CUDA build of this vLLM (another release or a newer driver fixes it)",
    triggers=("unsatisfied condition", "driver on your system is too old", "CUDA driver version is insufficient",
              "Error 804", "Error 803", "PTX was compiled"),
    match=match,
    explain=explain,
    figures=("driver_cuda", "needs_cuda"),
    examples=(
        "nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.9, please update your driver to a "
        "newer version, or use an earlier cuda container: unknown",
        "RuntimeError: The NVIDIA driver on your system is too old (found version 12080). Please update your GPU "
        "driver by downloading and installing a new version from the URL: http://www.nvidia.com/Download/index.aspx",
        "RuntimeError: CUDA driver version is insufficient for CUDA runtime version",
        "RuntimeError: Unexpected error from cudaGetDeviceCount(). Did you run some cuda functions before calling "
        "NumCudaDevices() that might have already set an error? Error 804: forward compatibility was attempted on "
        "non supported HW",
        "torch.AcceleratorError: CUDA error: the provided PTX was compiled with an unsupported toolchain.",
    ),
)
