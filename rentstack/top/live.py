"""The I/O edge of `rentstack top`: read /metrics (and nvidia-smi) and redraw the terminal."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TextIO

from rentstack.errors import RentstackError
from rentstack.top.gpu import GPU_LOAD_COMMAND, GpuLoad, parse_gpu_load
from rentstack.top.prometheus import parse
from rentstack.top.view import Snapshot, build_view, render

TOKEN_ENV = "RENTSTACK_METRICS_TOKEN"
"""Read-only token for /metrics (the front door accepts it, or the API key); env or secrets.env."""

MAX_SCRAPE_BYTES = 8 * 1024 * 1024
"""vLLM's /metrics is ~30 KB for one model; more means something else answers."""


def read_metrics(base_url: str, token: str | None, timeout: float = 5.0) -> str:
    """GET {base_url}/metrics with the bearer token; a one-line RentstackError when it cannot."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"{base_url}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read(MAX_SCRAPE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        hint = " (the key or metrics token was refused)" if exc.code in (401, 403) else ""
        raise RentstackError(f"{base_url}/metrics answered HTTP {exc.code}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RentstackError(f"no answer from {base_url}/metrics: {getattr(exc, 'reason', exc)}") from None
    if len(body) > MAX_SCRAPE_BYTES:
        raise RentstackError(f"{base_url}/metrics sent more than {MAX_SCRAPE_BYTES // 2**20} MiB: not vLLM's metrics")
    return body.decode("utf-8", errors="replace")


def token_from_secrets(text: str) -> str | None:
    """The token to read /metrics with from a secrets.env's text: the metrics token when there is
    one (it can read metrics and nothing else), else the API key; a file holding only a key works too."""
    from rentstack.render.secrets import parse_api_key

    for line in text.splitlines():
        if line.startswith(f"{TOKEN_ENV}="):
            value = line.split("=", 1)[1].strip().strip("'\"")
            if value:
                return value
    key = parse_api_key(text)
    if key:
        return key.strip("'\"")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return lines[0] if len(lines) == 1 and "=" not in lines[0] else None


def read_local_gpus(timeout: float = 5.0) -> tuple[GpuLoad, ...]:
    """This machine's GPUs from nvidia-smi; () when there is none (or it hangs)."""
    if shutil.which(GPU_LOAD_COMMAND[0]) is None:
        return ()
    try:
        done = subprocess.run(GPU_LOAD_COMMAND, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return parse_gpu_load(done.stdout, done.returncode)


def snapshot(base_url: str, token: str | None, gpus: Callable[[], tuple[GpuLoad, ...]]) -> Snapshot:
    text = read_metrics(base_url, token)
    return Snapshot(at=time.monotonic(), scrape=parse(text), gpus=gpus())


CLEAR = "\x1b[H\x1b[2J"
"""Cursor home, clear screen: plain ANSI, understood by every terminal tmux and ssh pass through."""


def run(base_url: str, token: str | None, *, interval: float, once: bool, out: TextIO | None = None,
        gpus: Callable[[], tuple[GpuLoad, ...]] = read_local_gpus, frames: int | None = None) -> int:
    """Redraw every `interval` seconds until Ctrl-C (or `frames` frames); `once` prints one frame
    without screen control, from two reads `interval` apart so it has rates and percentiles."""
    out = out or sys.stdout
    previous = snapshot(base_url, token, gpus)
    if once:
        time.sleep(interval)
        current = snapshot(base_url, token, gpus)
        out.write("\n".join(render(build_view(previous, current), base_url)) + "\n")
        return 0
    drawn = 0
    try:
        out.write("\n".join([CLEAR, *render(build_view(None, previous), base_url)]) + "\n")
        out.flush()
        while frames is None or drawn < frames:
            time.sleep(interval)
            try:
                current = snapshot(base_url, token, gpus)
            except RentstackError as exc:  # a restart or a blip: say so and keep watching
                out.write(f"{CLEAR}rentstack top — {base_url}\n\n{exc}\n(retrying every {interval:g} s; Ctrl-C quits)\n")
                out.flush()
                continue
            clock = time.strftime("%H:%M:%S")
            out.write(CLEAR + "\n".join(render(build_view(previous, current), base_url, clock)) + "\n")
            out.flush()
            previous = current
            drawn += 1
    except KeyboardInterrupt:
        pass
    return 0
