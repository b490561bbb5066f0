"""What the user asked a fab task for: one keyword-only, validated, documented record.

Each field carries its flag's help text and its bounds; ``Options(...)`` checks every value
before any connection is made, so `--port abc`, `--port 0`, a relative `--data-dir` or a
`$(...)` in it is one line naming the flag and the fix, exit 2 (``InputError``). The fabfile
builds its flags and their --help from these fields; the package reads only ``Options``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rentstack.errors import RentstackError
from rentstack.remote import download

REPO = Path(__file__).resolve().parents[2]
LOCAL_HOSTS = REPO / ".rentstack" / "hosts"


def write_local_secret(path: Path, text: str) -> None:
    """A secret on this machine (a host's key, a replica set's key, a Ray token): created 0600
    in a 0700 directory, so it is never readable by others, even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)

MAX_SECONDS = 7 * 24 * 3600
"""Upper bound for any timeout or duration flag: a week (a typo of 10^9 is refused)."""


class InputError(RentstackError):
    """A flag's value is wrong: found before connecting; the fab tasks exit 2."""


def _help(text: str, **bounds: Any) -> dict[str, Any]:
    return {"help": text, **bounds}


_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
"""docker compose's rule for project names."""
_HOSTISH = re.compile(r"^[A-Za-z0-9._:/\[\]-]+$")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_int(name: str, value: object, lo: int, hi: int) -> int:
    """An integer flag within [lo, hi], or an InputError naming the flag and the range."""
    try:
        number = int(str(value).strip(), 10) if not isinstance(value, int) or isinstance(value, bool) else value
    except ValueError:
        raise InputError(f"{_flag(name)} {value!r} is not a whole number: give one from {lo} to {hi}") from None
    if not lo <= number <= hi:
        raise InputError(f"{_flag(name)} {number} is out of range: give one from {lo} to {hi}")
    return number


def _check_text(name: str, value: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 or ch in "\u2028\u2029\x85" for ch in value):
        raise InputError(f"{_flag(name)} {value!r} contains a control character: remove it")
    return value


def _check_abs_path(name: str, value: str) -> str:
    _check_text(name, value)
    if not value.startswith("/") or "/../" in f"{value}/":
        raise InputError(f"{_flag(name)} {value!r} must be an absolute path without '..' (e.g. /root/autodl-tmp)")
    return value


def _check_profiles(value: object, runner: str | None) -> tuple[str, ...]:
    """--profiles as the fab flag gives it ("webui,monitoring") or as a tuple: known names, in
    order, each once; refused on --runner native (no Docker there) before connecting."""
    from rentstack.render.around import check_profiles, check_runner

    names = value.replace(",", " ").split() if isinstance(value, str) else list(value or ())
    try:
        profiles = check_profiles([_check_text("profiles", str(n)) for n in names])
        if "idle-stop" in profiles:
            raise RentstackError("the idle stop is not a --profiles part over fab: give --idle-stop WINDOW (e.g. 30m)")
        check_runner(profiles, runner)
    except InputError:
        raise
    except RentstackError as exc:
        raise InputError(f"--profiles {','.join(map(str, names))!r}: {exc}") from None
    return profiles


@dataclass(frozen=True, kw_only=True)
class Options:
    """What the user asked for; every fab task builds one (keyword arguments only)."""

    tier: str = field(default="cpu", metadata=_help("hardware tier (stacks/<tier>.yaml), default cpu"))
    model: str | None = field(default=None, metadata=_help(
        "catalog name, or modelscope:ORG/NAME, hf:ORG/NAME, local:/path (default: the tier's)"))
    data_dir: str = field(default="/root/autodl-tmp", metadata=_help(
        "the host's data disk, an absolute path (default /root/autodl-tmp)"))
    port: int = field(default=8000, metadata=_help(
        "port the server listens on, on the host, 1-65535 (default 8000; AutoDL's custom service is 6006)",
        lo=1, hi=65535))
    bind: str = field(default="127.0.0.1", metadata=_help(
        "IP address on the host (default 127.0.0.1: reach it through the tunnel)"))
    runner: str | None = field(default=None, metadata=_help("compose or native (default: from the host's facts)"))
    project: str = field(default="rentstack", metadata=_help(
        "docker compose project name on Docker hosts (default rentstack)"))
    wheels: str | None = field(default=None, metadata=_help(
        "wheelhouse directory on the host for the native venv (default /root/autodl-pub/wheels if present)"))
    endpoint: str | None = field(default=None, metadata=_help("ModelScope endpoint (default www.modelscope.cn)"))
    hf_endpoint: str | None = field(default=download.HF_MIRROR, metadata=_help(
        "Hugging Face endpoint (default https://hf-mirror.com)"))
    health_timeout: int = field(default=0, metadata=_help(
        "seconds to wait for /health (default 0: the tier's start period + 120)", lo=0, hi=MAX_SECONDS))
    sets: dict[str, object] = field(default_factory=dict, metadata=_help("vLLM setting KEY=VALUE (repeatable)"))
    force: bool = field(default=False, metadata=_help("start even when the planner predicts failure"))
    idle_stop: str = field(default="off", metadata=_help(
        "stop the server after this long without requests: 30m, 1h, 90s (default off)"))
    idle_action: str = field(default="stop", metadata=_help(
        "after the idle window: stop (the server) or poweroff (the instance, by the provider's own command)"))
    profiles: tuple[str, ...] = field(default=(), metadata=_help(
        "parts beside the server on a Docker host: webui (Open WebUI), monitoring (Prometheus), "
        "comma-separated (default none; the idle stop is --idle-stop)"))
    plain_http: bool = field(default=False, metadata=_help(
        "with a --bind other than 127.0.0.1 on a port AutoDL does not proxy: publish the front over plain "
        "HTTP anyway (a private network you trust; the key crosses it in clear)"))
    vllm_version: str | None = field(default=None, metadata=_help(
        "GPU tiers: this vLLM release (e.g. 0.11.0, 0.32.0+cu129) instead of the newest one the host's driver "
        "and cards run; checked the same way (rentstack/config/releases.yaml)"))
    local_state: Path = LOCAL_HOSTS
    key_file: Path | None = None
    """A local secrets.env whose key every host gets (replicas share one key); None = each host keeps its own."""

    def __post_init__(self) -> None:
        for f in fields(self):
            if "lo" in f.metadata:
                object.__setattr__(self, f.name, check_int(f.name, getattr(self, f.name), f.metadata["lo"],
                                                           f.metadata["hi"]))
        for name in ("tier", "model", "bind", "runner", "project", "endpoint", "hf_endpoint", "vllm_version"):
            value = getattr(self, name)
            if value is not None:
                _check_text(name, value)
        _check_abs_path("data_dir", self.data_dir)
        from rentstack.render.around import check_idle
        try:
            object.__setattr__(self, "idle_stop", check_idle(str(self.idle_stop), str(self.idle_action)))
        except RentstackError as exc:
            raise InputError(f"--idle-stop/--idle-action: {exc}") from None
        object.__setattr__(self, "profiles", _check_profiles(self.profiles, self.runner))
        # Every task names a tier (down, doctor and top too): a shipped name, checked here so
        # `--tier ../x` is refused before connecting rather than used as a path on the host.
        from rentstack.config import load_tier
        try:
            load_tier(self.tier)
        except RentstackError as exc:
            raise InputError(str(exc)) from None
        if self.wheels is not None:
            _check_abs_path("wheels", self.wheels)
        try:
            ipaddress.ip_address(self.bind)
        except ValueError:
            raise InputError(f"--bind {self.bind!r} is not an IP address: use 127.0.0.1 (default, through the "
                             "tunnel) or 0.0.0.0 (every interface; the key stays required)") from None
        if self.runner not in (None, "compose", "native"):
            raise InputError(f"--runner {self.runner!r} is unknown; use compose or native "
                             "(default: from the host's facts)")
        if not _PROJECT.match(self.project):
            raise InputError(f"--project {self.project!r} is not a compose project name: use lower-case letters, "
                             "digits, '-' and '_', starting with a letter or digit")
        if self.vllm_version is not None:
            from rentstack.releases import load_matrix

            try:
                load_matrix().find(self.vllm_version)
            except RentstackError as exc:
                raise InputError(str(exc)) from None
        for name in ("endpoint", "hf_endpoint"):
            value = getattr(self, name)
            if value is not None and not _HOSTISH.match(value):
                raise InputError(f"{_flag(name)} {value!r} is not a host or URL: e.g. https://hf-mirror.com")

    @classmethod
    def flag_help(cls) -> dict[str, str]:
        """Field name -> --help text, for the fabfile."""
        return {f.name: f.metadata["help"] for f in fields(cls) if "help" in f.metadata}

    @classmethod
    def flag_bounds(cls) -> dict[str, tuple[int, int]]:
        """Field name -> (lowest, highest) for the integer fields."""
        return {f.name: (f.metadata["lo"], f.metadata["hi"]) for f in fields(cls) if "lo" in f.metadata}

    @classmethod
    def flag_default(cls, name: str) -> object:
        f = next(f for f in fields(cls) if f.name == name)
        return f.default


def replace_sets(opts: Options, extra: dict[str, object]) -> Options:
    from dataclasses import replace

    return replace(opts, sets={**opts.sets, **extra})
