"""`rentstack image`: build the vLLM CPU image and the front-door image from package mirrors (no registry pull)."""

from __future__ import annotations

import argparse

from rentstack.local.docker import require_docker
from rentstack.local.image import build_cpu_image, build_front_image
from rentstack.versions import BASE_IMAGE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("image", help="build the vLLM CPU and front-door images locally (debootstrap base or --base IMAGE)")
    p.add_argument("--base", default=BASE_IMAGE,
                   help=f"base image: {BASE_IMAGE} (made with debootstrap, no registry) or e.g. python:3.11-slim")
    p.add_argument("--rebuild", action="store_true", help="build even when the image exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_docker()
    build_cpu_image(base=args.base, rebuild=args.rebuild)
    build_front_image(base=args.base, rebuild=args.rebuild)
    return 0
