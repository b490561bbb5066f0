"""model_not_found: the model directory is incomplete or the model id is unknown."""

from __future__ import annotations

import re

from rentstack.doctor.causes.base import Cause, Context, Found

MODEL_MISSING = re.compile(
    r"Cannot find any model weights with `(?P<path>[^`]*)`"
    r"|does not appear to have (?:a file named|any of the files) (?P<file>[\w.\-,/ ]+)"
    r"|Invalid repository ID or local directory specified: '?(?P<repo>[^'\s]+)'?"
    r"|is not a local folder and is not a valid model identifier"
    r"|Repository Not Found for url"
    r"|No such file or directory: '(?P<nofile>[^']*(?:config\.json|tokenizer[^']*|\.safetensors|\.bin))'"
    r"|Can't load (?:the configuration|tokenizer) (?:of|for) '(?P<cant>[^']*)'"
    r"|Unrecognized model in (?P<unrec>\S+)\. Should have a `model_type` key"
    r"|No model weights found"
    r"|Couldn't instantiate the backend tokenizer"
    r"|HFValidationError"
)
"""Model directory incomplete or id unknown: model_loader/default_loader.py, transformers'
configuration/tokenizer loaders and huggingface_hub validation."""


def match(line: str) -> Found | None:
    m = MODEL_MISSING.search(line)
    if not m:
        return None
    what = next((v for v in m.groupdict().values() if v), None)
    if what is None and "tokenizer" in line.lower():
        what = "tokenizer files (tokenizer.json / tokenizer_config.json)"
    return Found("startup", {"missing": what})


def explain(ctx: Context) -> str:
    model = ctx.situation.figures.get("model") or "the model"
    missing = ctx.details.get("missing")
    return (f"The model files are missing or incomplete for {model}"
            + (f" ({missing})" if missing and missing != model else "")
            + ": download the full model (config.json, tokenizer files and weights) or fix the path.")


CAUSE = Cause(
    name="model_not_found",
    summary="the model's files are missing or incomplete, or its id is unknown (no flag fixes it)",
    triggers=("Cannot find", "does not appear", "Invalid repository", "not a valid", "Repository Not Found",
              "No such file", "Can't load", "Unrecognized model", "No model weights", "Couldn't instantiate",
              "rror"),  # 'HFValidationError'
    match=match,
    explain=explain,
    examples=(
        "(Worker pid=5179) ERROR 11-21 14:23:20 [multiproc_executor.py:953] RuntimeError: Cannot find any model "
        "weights with `/tmp/rs-logs/noweights`",
        "ValueError: Couldn't instantiate the backend tokenizer from one of:",
        "OSError: /models/x does not appear to have a file named config.json.",
    ),
)
