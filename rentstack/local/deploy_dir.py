"""Write a deployment's artifacts under .rentstack/<tier>/, all or nothing.

Files are written into a fresh sibling directory and swapped in with renames, so an error
half-way leaves the previous render intact. The API key is generated once per tier
directory and kept across renders (clients keep working); secrets.env is created 0600.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rentstack.errors import RentstackError
from rentstack.safe import check_name, check_text, env_line
from rentstack.render import Deployment, render_compose_env, render_vllm_yaml

SECRETS_FILE = "secrets.env"
KEY_VAR = "VLLM_API_KEY"


@dataclass(frozen=True)
class Rendered:
    """Where a render put things."""

    directory: Path
    vllm_yaml: Path
    compose_env: Path
    secrets_env: Path
    api_key_created: bool


def parse_api_key(text: str) -> str | None:
    """The key in a secrets.env's text, or None."""
    for line in text.splitlines():
        if line.startswith(f"{KEY_VAR}="):
            return line.split("=", 1)[1].strip() or None
    return None


def read_api_key(secrets_env: Path) -> str | None:
    """The key stored in a secrets.env file, or None."""
    return parse_api_key(secrets_env.read_text()) if secrets_env.is_file() else None


def secrets_env_text(tier_name: str, key: str, extra: tuple[tuple[str, str], ...] = ()) -> str:
    """The secrets.env a tier's server reads VLLM_API_KEY (and HF_TOKEN, ...) from (to be written 0600)."""
    lines = [env_line(name, value, secret=True) for name, value in ((KEY_VAR, key), *extra)]
    return f"# API key for the vLLM server of tier {tier_name}; keep this file 0600\n" + "\n".join(lines) + "\n"


def new_api_key() -> str:
    return "rs-" + secrets.token_urlsafe(32)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


_RENDERED = ("vllm.yaml", "compose.env", SECRETS_FILE)


def _check_replaceable(target: Path, state_root: Path) -> None:
    """A render replaces state_root/<tier> wholesale: refuse when that is not an earlier
    render (`--state-dir /` must not swap out an unrelated /cpu)."""
    if not target.exists() and not target.is_symlink():
        return
    if target.is_symlink() or not target.is_dir() or (
            any(target.iterdir()) and not any((target / name).is_file() for name in _RENDERED)):
        raise RentstackError(f"--state-dir {str(state_root)!r}: {target} exists and is not a rentstack render "
                             "(no vllm.yaml, compose.env or secrets.env): choose another --state-dir")


def write_deployment(dep: Deployment, state_root: Path, cache_dir: Path) -> Rendered:
    """Render `dep` into state_root/<tier>/ atomically; returns the paths."""
    check_text("--state-dir", str(state_root))
    state_root = state_root.resolve()
    target = state_root / check_name("tier", dep.tier.name)
    _check_replaceable(target, state_root)
    try:
        state_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RentstackError(f"cannot create {state_root}: {exc.strerror}") from None
    old_key = read_api_key(target / SECRETS_FILE)
    key = old_key or (new_api_key() if dep.require_api_key else "")
    texts = {
        "vllm.yaml": render_vllm_yaml(dep),
        "compose.env": render_compose_env(dep, str(state_root), str(cache_dir.resolve())),
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{dep.tier.name}.", dir=state_root))
    try:
        os.chmod(staging, 0o700)
        for name, text in texts.items():
            (staging / name).write_text(text)
        _write_private(staging / SECRETS_FILE, secrets_env_text(dep.tier.name, key, dep.secret_env))
        backup = None
        if target.exists():
            backup = state_root / f".{dep.tier.name}.old"
            shutil.rmtree(backup, ignore_errors=True)
            target.rename(backup)
        staging.rename(target)
        if backup:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Rendered(directory=target, vllm_yaml=target / "vllm.yaml", compose_env=target / "compose.env",
                    secrets_env=target / SECRETS_FILE, api_key_created=old_key is None and bool(key))
