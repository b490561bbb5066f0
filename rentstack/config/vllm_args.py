"""vLLM's `serve` arguments, as its own parser declares them (rentstack/config/vllm_args.json).

The JSON is dumped from the pinned vLLM by scripts/dump_vllm_args.py; this module uses it
to reject unknown keys in stack files and `--set` (with a did-you-mean) and to turn
`--set key=value` strings into the type vLLM expects.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from rentstack.errors import RentstackError, did_you_mean
from rentstack.safe import check_text, env_value

ARGS_FILE = Path(__file__).with_name("vllm_args.json")

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


# Flags that older vLLM had and seed deployments still carry: accepted in stack files for the
# record, dropped at render time with a note, refused in --set.
REMOVED = {
    "swap-space": "vLLM's V1 engine never used CPU swap blocks, and 0.32 no longer accepts the flag",
}

# vLLM declares these as strings (they also take "auto" or suffixes like "32k"); rentstack
# writes and plans plain numbers, so it reads them as numbers.
NUMERIC = {"max-model-len": "int"}


@lru_cache(maxsize=1)
def known_args() -> dict[str, dict]:
    """Long flag name (without --) -> {'kind': bool|int|float|str|list, 'choices': [...]}."""
    return json.loads(ARGS_FILE.read_text())["args"]


def check_vllm_settings(settings: dict, where: str, allow_removed: bool = False) -> None:
    """Every key must be a vLLM flag (kebab-case) that rentstack does not manage itself."""
    known = known_args()
    for key, value in settings.items():
        if key in REMOVED:
            if allow_removed:
                continue
            raise RentstackError(f"{where}: {key!r} is not a vLLM {version()} setting: {REMOVED[key]}")
        if key in MANAGED:
            raise RentstackError(f"{where}: {key!r} cannot be set here: {MANAGED[key]}")
        if is_secret(key):
            raise _secret_refusal(where, key)
        if key not in known:
            snake_hint = " (use vLLM's long flag names, kebab-case)" if "_" in key and key.replace("_", "-") in known else ""
            raise RentstackError(
                f"{where}: unknown vLLM setting {key!r}{did_you_mean(key.replace('_', '-'), known)}{snake_hint}")
        _check_value(key, value, known[key], where)


def version() -> str:
    return json.loads(ARGS_FILE.read_text())["vllm_version"]


def kind_of(key: str) -> str:
    return NUMERIC.get(key) or known_args()[key]["kind"]


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
    known = known_args()
    if key in REMOVED:
        raise RentstackError(f"--set {key}: not a vLLM {version()} setting: {REMOVED[key]}; drop it")
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
