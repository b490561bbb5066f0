"""The native runner's supervisor, run for real with sh on this machine: several processes
per tier, each with its own log and pid file, environment from env files, restarted when
killed, all stopped by one command."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from rentstack.remote.layout import Layout
from rentstack.remote.runners import SUPERVISOR_SCRIPT, Program, native_running, native_start, native_stop


def _sh(cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=60)


def _wait(pred, seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_two_supervised_processes_start_restart_and_stop(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path / "data dir"))     # a space in the data dir stays one word
    os.makedirs(layout.home)
    Path(layout.supervisor).write_text(SUPERVISOR_SCRIPT.read_text())
    env = tmp_path / "a.env"
    env.write_text("GREETING='hello world'\n")
    secret = tmp_path / "s.env"
    secret.write_text("TOKEN=t0p\n")
    programs = [Program("Alpha", "alpha", ("sh", "-c", 'echo "$GREETING $TOKEN"; exec sleep 300'), (str(env), str(secret))),
                Program("Beta", "beta", ("sleep", "300"))]
    try:
        for p in programs:
            out = _sh(native_start(layout, "t", p))
            assert out.returncode == 0 and out.stdout.startswith("supervisor "), out
        for p in programs:
            assert _sh(native_running(layout, "t", p.slug)).returncode == 0
        alpha_log = Path(layout.log("t", "alpha"))
        assert _wait(lambda: "hello world t0p" in alpha_log.read_text())
        assert "t0p" not in _sh("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '").stdout
        # Kill Beta's process (not its supervisor): it comes back, Alpha is untouched.
        beta_pid = Path(layout.pidfile("t", "beta")).read_text().strip()
        child = _sh(f"pgrep -g {beta_pid} -x sleep").stdout.split()
        assert child
        os.kill(int(child[0]), 9)
        beta_log = Path(layout.log("t", "beta"))
        assert _wait(lambda: "supervise: Beta exited with 137" in beta_log.read_text())
        assert _wait(lambda: beta_log.read_text().count("supervise: starting Beta") == 2, 15)
        assert "exited" not in alpha_log.read_text()
    finally:
        out = _sh(native_stop(layout, "t", ("alpha", "beta")))
    assert out.stdout.split("\n")[:2] == ["stopped", "stopped"]
    for p in programs:
        assert _sh(native_running(layout, "t", p.slug)).returncode != 0
        assert not Path(layout.pidfile("t", p.slug)).exists()


def test_wait_watches_every_program_not_only_the_server(tmp_path: Path) -> None:
    """native_wait gives up (exit 4) when any program's supervisor is gone, and (exit 5) when
    any program crash-loops, instead of waiting out the whole health timeout."""
    from rentstack.remote.runners import native_wait

    layout = Layout(str(tmp_path / "d"))
    os.makedirs(layout.home)
    Path(layout.supervisor).write_text(SUPERVISOR_SCRIPT.read_text())
    alpha = Program("Alpha", "alpha", ("sleep", "300"))
    beta = Program("Beta", "beta", ("sh", "-c", "exit 3"))
    port = 1   # nothing answers /health there
    try:
        assert _sh(native_start(layout, "t", alpha)).returncode == 0
        t0 = time.monotonic()
        gone = _sh(native_wait(layout, "t", port, 30, (alpha, beta)))
        assert gone.returncode == 4 and time.monotonic() - t0 < 10
        assert _sh(native_start(layout, "t", beta)).returncode == 0
        looping = _sh(native_wait(layout, "t", port, 40, (alpha, beta)))
        assert looping.returncode == 5
        assert Path(layout.log("t", "beta")).read_text().count("supervise: Beta exited with 3") >= 3
    finally:
        _sh(native_stop(layout, "t", ("alpha", "beta")))
