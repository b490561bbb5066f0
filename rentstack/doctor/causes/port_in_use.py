"""port_in_use: the API server could not bind its port."""

from __future__ import annotations

import re

from rentstack.doctor.causes.base import Cause, Context, Found
from rentstack.doctor.diagnosis import Fix
from rentstack.doctor.fixes import propose

PORT_IN_USE = re.compile(
    r"\[Errno (?:98|48|10048)\][^\n]*?(?:address already in use|Address already in use)"
    r"|error while attempting to bind on address \((?P<addr>[^)]*)\)"
)
"""uvicorn / asyncio bind failure. Not 'Address already in use. Retrying with a new port.'
(config/parallel.py, a harmless internal retry)."""

BIND_ADDR = re.compile(r"\('(?P<host>[^']*)', (?P<port>\d+)\)")


def match(line: str) -> Found | None:
    if "Retrying with a new port" in line or not PORT_IN_USE.search(line):
        return None
    addr = BIND_ADDR.search(line)
    return Found("startup", {"host": addr.group("host"), "port": int(addr.group("port"))} if addr else {})


def _port(ctx: Context) -> object:
    return ctx.details.get("port") or ctx.situation.args.get("port") or 8000


def explain(ctx: Context) -> str:
    return (f"Port {_port(ctx)} is already in use on this host: another server (maybe an older vLLM) "
            "is listening on it.")


def fixes(ctx: Context) -> list[Fix]:
    try:
        port = int(_port(ctx))
    except (TypeError, ValueError):
        return []
    return [propose(
        ctx.situation, {"port": port + 1},
        f"port {port} is already taken by another process on this host",
        f"none, but clients (and any published port mapping) must use {port + 1}", "none",
    )]


CAUSE = Cause(
    name="port_in_use",
    summary="the API server's port is taken by another process on the host",
    triggers=("Errno", "bind on"),
    match=match,
    explain=explain,
    fixes=fixes,
    examples=(
        "OSError: [Errno 98] Address already in use",
        "ERROR:    [Errno 98] error while attempting to bind on address ('0.0.0.0', 8000): address already in use",
    ),
)
