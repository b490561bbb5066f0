"""bad_argument: vLLM refused its own arguments or config before starting."""

from __future__ import annotations

import re

from rentstack.doctor.causes.base import Cause, Context, Found
from rentstack.doctor.diagnosis import Fix
from rentstack.doctor.fixes import propose
from rentstack.errors import did_you_mean

BAD_ARGUMENT = re.compile(
    r"error: unrecognized arguments: (?P<unrec>.+)"
    r"|error: argument (?P<arg>[-\w/]+(?:/[-\w]+)?): (?P<problem>.+)"
    r"|error: the following arguments are required: (?P<required>.+)"
    r"|(?P<nval>\d+) validation errors? for (?P<model>\w+)"
    r"|User-specified max_model_len \((?P<user_len>\d+)\) is greater than the derived max_model_len"
    r"[^=]*?=(?P<derived_len>\d+)"
    r"|Config file must be of a yaml/yml type"
    r"|is not a valid (?:choice|value)"
    r"|Unknown (?:quantization|dtype|kv cache dtype)[^\n]*"
    r"|invalid choice: (?P<choice>'[^']*')"
)
"""argparse (FlexibleArgumentParser), pydantic config validation (config/*.py), model_config
max_model_len check, and --config YAML loading (utils/argparse_utils.py)."""


def match(line: str) -> Found | None:
    m = BAD_ARGUMENT.search(line)
    if not m:
        return None
    return Found("startup", {k: v.strip() for k, v in m.groupdict().items() if v})


def explain(ctx: Context) -> str:
    d = ctx.details
    if d.get("derived_len"):
        return (f"max-model-len {int(d['user_len']):,} is larger than the model allows "
                f"({int(d['derived_len']):,} tokens in its config.json).")
    what = d.get("unrec") or d.get("arg") or d.get("required") or d.get("model") or ""
    problem = d.get("problem")
    return ("vLLM rejected its arguments before starting"
            + (f": {what}" if what else "") + (f" — {problem}" if problem else "")
            + ". Check the flag names and values in the config.")


def fixes(ctx: Context) -> list[Fix]:
    d = ctx.details
    if d.get("derived_len"):
        derived = int(d["derived_len"])
        return [propose(
            ctx.situation, {"max-model-len": derived},
            f"the model's config.json allows at most {derived:,} tokens; {int(d['user_len']):,} was asked",
            f"context: {int(d['user_len']):,} → {derived:,} tokens", "context",
        )]
    unknown = d.get("unrec") or d.get("arg")
    usage_flags = ctx.facts.usage_flags  # the flags argparse listed in its usage text
    if unknown and usage_flags:
        name = unknown.split()[0].lstrip("-")
        hint = did_you_mean(name, usage_flags)
        if hint:
            close = hint.split("'")[1]
            return [Fix(changes={}, why=f"--{name} is not a vLLM flag{hint}: rename it to --{close}",
                        cost="none", cost_kind="none")]
    return []


CAUSE = Cause(
    name="bad_argument",
    summary="vLLM rejected a flag or config value before starting (unknown flag, bad value, too long a context)",
    triggers=("validation", "User-specified", "Config file", "Unknown", "invalid choice", "not a valid",
              "rror"),  # argparse's 'error: ...'
    match=match,
    explain=explain,
    fixes=fixes,
    examples=(
        "api_server.py: error: unrecognized arguments: --max-model-lenn",
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig",
        "Value error, User-specified max_model_len (16384) is greater than the derived max_model_len "
        "(max_position_embeddings=8192 or model_max_length=None in model's config.json).",
    ),
)
