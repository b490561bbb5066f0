"""Dump the argument list of vLLM's OpenAI server as JSON, from the installed vLLM's own parser.

rentstack checks stack files and --set values against one such list per supported release
line (rentstack/config/vllm_args/<line>.json; did-you-mean for typos, types for values).
Run it wherever that release is installed:
  docker run --rm --entrypoint python3 -v "$PWD/scripts:/s:ro" IMAGE /s/dump_vllm_args.py > rentstack/config/vllm_args/0.32.json
or, for an older release line, in an isolated venv built by scripts/dump_vllm_args_release.sh.
"""

import argparse
import importlib
import json
import sys

# vLLM logs to stdout while it imports; keep stdout for the JSON alone.
_stdout, sys.stdout = sys.stdout, sys.stderr

import vllm  # noqa: E402


def _import_first(*candidates: tuple[str, str]):
    """The parser moved between releases; take the first (module, name) that imports."""
    errors = []
    for module, name in candidates:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            errors.append(f"{module}.{name}: {exc}")
    raise ImportError("; ".join(errors))


make_arg_parser = _import_first(
    ("vllm.entrypoints.launchers.cli_args", "make_arg_parser"),  # 0.2x and later
    ("vllm.entrypoints.openai.cli_args", "make_arg_parser"),  # 0.8 - 0.1x
)
FlexibleArgumentParser = _import_first(
    ("vllm.utils.argparse_utils", "FlexibleArgumentParser"),  # 0.12 and later
    ("vllm.utils", "FlexibleArgumentParser"),  # up to 0.11
)


def kind(action: argparse.Action) -> str:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                           argparse.BooleanOptionalAction)) or action.nargs == 0:
        return "bool"
    if action.nargs not in (None, 1):
        return "list"
    if action.type in (int, float):
        return action.type.__name__
    return "str"


parser = make_arg_parser(FlexibleArgumentParser())
args = {}
for action in parser._actions:
    longs = [o for o in action.option_strings if o.startswith("--") and not o.startswith("--no-")]
    if not longs or action.dest == "help":
        continue
    entry = {"kind": kind(action)}
    if action.choices:
        entry["choices"] = sorted(str(c) for c in action.choices)
    for name in longs:
        args[name[2:]] = entry
sys.stdout = _stdout
print(json.dumps({"vllm_version": vllm.__version__, "args": dict(sorted(args.items()))}, indent=1))
