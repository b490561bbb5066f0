"""Images of the parts around the server, built from package mirrors only (no registry pull).

  rentstack/open-webui   Open WebUI from PyPI with the CPU torch wheel (scripts/open-webui.Dockerfile)
  rentstack/prometheus   Prometheus from Debian's package (scripts/prometheus.Dockerfile)

Built only when a profile that needs them is asked for, so `make up` for the tier alone
does not wait for them. Each step is skipped when its result is already there.
"""

from __future__ import annotations

from pathlib import Path

from rentstack.local.image import REPO, WHEELHOUSE, docker_build, download_once, ensure_base, image_present
from rentstack.render.around import PART_IMAGES, PartImage, build_argv
from rentstack.versions import BASE_IMAGE, OPEN_WEBUI_IMAGE, OPEN_WEBUI_VERSION, PROMETHEUS_IMAGE

WEBUI_WHEELHOUSE = REPO / ".cache" / "webui-wheelhouse"
IMAGE_PYTHON_FULL = "3.11.2"
"""Debian bookworm's python3. Some of Open WebUI's dependencies need 3.11.5 in their newest
release (soupsieve) or add a backport below 3.11.3 (redis -> async-timeout), so the wheels
are resolved for this exact version, not for the host's Python."""


def _cpu_torch_pin(wheelhouse: Path = WHEELHOUSE) -> str:
    """The CPU torch the vLLM image uses (found in its wheelhouse), so Open WebUI gets no CUDA torch."""
    for wheel in sorted(wheelhouse.glob("torch-*+cpu-*.whl")):
        return "torch==" + wheel.name.split("-")[1]
    return "torch==2.13.0+cpu"


def fill_webui_wheelhouse(wheelhouse: Path = WEBUI_WHEELHOUSE) -> None:
    download_once(wheelhouse, f"open-webui-{OPEN_WEBUI_VERSION}",
                  f"open-webui=={OPEN_WEBUI_VERSION} and its dependencies (~0.75 GB, CPU torch)",
                  ["--python-version", IMAGE_PYTHON_FULL, "--only-binary=:all:",
                   f"open-webui=={OPEN_WEBUI_VERSION}", "async-timeout"],
                  constraints=f"{_cpu_torch_pin()}\n")


def build_webui_image(base: str = BASE_IMAGE, tag: str = OPEN_WEBUI_IMAGE, rebuild: bool = False) -> None:
    if image_present(tag, rebuild):
        return
    ensure_base(base)
    fill_webui_wheelhouse()
    docker_build(_argv(_image("webui"), tag, base, str(WEBUI_WHEELHOUSE)), tag, base, "several minutes: ~240 wheels")


def _image(profile: str) -> PartImage:
    return next(image for image in PART_IMAGES if image.profile == profile)


def _argv(image: PartImage, tag: str, base: str, context: str) -> list[str]:
    return build_argv(image, root=str(REPO), context=context, base=base, tag=tag)


def build_prometheus_image(base: str = BASE_IMAGE, tag: str = PROMETHEUS_IMAGE, rebuild: bool = False) -> None:
    if image_present(tag, rebuild):
        return
    ensure_base(base)
    image = _image("monitoring")
    docker_build(_argv(image, tag, base, str(REPO / str(image.context))), tag, base,
                 "Debian's prometheus package, ~30 s")


def build_profile_images(profiles: tuple[str, ...], base: str = BASE_IMAGE) -> None:
    """The images the requested parts need (idle-stop runs on the base image itself)."""
    if "webui" in profiles:
        build_webui_image(base)
    if "monitoring" in profiles:
        build_prometheus_image(base)
    if "idle-stop" in profiles:
        ensure_base(base)
