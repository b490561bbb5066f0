"""Dump the argument list of vLLM's OpenAI server as JSON (run inside the vLLM CPU image).

rentstack checks stack files and --set values against this list before anything runs
(did-you-mean for typos, types for values). Regenerate when the vLLM pin changes:
  docker run --rm --entrypoint python3 -v "$PWD/scripts:/s:ro" IMAGE /s/dump_vllm_args.py > rentstack/config/vllm_args.json
"""

import argparse
import json

import vllm
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser


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
print(json.dumps({"vllm_version": vllm.__version__, "args": dict(sorted(args.items()))}, indent=1))
