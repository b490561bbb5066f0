"""User-facing errors: one line that names the field, the value and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RentstackError(Exception):
    """An error the user can act on. The CLI prints its message as one line, no traceback."""

    exit_code = 2


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_of(field: str, value: str, choices: Iterable[str]) -> RentstackError:
    """The standard 'unknown X' error, listing the valid choices and the closest one."""
    choices = sorted(choices)
    return RentstackError(
        f"unknown {field} {value!r}{did_you_mean(value, choices)}; choose one of: {', '.join(choices)}"
    )
