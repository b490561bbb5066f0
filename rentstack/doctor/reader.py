"""Turn a log file or stream into lines for `diagnose`, in constant memory.

Lines are read as bytes with a length cap (a binary file or a log with no newlines cannot
exhaust memory) and decoded leniently; the doctor only needs ASCII-range messages.
"""

from __future__ import annotations

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
