"""The optional parts around the server, as compose profiles beside the tier profiles.

  webui       Open WebUI (its own image from PyPI), its own login, talks to the front with the key
  monitoring  Prometheus (Debian's package) scraping /metrics through the front with the metrics token
  idle-stop   the idle watchdog (rentstack/idle/watchdog.py) on the base image, stopping the server

Pure: names, images and the values compose.yaml and compose.env need. Every part reaches
vLLM only through `front` (http://front:8081 on the compose network: the front's plain listener
that is never published), never directly.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from rentstack.errors import RentstackError, one_of
from rentstack.versions import BASE_IMAGE, OPEN_WEBUI_IMAGE, OPEN_WEBUI_VERSION, PROMETHEUS_IMAGE

PROFILES = ("webui", "monitoring", "idle-stop")
"""Profiles a user may add to a tier: `make up PROFILES="webui monitoring"`."""
IDLE_ACTIONS = ("stop", "poweroff")
WEBUI_PORT = 3000
"""Host port of the chat UI, on 127.0.0.1 only: it speaks plain HTTP, so a --public bind does not
publish it (reach it from afar through an SSH tunnel)."""
WATCHDOG_IN_PROJECT = "rentstack/idle/watchdog.py"
"""The watchdog's path relative to compose's project directory (the repo, or the host's deploy dir)."""
PROMETHEUS_CONFIG = "scripts/prometheus/prometheus.yml"
"""Prometheus' scrape config, mounted from the project directory (no token in it)."""
PROJECT_FILES = {"monitoring": (PROMETHEUS_CONFIG,), "idle-stop": (WATCHDOG_IN_PROJECT,)}
"""Files a part mounts from compose's project directory, relative to it: a remote host gets
them uploaded beside compose.yaml (rentstack.remote.steps.render)."""
SERVICES = {"webui": "webui", "monitoring": "prometheus", "idle-stop": "idle-stop"}
"""Profile -> its compose service (templates/compose-around.yaml.j2)."""
DOCKER_ONLY = ("webui", "monitoring")
"""Parts that run only as containers: a host without Docker (the native runner) cannot run them."""

ADMIN_EMAIL = "admin@rentstack.example"
"""Login name of the generated admin (a reserved example domain: it never receives mail)."""
WEBUI_ADMIN_FILE = "webui/admin.env"
"""The chat UI's admin login, relative to the state directory (0600, generated once, kept)."""
PART_DIRS = {"webui": ("webui", "webui/data"), "monitoring": ("prometheus",)}
"""Where each part keeps its data, relative to the state directory (compose.env's
RENTSTACK_WEBUI_DIR and RENTSTACK_PROMETHEUS_DIR): beside the tier directories, which a
re-render replaces, so the UI's users and the metrics history survive it."""


def check_profiles(profiles: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Known profile names, deduplicated in order; one line naming an unknown one."""
    out: list[str] = []
    for name in profiles:
        if name not in PROFILES:
            raise one_of("profile", name, PROFILES)
        if name not in out:
            out.append(name)
    return tuple(out)


def check_runner(profiles: tuple[str, ...], runner: str | None) -> None:
    """One line when a part that needs Docker is asked of a host without it."""
    wanted = [p for p in profiles if p in DOCKER_ONLY]
    if runner == "native" and wanted:
        raise RentstackError(
            f"{' and '.join(wanted)} {'needs' if len(wanted) == 1 else 'need'} Docker, and the native runner's hosts "
            "(AutoDL-like containers) have none: Open WebUI (a 3 GB image) and Prometheus run as containers. Use a "
            "host with Docker (--runner "
            "compose), or run them on your machine against `fab tunnel` (live metrics: `fab top`)")


def webui_admin_text() -> str:
    """admin.env of the chat UI: a new admin password and session secret (written 0600, once)."""
    return ("# Open WebUI's admin login (created on its first start) and session secret; keep 0600\n"
            f"WEBUI_ADMIN_EMAIL={ADMIN_EMAIL}\n"
            f"WEBUI_ADMIN_PASSWORD={secrets.token_urlsafe(18)}\n"
            f"WEBUI_SECRET_KEY={secrets.token_urlsafe(32)}\n")


@dataclass(frozen=True)
class PartImage:
    """How a part's image is built, here (rentstack.local.profile_images) and on a Docker host
    (rentstack.remote.steps.runtime): the same Dockerfile, paths relative to the repo there
    and to the host's project directory."""

    profile: str
    tag: str
    dockerfile: str
    context: str | None
    """The build context relative to the repo; None: the wheelhouse `pip download` fills."""
    build_args: tuple[tuple[str, str], ...]
    what: str
    gib: float
    """Room it takes on a Docker host while it is built there: the image, plus a build context
    uploaded from this machine (the disk check counts it when the image is missing)."""


PART_IMAGES = (
    # 3.03 GB image + its 736 MB wheelhouse (242 wheels), measured here
    PartImage("webui", OPEN_WEBUI_IMAGE, "scripts/open-webui.Dockerfile", None,
              (("OPEN_WEBUI", f"open-webui=={OPEN_WEBUI_VERSION}"),), "Open WebUI from PyPI, CPU torch", 3.6),
    # 506 MB image, measured here
    PartImage("monitoring", PROMETHEUS_IMAGE, "scripts/prometheus.Dockerfile", "scripts/prometheus", (),
              "Debian's prometheus package", 0.5),
)


def part_images(profiles: tuple[str, ...]) -> tuple[PartImage, ...]:
    """The images the requested parts need (idle-stop runs on the base image itself)."""
    return tuple(image for image in PART_IMAGES if image.profile in profiles)


def build_argv(image: PartImage, *, root: str, context: str, base: str, tag: str | None = None) -> list[str]:
    """`docker build` of a part's image (as ``tag``, default its own): ``root`` holds the
    Dockerfile at ``image.dockerfile``."""
    args = [word for key, value in image.build_args for word in ("--build-arg", f"{key}={value}")]
    return ["docker", "build", "-q", "-t", tag or image.tag, "--build-arg", f"BASE={base}", *args,
            "-f", f"{root}/{image.dockerfile}", context]


def check_idle(window: str, action: str) -> str:
    """The idle window as the watchdog reads it ('off' or e.g. '30m'); one line on bad input."""
    from rentstack.idle.watchdog import parse_window

    try:
        seconds = parse_window(window or "off")
    except ValueError as exc:
        raise RentstackError(f"idle-stop: {exc}") from None
    if action not in IDLE_ACTIONS:
        raise one_of("idle action", action, IDLE_ACTIONS)
    return "off" if not seconds else window.strip().lower()


def active_parts(extra: tuple[str, ...], idle_stop: str) -> tuple[str, ...]:
    """The requested parts, and idle-stop when a window is set (what gets images, dirs, a start)."""
    parts = [p for p in extra if p != "idle-stop"]      # the watchdog runs only with a window
    if idle_stop != "off":
        parts.append("idle-stop")
    return tuple(parts)


def active_profiles(tier_profile: str, extra: tuple[str, ...], idle_stop: str) -> tuple[str, ...]:
    """COMPOSE_PROFILES: the tier's profile, then the active parts."""
    return (tier_profile, *active_parts(extra, idle_stop))


REMOTE_IDLE_IMAGE = "python:3.11-slim"
"""The idle watchdog's image on a rented Docker host: it needs python3 only, and such a host has
no debootstrap'ed base but pulls from a registry (as it does for vLLM's image)."""


def compose_env_values(profiles: tuple[str, ...], idle_stop: str, idle_action: str,
                       state_dir: str, served_model: str, idle_image: str = BASE_IMAGE) -> list[tuple[str, str]]:
    """compose.env lines for the parts (COMPOSE_PROFILES itself is written by the tier's render)."""
    return [
        ("RENTSTACK_IDLE_IMAGE", idle_image),
        ("RENTSTACK_SERVED_MODEL", served_model),
        ("RENTSTACK_IDLE_STOP", idle_stop),
        ("RENTSTACK_IDLE_ACTION", idle_action),
        ("RENTSTACK_WEBUI_PORT", str(WEBUI_PORT)),
        ("RENTSTACK_WEBUI_MODEL_PARAMS", "{}"),   # the UI's default sampling parameters (JSON); {} = the model's
        ("RENTSTACK_PROMETHEUS_DIR", f"{state_dir}/{PART_DIRS['monitoring'][0]}"),
        ("RENTSTACK_WEBUI_DIR", f"{state_dir}/{PART_DIRS['webui'][0]}"),
    ]


def template_values() -> dict[str, object]:
    """What templates/compose-around.yaml.j2 substitutes."""
    return {"base_image": BASE_IMAGE, "webui_image": OPEN_WEBUI_IMAGE, "prometheus_image": PROMETHEUS_IMAGE,
            "webui_port": WEBUI_PORT, "watchdog": WATCHDOG_IN_PROJECT, "prometheus_config": PROMETHEUS_CONFIG}
