"""Write a deployment's artifacts under .rentstack/<tier>/, all or nothing, key kept.

The texts come from rentstack.render.artifacts; this module only puts them on disk:
  - the new tree is written into a fresh sibling directory, then swapped with the old one
    in one atomic exchange (renameat2 RENAME_EXCHANGE), so there is no moment without a
    tier directory and no moment without its API key; the old tree is removed after;
  - where the exchange is not available, two renames with the old tree kept aside as
    .<tier>.old until the new one is in place; a later render takes the key from there if
    a failure fell between the two renames;
  - renders hold a lock (flock on the state directory itself, so no lock file lies
    around), so concurrent renders queue instead of tearing each other's directories
    down; they all keep the one key.
The API key is generated once per tier directory and kept across renders.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rentstack.errors import RentstackError
from rentstack.render import Deployment
from rentstack.render.artifacts import RECORD_FILE, DeploymentRecord, parse_deployment_json, tier_files
from rentstack.local.tls import TlsFiles, load_provided, self_signed
from rentstack.render.front import FRONT_DIR
from rentstack.render.secrets import METRICS_VAR, SECRETS_FILE, new_api_key, new_metrics_token, parse_api_key, parse_secret
from rentstack.safe import check_name, env_value

# Kept importable from here: scripts and tests read keys through the local executor.
__all__ = ["Rendered", "read_api_key", "read_metrics_token", "read_record", "write_deployment", "new_api_key",
           "parse_api_key"]


@dataclass(frozen=True)
class Rendered:
    """Where a render put things."""

    directory: Path
    vllm_yaml: Path
    compose_env: Path
    secrets_env: Path
    record: Path
    api_key_created: bool
    front_dir: Path
    tls_fingerprint: str | None = None   # SHA-256 of the front's certificate when it serves HTTPS


def read_api_key(secrets_env: Path) -> str | None:
    """The key stored in a secrets.env file, or None."""
    return parse_api_key(secrets_env.read_text()) if secrets_env.is_file() else None


def read_metrics_token(secrets_env: Path) -> str | None:
    """The metrics token stored in a secrets.env file, or None."""
    return parse_secret(secrets_env.read_text(), METRICS_VAR) if secrets_env.is_file() else None


SELF_SIGNED_MARK = "tls.self-signed"
"""Beside a generated pair in front/: says the pair may be kept by the next render."""


def _tls_for(dep: Deployment, previous: Path) -> TlsFiles | None:
    """The provided pair, else the self-signed pair of the previous render, else a new one."""
    if not dep.tls:
        return None
    if dep.tls_cert and dep.tls_key:
        return load_provided(dep.tls_cert, dep.tls_key)
    old_cert, old_key, mark = previous / "tls.crt", previous / "tls.key", previous / SELF_SIGNED_MARK
    if old_cert.is_file() and old_key.is_file() and mark.is_file():
        return TlsFiles(cert_pem=old_cert.read_bytes(), key_pem=old_key.read_bytes())
    return self_signed(["localhost", "127.0.0.1", *([] if dep.bind in ("0.0.0.0", "::") else [dep.bind])])


def read_record(tier_dir: Path) -> DeploymentRecord:
    """deployment.json of a rendered tier directory."""
    path = tier_dir / RECORD_FILE
    if not path.is_file():
        raise RentstackError(f"{path} is missing: re-render the tier (`rentstack render` or `make up`)")
    return parse_deployment_json(path.read_text(), str(path))


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(mode=0o755, exist_ok=True)         # front/
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _libc():
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return lib if hasattr(lib, "renameat2") else None
    except OSError:
        return None


_LIBC = _libc()


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False when the system cannot (no renameat2, or a
    filesystem without RENAME_EXCHANGE), so the caller falls back to two renames."""
    if _LIBC is None:
        return False
    rc = _LIBC.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextmanager
def render_lock(state_root: Path) -> Iterator[None]:
    """One render in ``state_root`` at a time: an flock on the directory, released when the
    descriptor closes, also when the process dies."""
    fd = os.open(state_root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _swap_in(staging: Path, target: Path, backup: Path) -> None:
    """Put ``staging`` at ``target``; the old tree ends up removed."""
    if target.exists() and exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)      # now holds the old tree
        return
    if target.exists():
        shutil.rmtree(backup, ignore_errors=True)
        target.rename(backup)
    staging.rename(target)
    shutil.rmtree(backup, ignore_errors=True)


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
    env_value("--state-dir", str(state_root))   # it goes into compose.env too
    state_root = state_root.resolve()
    target = state_root / check_name("tier", dep.tier.name)
    _check_replaceable(target, state_root)
    backup = state_root / f".{dep.tier.name}.old"
    try:
        state_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RentstackError(f"--state-dir {str(state_root)!r}: cannot create it ({exc.strerror}): "
                             "choose a directory you can write to") from None
    with render_lock(state_root):
        # The backup holds the key only when a render died between its two renames.
        old_key = read_api_key(target / SECRETS_FILE) or read_api_key(backup / SECRETS_FILE)
        key = old_key or (new_api_key() if dep.require_api_key else "")
        token = read_metrics_token(target / SECRETS_FILE) or read_metrics_token(backup / SECRETS_FILE) \
            or new_metrics_token()
        tls = _tls_for(dep, target / FRONT_DIR)
        pair = (tls.cert_pem.decode(), tls.key_pem.decode()) if tls else None
        files = tier_files(dep, api_key=key, state_dir=str(state_root), cache_dir=str(cache_dir.resolve()),
                           metrics_token=token, tls=pair)
        if tls is not None and not dep.tls_cert:
            files[f"{FRONT_DIR}/{SELF_SIGNED_MARK}"] = ("generated by rentstack; kept across renders\n", 0o644)
        staging = Path(tempfile.mkdtemp(prefix=f".{dep.tier.name}.", dir=state_root))
        try:
            os.chmod(staging, 0o700)
            for name, (text, mode) in files.items():
                _write(staging / name, text, mode)
            _swap_in(staging, target, backup)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return Rendered(directory=target, vllm_yaml=target / "vllm.yaml", compose_env=target / "compose.env",
                    secrets_env=target / SECRETS_FILE, record=target / RECORD_FILE,
                    api_key_created=old_key is None and bool(key), front_dir=target / FRONT_DIR,
                    tls_fingerprint=tls.fingerprint if tls else None)
