"""The optional parts around the server, as compose profiles beside the tier profiles.

  webui       Open WebUI (its own image from PyPI), its own login, talks to the front with the key
  monitoring  Prometheus (Debian's package) scraping /metrics through the front with the metrics token
  idle-stop   the idle watchdog (rentstack/idle/watchdog.py) on the base image, stopping the server

Pure: names, images and the values compose.yaml and compose.env need. Every part reaches
vLLM only through `front` (http://front:8080 on the compose network), never directly.
"""

from __future__ import annotations

from rentstack.errors import RentstackError, one_of
from rentstack.versions import BASE_IMAGE, OPEN_WEBUI_IMAGE, PROMETHEUS_IMAGE

PROFILES = ("webui", "monitoring", "idle-stop")
"""Profiles a user may add to a tier: `make up PROFILES="webui monitoring"`."""
IDLE_ACTIONS = ("stop", "poweroff")
WEBUI_PORT = 3000
"""Host port of the chat UI (published on RENTSTACK_BIND like the API; the UI has its own login)."""
WATCHDOG_IN_PROJECT = "rentstack/idle/watchdog.py"
"""The watchdog's path relative to compose's project directory (the repo, or the host's deploy dir)."""


def check_profiles(profiles: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Known profile names, deduplicated in order; one line naming an unknown one."""
    out: list[str] = []
    for name in profiles:
        if name not in PROFILES:
            raise one_of("profile", name, PROFILES)
        if name not in out:
            out.append(name)
    return tuple(out)


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


def active_profiles(tier_profile: str, extra: tuple[str, ...], idle_stop: str) -> tuple[str, ...]:
    """The tier's profile, the requested parts, and idle-stop when a window is set."""
    parts = [p for p in extra if p != "idle-stop"]      # the watchdog runs only with a window
    if idle_stop != "off":
        parts.append("idle-stop")
    return (tier_profile, *parts)


def compose_env_values(profiles: tuple[str, ...], idle_stop: str, idle_action: str,
                       state_dir: str, served_model: str) -> list[tuple[str, str]]:
    """compose.env lines for the parts (COMPOSE_PROFILES itself is written by the tier's render)."""
    return [
        ("RENTSTACK_SERVED_MODEL", served_model),
        ("RENTSTACK_IDLE_STOP", idle_stop),
        ("RENTSTACK_IDLE_ACTION", idle_action),
        ("RENTSTACK_WEBUI_PORT", str(WEBUI_PORT)),
        ("RENTSTACK_WEBUI_MODEL_PARAMS", "{}"),   # the UI's default sampling parameters (JSON); {} = the model's
        ("RENTSTACK_PROMETHEUS_DIR", f"{state_dir}/prometheus"),
        ("RENTSTACK_WEBUI_DIR", f"{state_dir}/webui"),
    ]


def template_values() -> dict[str, object]:
    """What templates/compose-around.yaml.j2 substitutes."""
    return {"base_image": BASE_IMAGE, "webui_image": OPEN_WEBUI_IMAGE, "prometheus_image": PROMETHEUS_IMAGE,
            "webui_port": WEBUI_PORT, "watchdog": WATCHDOG_IN_PROJECT}
