"""vLLM itself on the host: a venv on the data disk (native runner) or the image (compose)."""

from __future__ import annotations

import shlex
from pathlib import Path

from rentstack.errors import RentstackError
from rentstack.remote import runners
from rentstack.remote.facts import Fact, command_fact, image_present_fact, parse_venv_marker, wheelhouse_fact
from rentstack.remote.host_state import checksum
from rentstack.remote.steps import Step
from rentstack.remote.steps.context import Ctx, Host, View
from rentstack.render import image_for
from rentstack.versions import FRONT_IMAGE


def venv_marker_fact(ctx: Ctx) -> Fact[str | None]:
    """The wheel the venv was completed with, or None (no venv, or an interrupted install)."""
    return command_fact("venv_marker", runners.venv_check(ctx.layout), parse_venv_marker)


def wheels(ctx: Ctx, view: View) -> str | None:
    """Where pip installs from: --wheels, else AutoDL's public wheelhouse when it holds wheels."""
    if ctx.opts.wheels:
        return ctx.opts.wheels
    return runners.AUTODL_WHEELS if view.read(wheelhouse_fact(runners.AUTODL_WHEELS)) else None


def step(ctx: Ctx) -> Step:
    return _venv(ctx) if ctx.runner == "native" else _image(ctx)


def _venv(ctx: Ctx) -> Step:
    wheel = runners.venv_wheel(ctx.tier, ctx.release)
    venv = ctx.layout.venv

    def check(view: View) -> str | None:
        if view.read(venv_marker_fact(ctx)) == wheel:
            return f"vLLM venv present ({wheel} at {venv}) — skipped"
        return None

    def act(host: Host) -> str:
        source = wheels(ctx, host.view())
        # Caches come from env.sh: sshd drops most variables a client sends (AcceptEnv).
        script = f". {shlex.quote(ctx.layout.env_sh)} 2>/dev/null || true\n"
        host.check(script + runners.venv_install(ctx.layout, ctx.tier, source, ctx.release),
                   f"installing {wheel} into {venv}", timeout=3600)
        where = f"from {source}" if source else "from the package index"
        return host.record("runtime", checksum(wheel), f"installed {wheel} into {venv} {where}")

    return Step("runtime: venv", f"install {wheel} into a venv on the data disk", act, check)


FRONT_DOCKERFILE = Path(__file__).resolve().parents[3] / "scripts" / "front.Dockerfile"
REMOTE_FRONT_BASE = "debian:bookworm-slim"
"""Base of the front image built on a compose host: the Debian release of the local debootstrap base."""


def _image(ctx: Ctx) -> Step:
    image = image_for(ctx.tier, ctx.release)

    def check(view: View) -> str | None:
        if view.read(image_present_fact(image)) and view.read(image_present_fact(FRONT_IMAGE)):
            return f"image {image} present, front {FRONT_IMAGE} present — skipped"
        if ctx.tier.accelerator == "cpu" and not view.read(image_present_fact(image)):
            raise RentstackError(f"image {image} is not on the host and cannot be pulled (it is built from "
                                 "package mirrors): run `make image` there, or use --runner native")
        return None

    def act(host: Host) -> str:
        done = []
        if not host.view().read(image_present_fact(image)):
            host.check(f"docker pull -q {shlex.quote(image)}", f"docker pull {image}", timeout=3600)
            done.append(f"pulled {image}")
        if not host.view().read(image_present_fact(FRONT_IMAGE)):
            # The front's Dockerfile copies nothing, so it builds from stdin without a context; a
            # host with Docker reaches a registry (it pulls the vLLM image): Debian's slim image.
            dockerfile = f"{ctx.layout.deploy}/front.Dockerfile"
            host.write(dockerfile, FRONT_DOCKERFILE.read_text(), 0o644)
            host.check(f"docker build -q -t {shlex.quote(FRONT_IMAGE)} --build-arg BASE={REMOTE_FRONT_BASE} "
                       f"- < {shlex.quote(dockerfile)}", f"docker build {FRONT_IMAGE}", timeout=1800)
            done.append(f"built {FRONT_IMAGE}")
        return host.record("runtime", checksum(image), "; ".join(done))

    return Step("runtime: image", f"make sure {image} and the front's image are on the host", act, check)
