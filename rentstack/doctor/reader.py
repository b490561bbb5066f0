"""Turn a log file or stream into lines for `diagnose`, in constant memory.

Lines are read as bytes with a length cap (a binary file or a log with no newlines cannot
exhaust memory) and decoded leniently; the doctor only needs ASCII-range messages. Terminal
escape sequences are removed before anything of a line is kept (`strip_controls`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

READ_LIMIT = 64 * 1024
"""Bytes per read: a longer line is split into several; none of vLLM's messages is this long."""


def iter_lines(stream: BinaryIO) -> Iterator[str]:
    """Yield decoded lines from a binary stream, at most READ_LIMIT bytes each."""
    while True:
        chunk = stream.readline(READ_LIMIT)
        if not chunk:
            return
        yield chunk.decode("utf-8", errors="replace")


_ESCAPES = re.compile(
    r"(?:\x1b\]|\x9d)[^\x07\x9c]*?(?:\x07|\x1b\\|\x9c|$)"  # OSC (title, 8 hyperlink, 52 clipboard): to BEL/ST
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x9c]*?(?:\x1b\\|\x9c|$)"  # DCS, SOS, PM, APC strings
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI: colours, cursor moves, screen clears
    r"|\x1b[ -/]*[0-~]?"  # other escapes (charset, reset) and a lone ESC
)
"""ECMA-48 escape sequences in their 7-bit (ESC ...) and 8-bit (C1) forms. An OSC or string
sequence with no terminator runs to the end of the line, as a terminal would swallow it."""

_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
"""Control characters left after the sequences are gone (tab is kept; CR, BS, BEL, C1 are not)."""


def strip_controls(text: str) -> str:
    """`text` with terminal escape sequences removed and other control characters turned into spaces.

    A log is data from a server we do not control: echoed raw, an OSC 52 sequence would write the
    reader's clipboard, OSC 8 would hide a link, CSI would move the cursor or clear the screen."""
    if not _CONTROLS.search(text):
        return text
    return _CONTROLS.sub(" ", _ESCAPES.sub("", text))
