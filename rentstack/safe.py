"""One validation/escaping function per output format: every value a writer emits goes through here.

A value from the command line, a tier file or a catalog entry may end up in an env file
that Docker Compose parses, a shell line, a YAML document or a path on disk. Each of those
formats has characters that change its meaning (a newline starts a new `KEY=` line, `$(...)`
runs a command, `../` climbs out of a directory). Rather than escape at each call site, a
writer calls the one function for its format; the function either returns a value that is
safe there or raises a one-line RentstackError naming the field, the problem and the fix.

  check_text(field, value)      any text: no control characters (newline, CR, NUL, ESC, ...)
  check_name(field, value)      tier/preset/catalog/builtin names: [a-z0-9][a-z0-9._-]*
  env_value / env_line          a value / a KEY=VALUE line of a compose env file
  shell_word(field, value)      one shell word, quoted
  yaml_scalar(value)            any JSON-like scalar as one YAML flow scalar (line breaks escaped)
  load_yaml(path, field=...)    a YAML file, size- and alias-limited (no "billion laughs")
  inside(field, base, rel)      a path that must stay inside a directory
"""

from __future__ import annotations

import json
import math
import re
import shlex
import unicodedata
from pathlib import Path

import yaml

from rentstack.errors import RentstackError

__all__ = ["check_text", "check_name", "env_value", "env_line", "read_env_value", "read_env_text", "shell_word",
           "yaml_scalar", "load_yaml", "inside", "YAML_MAX_BYTES", "YAML_MAX_ALIASES", "YAML_MAX_NODES"]

# Line breaks Python (and YAML 1.1) count besides \n and \r: they split lines too.
_LINE_BREAKS = {"\u2028": "line separator", "\u2029": "paragraph separator", "\x85": "next line"}
_CONTROL_NAMES = {"\n": "newline", "\r": "carriage return", "\x00": "NUL", "\x1b": "escape (ESC)",
                  "\t": "tab", "\x7f": "DEL"}


def _bad_char(value: str) -> tuple[int, str] | None:
    """(position, description) of the first control or line-break character, or None."""
    for i, ch in enumerate(value):
        if ch in _LINE_BREAKS:
            return i, _LINE_BREAKS[ch]
        if unicodedata.category(ch) == "Cc":
            return i, _CONTROL_NAMES.get(ch, f"control character U+{ord(ch):04X}")
    return None


def _shown(value: str, secret: bool) -> str:
    return "(value hidden)" if secret else repr(value)


def check_text(field: str, value: object, *, secret: bool = False) -> str:
    """`value` as text, refused if it holds a control character (newline, CR, NUL, ESC, ...).

    Control characters are what let a value start a new line in an env file, a comment in
    YAML, or repaint a terminal; no name, path, address or description needs one.
    `secret=True` keeps the value out of the error message."""
    if not isinstance(value, str):
        raise RentstackError(f"{field} must be text, got {type(value).__name__}")
    bad = _bad_char(value)
    if bad:
        pos, what = bad
        raise RentstackError(f"{field} {_shown(value, secret)} contains a {what} at position {pos}: "
                             "remove it (control characters and line breaks are not allowed)")
    return value


NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}", re.ASCII)
"""Tier, preset, catalog and builtin names: lower case, no path separators, cannot start with a dot."""


def check_name(field: str, value: object) -> str:
    """A name that is safe as a file name, a compose profile and a directory: [a-z0-9][a-z0-9._-]*."""
    text = check_text(field, value)
    if not NAME_RE.fullmatch(text):
        raise RentstackError(
            f"{field} {text!r} is not a valid name: use 1-100 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/', no spaces)")
    return text


# --- compose env files -----------------------------------------------------------------------
# Docker Compose reads env files with compose-go's dotenv parser: unquoted values lose a
# trailing ` #comment` and surrounding spaces, double-quoted values expand ${VAR} and
# backslash escapes, single-quoted values are literal except that \' is a quote. So a value
# of plain characters is written bare, and anything else between single quotes -- which is
# also what a POSIX shell makes of the line, should anyone `source` the file. A value with a
# single quote, or ending in a backslash (it would escape the closing quote), is refused:
# none of the values rentstack writes needs either.
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_BARE = re.compile(r"^[A-Za-z0-9_./:@%+,-]*$")


def env_value(field: str, value: object, *, secret: bool = False) -> str:
    """`value` as it goes after `KEY=` in a compose env file: bare, or single-quoted."""
    text = check_text(field, str(value) if isinstance(value, (int, float)) and not isinstance(value, bool)
                      else value, secret=secret)
    if _ENV_BARE.match(text):
        return text
    if "'" in text:
        raise RentstackError(f"{field} {_shown(text, secret)} contains a single quote, which an env file "
                             "cannot carry safely: choose a value without '")
    if text.endswith("\\"):
        raise RentstackError(f"{field} {_shown(text, secret)} ends in a backslash, which an env file "
                             "cannot carry safely: drop the trailing backslash")
    return f"'{text}'"


def env_line(key: str, value: object, *, secret: bool = False) -> str:
    """One `KEY=VALUE` line (no newline at the end) for a compose env file."""
    if not isinstance(key, str) or not _ENV_KEY.match(key):
        raise RentstackError(f"env variable name {key!r} is not valid: use letters, digits and '_'")
    return f"{key}={env_value(key, value, secret=secret)}"


def read_env_value(raw: str) -> str:
    """The value of a line written by env_line (the part after `KEY=`), unquoted."""
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1]
    return raw


def read_env_text(text: str) -> dict[str, str]:
    """KEY → value of an env file written with env_line (comments skipped; the first line of a
    key wins)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, raw = line.split("=", 1)
            out.setdefault(key, read_env_value(raw))
    return out


# --- shell -------------------------------------------------------------------------------------
def shell_word(field: str, value: object, *, secret: bool = False) -> str:
    """`value` as exactly one shell word: checked for control characters, then quoted."""
    if isinstance(value, Path):
        value = str(value)
    text = check_text(field, str(value) if isinstance(value, int) and not isinstance(value, bool)
                      else value, secret=secret)
    return shlex.quote(text)


# --- YAML writing -----------------------------------------------------------------------------
# JSON scalars are YAML flow scalars, and json.dumps escapes the C0 controls and quotes; what
# is left to escape are the characters YAML itself treats as line breaks or will not read raw
# (C1 controls incl. NEL, DEL, U+2028/2029, U+FFFE/FFFF, lone surrogates). They get YAML's own
# \xXX / \uXXXX escapes. Non-ASCII text stays as UTF-8: json's \ud83d\ude00 surrogate pairs
# are read by PyYAML (and so by vLLM) as two broken characters, not one.
_YAML_UNSAFE = re.compile(r"[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def yaml_scalar(value: object) -> str:
    """A YAML scalar for None, a bool, a number or text, on one line, read back unchanged."""
    if isinstance(value, float) and not math.isfinite(value):   # JSON's Infinity is a string in YAML
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    if isinstance(value, float):   # YAML 1.1 reads 1e-05 as text: its floats need a dot (1.0e-05)
        text = repr(value)
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    text = json.dumps(value, ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                            else f"\\u{ord(m.group()):04x}", text)


# --- YAML loading -----------------------------------------------------------------------
YAML_MAX_BYTES = 1 << 20
"""A tier, catalog or model file is a few KiB; a MiB leaves room and stops a huge file early."""
YAML_MAX_ALIASES = 100
"""Aliases (*name) per document: none of the shipped files uses one; a bomb needs many."""
YAML_MAX_NODES = 200_000
"""Nodes after expanding aliases: a 'billion laughs' file is small on disk but huge here."""
YAML_MAX_DEPTH = 100


class _AliasCountingLoader(yaml.SafeLoader):
    """SafeLoader that stops once a document uses more than YAML_MAX_ALIASES aliases."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > YAML_MAX_ALIASES:
                raise _TooBig(f"more than {YAML_MAX_ALIASES} aliases (*name)")
        return super().compose_node(parent, index)


class _TooBig(Exception):
    pass


def _count_nodes(data: object) -> None:
    """Walk the loaded value as a consumer would (aliases expanded); stop past the limits."""
    count = 0
    stack: list[tuple[object, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > YAML_MAX_NODES:
            raise _TooBig(f"more than {YAML_MAX_NODES:,} values once aliases are expanded")
        if depth > YAML_MAX_DEPTH:
            raise _TooBig(f"nested deeper than {YAML_MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
            stack.extend((k, depth + 1) for k in node.keys())
        elif isinstance(node, (list, tuple, set)):
            stack.extend((v, depth + 1) for v in node)


def load_yaml(path: str | Path, *, field: str = "YAML file", max_bytes: int = YAML_MAX_BYTES) -> object:
    """Parse a YAML file safely: size-limited, alias-limited, safe tags only.

    Every failure (missing, too big, not UTF-8, not YAML, a bomb) is one RentstackError
    naming `field` and the path."""
    p = Path(path)
    where = f"{field} {str(p)!r}"
    try:
        with open(p, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise RentstackError(f"{where}: no such file: check the path") from None
    except IsADirectoryError:
        raise RentstackError(f"{where} is a directory: give a YAML file") from None
    except OSError as exc:
        raise RentstackError(f"{where}: cannot read it: {exc.strerror}") from None
    if len(raw) > max_bytes:
        raise RentstackError(f"{where} is larger than {max_bytes // 1024} KiB: this is not a rentstack file")
    return loads_yaml(raw, where=where)


def loads_yaml(raw: bytes | str, *, where: str = "YAML text") -> object:
    """load_yaml for text already in memory (same limits)."""
    if isinstance(raw, bytes):
        if len(raw) > YAML_MAX_BYTES:
            raise RentstackError(f"{where} is larger than {YAML_MAX_BYTES // 1024} KiB: this is not a rentstack file")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RentstackError(f"{where} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    elif len(raw) > YAML_MAX_BYTES:
        raise RentstackError(f"{where} is larger than {YAML_MAX_BYTES // 1024} KiB: this is not a rentstack file")
    try:
        loader = _AliasCountingLoader(raw)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
        _count_nodes(data)
    except _TooBig as exc:
        raise RentstackError(f"{where} refused: {exc} (a YAML bomb?): write the values out plainly") from None
    except RecursionError:
        raise RentstackError(f"{where} refused: nested too deeply: write the values out plainly") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RentstackError(f"{where} is not valid YAML{at}: {problem}: fix the file") from None
    except (ValueError, TypeError) as exc:   # e.g. an unhashable key: {[1]: x}
        raise RentstackError(f"{where} is not valid YAML: {str(exc).splitlines()[0]}: fix the file") from None
    return data


# --- paths ---------------------------------------------------------------------------------------
def inside(field: str, base: str | Path, rel: str | Path) -> Path:
    """base/rel resolved (symlinks followed), refused unless it lies strictly inside base."""
    rel_text = check_text(field, str(rel))
    if not rel_text:
        raise RentstackError(f"{field} is empty: name something inside {base}")
    root = Path(base).resolve()
    target = (root / rel_text).resolve()
    if root not in target.parents:
        raise RentstackError(f"{field} {rel_text!r} leads outside {root}: "
                             "use a plain name or a path inside that directory")
    return target
