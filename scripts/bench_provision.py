#!/usr/bin/env python3
"""First provision vs re-run on one host: wall time, steps that acted, bytes sent.

    RENTSTACK_SSH_PASSWORD=... .venv/bin/python scripts/bench_provision.py \\
        --host root@127.0.0.1:22201 --port 18081 [--data-dir D] [--fresh] [-- extra fab flags]

--fresh first stops the server and deletes what rentstack put on the data disk (venv,
models, caches, .rentstack) so the first run really is a first run: only for test hosts.
The goal (issue 4): the re-run takes < 5 % of the first and transfers nothing.
Bytes sent are read from the host's own counters (/proc/net/dev of its loopback and
first interface: what arrived there while fab ran).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rentstack.remote.connection import Remote  # noqa: E402
from rentstack.remote.hosts import PASSWORD_ENV, Auth, parse_host  # noqa: E402
from rentstack.remote.layout import Layout  # noqa: E402
from rentstack.remote.runners import native_stop  # noqa: E402


def received_bytes(remote: Remote) -> int:
    """Bytes the host's network interfaces have received so far (all of them)."""
    _, out = remote.run("cat /proc/net/dev")
    total = 0
    for line in out.splitlines():
        if ":" in line:
            fields = line.split(":", 1)[1].split()
            if fields and fields[0].isdigit():
                total += int(fields[0])
    return total


def run_fab(args: list[str]) -> tuple[float, int, str]:
    start = time.monotonic()
    proc = subprocess.run([str(REPO / ".venv/bin/fab"), *args], cwd=REPO, text=True, capture_output=True,
                          stdin=subprocess.DEVNULL)
    return time.monotonic() - start, proc.returncode, proc.stdout + proc.stderr


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", required=True)
    p.add_argument("--data-dir", default="/root/autodl-tmp")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--tier", default="cpu")
    p.add_argument("--fresh", action="store_true", help="wipe rentstack's files on the host first (test hosts only)")
    p.add_argument("extra", nargs="*", help="more fab provision flags (after --)")
    a = p.parse_args()
    spec = parse_host(a.host)
    auth = Auth(password=os.environ.get(PASSWORD_ENV))
    layout = Layout(a.data_dir)
    fab_args = ["provision", "--host", a.host, "--data-dir", a.data_dir, "--port", str(a.port), "--tier", a.tier,
                *a.extra]
    with Remote(spec, auth) as remote:
        if a.fresh:
            remote.run(native_stop(layout, a.tier))
            remote.check("rm -rf " + " ".join(shlex.quote(x) for x in (layout.venv, layout.models, layout.home, layout.cache)),
                         "wiping the host")
        rows = []
        for label in ("first", "re-run"):
            before = received_bytes(remote)
            seconds, code, out = run_fab(fab_args)
            received = received_bytes(remote) - before
            acted = len(re.findall(r"^\s+\[ok  \]", out, re.M))
            skipped = len(re.findall(r"^\s+\[skip\]", out, re.M))
            if code != 0:
                print(out, file=sys.stderr)
                print(f"bench: {label} provision failed (exit {code})", file=sys.stderr)
                return 1
            rows.append((label, seconds, acted, skipped, received))
    print(f"{'run':8} {'seconds':>9} {'steps acted':>12} {'skipped':>8} {'MB received by host':>20}")
    for label, seconds, acted, skipped, received in rows:
        print(f"{label:8} {seconds:9.1f} {acted:12d} {skipped:8d} {received / 1e6:20.2f}")
    ratio = rows[1][1] / rows[0][1]
    ok = ratio < 0.05 and rows[1][2] == 0
    print(f"re-run / first = {ratio * 100:.1f} % (goal < 5 %, no step acting): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
