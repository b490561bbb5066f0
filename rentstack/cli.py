"""The `rentstack` command: a thin front door over the package.

Each subcommand lives in rentstack/commands/<name>.py and exposes
`register(subparsers)` (adds its parser, sets `func`) so this file stays small.
Errors a user can act on (RentstackError) print as one line and exit 2;
anything else prints one line too, and the traceback only with --debug.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from rentstack.errors import RentstackError

COMMANDS = ("render", "up", "image", "plan", "doctor", "top", "tiers", "models", "export", "bench")


class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage error is one line naming the argument and where to
    look, like every other error (subcommand parsers inherit this class)."""

    def error(self, message: str):  # type: ignore[override]
        raise RentstackError(f"{message}: see `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rentstack", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"rentstack.commands.{name}")
        except ModuleNotFoundError as exc:  # a command not built yet must not break the others
            if exc.name != f"rentstack.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def _refuse_nul(argv: list[str]) -> None:
    """A NUL byte cannot be part of a path, a name or a value (a real argv cannot even carry
    one); refuse it up front, naming the flag it was given to."""
    for i, arg in enumerate(argv):
        if "\x00" in arg:
            flag = argv[i - 1] if i and argv[i - 1].startswith("-") else f"argument {i + 1}"
            raise RentstackError(f"{flag} {arg!r} contains a NUL byte: remove it")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        _refuse_nul(argv)
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except RentstackError as exc:
        if debug:
            traceback.print_exc()
        print(f"rentstack: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rentstack: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence for the one-line promise
        if debug:
            traceback.print_exc()
        print(f"rentstack: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
