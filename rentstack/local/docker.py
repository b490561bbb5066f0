"""Small checks and calls around the local Docker engine and Compose.

Preflight answers in one line what is missing and how to fix it: no docker CLI, daemon
down, no `docker compose`, host port already taken.
"""

from __future__ import annotations

import shutil
import socket
import subprocess

from rentstack.errors import RentstackError


def run(cmd: list[str], *, check: bool = True, capture: bool = False, timeout: float | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command; a failure becomes a one-line RentstackError naming it."""
    try:
        proc = subprocess.run(cmd, text=True, capture_output=capture, timeout=timeout, env=env)
    except FileNotFoundError:
        raise RentstackError(f"{cmd[0]} is not installed: run `make host` (root) to install Docker and Compose") from None
    except subprocess.TimeoutExpired:
        raise RentstackError(f"`{' '.join(cmd[:4])} ...` did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or "").strip().splitlines()[-1:] if capture else []
        raise RentstackError(f"`{' '.join(cmd[:5])}` failed (exit {proc.returncode})"
                             + (f": {detail[0]}" if detail else ""))
    return proc


def require_docker() -> None:
    """The docker CLI, a running daemon, and Compose v2 — or one line saying which is missing."""
    if shutil.which("docker") is None:
        raise RentstackError("Docker is not installed: run `make host` as root (installs docker.io and Compose)")
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0 or not info.stdout.strip():
        raise RentstackError("the Docker daemon is not running (or this user cannot reach it): "
                             "run `make host` as root, or start dockerd")
    compose = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True)
    if compose.returncode != 0:
        raise RentstackError("`docker compose` (Compose v2) is missing: run `make host` as root")


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def port_free(bind: str, port: int) -> bool:
    """True when nothing listens on bind:port (the check Compose would fail on later)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind, port))
        except OSError:
            return False
    return True
