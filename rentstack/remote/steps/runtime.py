"""vLLM itself on the host: a venv on the data disk (native runner) or the image (compose)."""

from __future__ import annotations

import shlex
from pathlib import Path

from rentstack.errors import RentstackError
from rentstack.remote import runners
from rentstack.remote.facts import Fact, command_fact, image_present_fact, images_fact, parse_venv_marker, wheelhouse_fact
from rentstack.remote.host_state import checksum
from rentstack.remote.steps import Step
from rentstack.remote.steps.context import Ctx, Host, View
from rentstack.render import image_for
from rentstack.render.around import PartImage, build_argv, part_images
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


REPO = Path(__file__).resolve().parents[3]
FRONT_DOCKERFILE = REPO / "scripts" / "front.Dockerfile"
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


def parts(ctx: Ctx) -> list[Step]:
    """[step] when --profiles asks for parts with images of their own (compose hosts only:
    the plan refused them on the native runner); [] otherwise."""
    images = part_images(ctx.opts.profiles)
    return [_parts(ctx, images)] if images and ctx.runner == "compose" else []


WEBUI_WHEELHOUSE_DIR = "webui-wheelhouse"
"""Under the host's cache dir: the Open WebUI wheels, uploaded from this machine's wheelhouse."""


def _parts(ctx: Ctx, images: tuple[PartImage, ...]) -> Step:
    tags = tuple(i.tag for i in images)

    def check(view: View) -> str | None:
        present = view.read(images_fact(tags))
        if all(present.get(t) for t in tags):
            return f"{', '.join(tags)} present — skipped"
        return None

    def act(host: Host) -> str:
        present = host.view().read(images_fact(tags))
        done = [f"{i.tag} present" for i in images if present.get(i.tag)]
        for image in images:
            if not present.get(image.tag):
                _build_part(ctx, host, image)
                done.append(f"built {image.tag}")
        return "; ".join(done)

    what = ", ".join(f"{i.tag} ({i.what})" for i in images)
    verb = "is" if len(images) == 1 else "are"
    return Step("runtime: parts", f"make sure {what} {verb} on the host: built there from the Dockerfiles "
                                  "`make up` uses", act, check)


def part_build_command(ctx: Ctx, image: PartImage) -> str:
    """The host's `docker build` of a part: the same Dockerfile and build command as here
    (rentstack.render.around.build_argv) under the deploy dir, on the front's Debian base."""
    context = (f"{ctx.layout.cache}/{WEBUI_WHEELHOUSE_DIR}" if image.context is None
               else f"{ctx.layout.deploy}/{image.context}")
    return shlex.join(build_argv(image, root=ctx.layout.deploy, context=context, base=REMOTE_FRONT_BASE))


def _build_part(ctx: Ctx, host: Host, image: PartImage) -> None:
    host.write(f"{ctx.layout.deploy}/{image.dockerfile}", (REPO / image.dockerfile).read_text(), 0o644)
    if image.context is None:
        # Open WebUI's ~240 wheels (0.75 GB, CPU torch), resolved for bookworm's python once on
        # this machine (the same wheelhouse `make up PROFILES=webui` builds from) and uploaded:
        # the host needs no pip and no resolver run of its own.
        from rentstack.local.profile_images import WEBUI_WHEELHOUSE, fill_webui_wheelhouse

        fill_webui_wheelhouse()
        remote = f"{ctx.layout.cache}/{WEBUI_WHEELHOUSE_DIR}"
        for wheel in sorted(WEBUI_WHEELHOUSE.iterdir()):
            if wheel.is_file():
                host.put_file(str(wheel), f"{remote}/{wheel.name}")
    else:
        for path in sorted((REPO / image.context).iterdir()):
            if path.is_file():
                host.write(f"{ctx.layout.deploy}/{image.context}/{path.name}", path.read_text(), 0o644)
    host.check(part_build_command(ctx, image), f"docker build {image.tag}", timeout=3600)
