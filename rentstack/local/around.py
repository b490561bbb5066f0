"""Files the parts around the server need on this machine (written 0600, kept across renders).

STATE/webui/admin.env   the chat UI's admin login (generated once) and its session secret
STATE/webui/data/       Open WebUI's database
STATE/prometheus/       Prometheus' time series (on the data disk of a rented host)
They live beside the tier directories, not in them: a re-render swaps a tier directory
whole, and the UI's users and the metrics history must survive that.
"""

from __future__ import annotations

import os
from pathlib import Path

from rentstack.render.around import ADMIN_EMAIL, WEBUI_ADMIN_FILE, webui_admin_text
from rentstack.safe import read_env_text

__all__ = ["ADMIN_EMAIL", "ensure_prometheus_dir", "ensure_webui_files", "read_env_file"]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def read_env_file(path: Path) -> dict[str, str]:
    """An env file's KEY → value; {} when there is none yet."""
    return read_env_text(path.read_text()) if path.is_file() else {}


def ensure_webui_files(state_root: Path) -> Path:
    """admin.env (0600) with a generated password, once; the data directory. Returns admin.env."""
    base = state_root.resolve() / "webui"
    (base / "data").mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o700)
    admin = state_root.resolve() / WEBUI_ADMIN_FILE
    if not admin.is_file():
        _write_private(admin, webui_admin_text())
    return admin


def ensure_prometheus_dir(state_root: Path) -> Path:
    path = state_root.resolve() / "prometheus"
    path.mkdir(parents=True, exist_ok=True)
    # Debian's prometheus runs as root in this image; the directory stays private to root.
    os.chmod(path, 0o700)
    return path
