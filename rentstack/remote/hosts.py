"""Which host to provision and how to log in: pure parsing of what the user typed.

Accepted host strings (one host each; a comma separates several):
  root@region-1.autodl.com:12345          Fabric's user@host:port
  ssh -p 12345 root@region-1.autodl.com   AutoDL's console line, pasted as printed
  [root@]::1 / [::1]:2222                 IPv6 in brackets when a port follows
The password never travels in argv: it comes from $RENTSTACK_SSH_PASSWORD or a prompt.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from rentstack.errors import RentstackError

DEFAULT_USER = "root"
"""Rented GPU containers (AutoDL, seetacloud) log in as root."""
PASSWORD_ENV = "RENTSTACK_SSH_PASSWORD"
"""Environment variable holding the SSH password (never a command-line flag)."""

_HARMLESS_SSH_OPTIONS = frozenset({"stricthostkeychecking", "userknownhostsfile", "serveraliveinterval",
                                   "serveralivecountmax", "connecttimeout", "compression"})
"""-o options a pasted ssh line may carry: they do not change where or as whom it logs in
(rentstack's own client ignores them). -o ProxyCommand and the rest are refused."""
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
"""A login name as useradd accepts it; anything else ($(id), spaces, quotes) is refused."""
_HOSTNAME = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+|[0-9A-Fa-f:]+)$")


@dataclass(frozen=True)
class HostSpec:
    """One SSH destination."""

    host: str
    user: str = DEFAULT_USER
    port: int = 22

    @property
    def label(self) -> str:
        """user@host:port, the name in reports and local state paths."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"

    @property
    def slug(self) -> str:
        """A file-name-safe label: local state lives under .rentstack/hosts/<slug>/."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.user}@{self.host}_{self.port}")

    def ssh_args(self) -> list[str]:
        """The `ssh` arguments that reach this host (for printed lines like the tunnel)."""
        return ["-p", str(self.port), f"{self.user}@{self.host}"]


def _port(value: str, text: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise RentstackError(f"host {text!r}: port {value!r} is not a number from 1 to 65535")
    return int(value)


def _from_ssh_line(text: str) -> HostSpec:
    """AutoDL's 'ssh -p 12345 root@region-1.autodl.com'; options other than -p and -l are refused."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise RentstackError(f"host {text!r} is not a valid ssh line: {exc}") from None
    port: int | None = None
    user: str | None = None
    dest: str | None = None
    i = 1
    while i < len(words):
        word = words[i]
        if word == "-p" and i + 1 < len(words):
            port = _port(words[i + 1], text)
            i += 2
            continue
        if word.startswith("-p") and word[2:].isdigit():
            port = _port(word[2:], text)
        elif word == "-l" and i + 1 < len(words):
            user = words[i + 1]
            i += 2
            continue
        elif word.startswith("-o"):
            option = word[2:] or (words[i + 1] if i + 1 < len(words) else "")
            if option.split("=", 1)[0].strip().lower() not in _HARMLESS_SSH_OPTIONS:
                raise RentstackError(f"host {text!r}: ssh option -o {option} is not supported: paste only "
                                     "'ssh -p PORT USER@HOST' (rentstack logs in with its own settings)")
            i += 1 if word[2:] else 2
            continue
        elif word.startswith("-") and word not in ("-C", "-N", "-g", "-q", "-v", "-4", "-6"):
            # -o ProxyCommand=..., -J, -F, -i: rentstack logs in with its own settings, and an
            # option silently dropped would connect somewhere other than the line says.
            raise RentstackError(f"host {text!r}: ssh option {word} is not supported: paste only "
                                 "'ssh -p PORT USER@HOST' (use --key for a key file)")
        elif not word.startswith("-"):
            if dest is not None:
                raise RentstackError(f"host {text!r}: a remote command after the host is not supported; "
                                     "paste only the ssh line the console prints")
            dest = word
        i += 1
    if dest is None:
        raise RentstackError(f"host {text!r} names no destination: expected e.g. 'ssh -p 12345 root@region-1.autodl.com'")
    spec = parse_host(dest)
    return HostSpec(spec.host, _check_user(user, text) if user else spec.user, port if port is not None else spec.port)


def parse_host(text: str) -> HostSpec:
    """Parse one host string (see the module docstring); refuses anything ambiguous."""
    raw = text.strip()
    if not raw:
        raise RentstackError("host is empty: pass --host root@HOST:PORT or the console's 'ssh -p PORT root@HOST'")
    if raw.startswith("ssh ") or raw == "ssh":
        return _from_ssh_line(raw)
    if " " in raw:
        raise RentstackError(f"host {raw!r} holds spaces: pass USER@HOST:PORT or the full 'ssh -p PORT USER@HOST' line")
    user = DEFAULT_USER
    rest = raw
    if "@" in raw:
        user, _, rest = raw.rpartition("@")
        if not user:
            raise RentstackError(f"host {raw!r}: the user before '@' is empty")
    port = 22
    if rest.startswith("["):
        host, sep, tail = rest[1:].partition("]")
        if not sep:
            raise RentstackError(f"host {raw!r}: an IPv6 address opened with '[' needs its ']'")
        if tail:
            if not tail.startswith(":"):
                raise RentstackError(f"host {raw!r}: expected ':PORT' after ']'")
            port = _port(tail[1:], raw)
    elif rest.count(":") == 1:
        host, _, p = rest.partition(":")
        port = _port(p, raw)
    else:
        host = rest  # a bare IPv6 address (several colons) has no port
    if not host or not _HOSTNAME.match(host):
        raise RentstackError(f"host {raw!r}: {host!r} is not a host name or address: "
                             "pass USER@HOST:PORT, e.g. root@region-1.autodl.com:12345")
    return HostSpec(host=host, user=_check_user(user, raw), port=port)


def _check_user(user: str, text: str) -> str:
    if not _USER.match(user):
        raise RentstackError(f"host {text!r}: user {user!r} is not a login name: use letters, digits, '.', '_' "
                             "or '-' (e.g. root)")
    return user


def parse_hosts(text: str) -> list[HostSpec]:
    """Several hosts separated by commas (an ssh line holds none); duplicates are refused."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    if not parts:
        raise RentstackError("no host given: pass --host root@HOST:PORT (several: h1,h2) or fab -H h1,h2")
    specs = [parse_host(p) for p in parts]
    labels = [s.label for s in specs]
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise RentstackError(f"host {dupes[0]} is listed twice; each host is provisioned once per run")
    return specs


@dataclass(frozen=True)
class Auth:
    """How to log in: a password (from the environment or a prompt) or a key file; None = ssh agent/default keys."""

    password: str | None = None
    key_filename: str | None = None

    def connect_kwargs(self) -> dict[str, object]:
        """paramiko connect() arguments. With a password only, keys are not tried, so a
        wrong password fails as a wrong password and not as 'too many attempts'."""
        kwargs: dict[str, object] = {}
        if self.key_filename:
            kwargs["key_filename"] = self.key_filename
            kwargs["look_for_keys"] = False
        if self.password is not None:
            kwargs["password"] = self.password
            if not self.key_filename:
                kwargs["look_for_keys"] = False
                kwargs["allow_agent"] = False
        return kwargs

    @property
    def describe(self) -> str:
        """What was tried, for error lines (never the secret itself)."""
        if self.key_filename:
            return f"key {self.key_filename}"
        if self.password is not None:
            return f"the password (from ${PASSWORD_ENV} or the prompt)"
        return "the ssh agent and default keys"
