"""After test_fab_provision has the native SSH host serving: `fab bench` load-tests it through
the SSH tunnel, then `fab up --idle-stop ... --idle-action poweroff` makes the supervised
watchdog stop the idle server and run the power-off command. Only `shutdown` is replaced, by a
script earlier on PATH that records its call."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORD = "/root/poweroff-calls.txt"


def test_fab_bench_through_the_tunnel(hosts, fab, tmp_path) -> None:
    host = hosts["native"]
    out = tmp_path / "bench"
    r = fab("bench", "--host", host.address, "--data-dir", host.data_dir, "--port", str(host.server_port),
            "--concurrency", "1,2", "--input-len", "32", "--output-len", "8", "--out", str(out))
    assert r.code == 0, r.text
    assert "through an SSH tunnel" in r.out and "< predicted max" not in r.out   # planner says 4; levels 1,2
    data = json.loads((out / "bench.json").read_text())
    assert [row["concurrency"] for row in data["rows"]] == [1, 2]
    assert all(row["completed"] == 4 and row["failed"] == 0 for row in data["rows"])
    assert data["prediction"]["concurrency"] == 4
    assert (out / "bench.png").stat().st_size > 10_000


def test_native_idle_stop_stops_the_server_and_powers_off(hosts, fab) -> None:
    host = hosts["native"]
    host.exec(f"printf '#!/bin/sh\\necho \"shutdown $*\" >> {RECORD}\\n' > /usr/local/sbin/shutdown "
              f"&& chmod +x /usr/local/sbin/shutdown && rm -f {RECORD}")
    try:
        r = fab("up", "--host", host.address, "--data-dir", host.data_dir, "--port", str(host.server_port),
                "--idle-stop", "20s", "--idle-action", "poweroff")
        assert r.code == 0, r.text
        run = f"{host.data_dir}/.rentstack/run"
        assert host.exec(f"test -f {run}/idle-stop-cpu.pid && echo yes").strip() == "yes"
        # idle.env says what to watch and stop; no secret in it
        env = host.exec(f"cat {host.data_dir}/.rentstack/deploy/cpu/idle.env")
        assert "RENTSTACK_IDLE_STOP=20s" in env and f"native:{run}/vllm-cpu.pid" in env
        assert "VLLM_API_KEY" not in env

        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and host.exec(f"test -f {run}/vllm-cpu.pid && echo up",
                                                        check=False).strip() == "up":
            time.sleep(3)
        # The supervisor removes the pid file as it exits; the watchdog logs "stopped supervisor"
        # and powers off just after, so read its log until that line is there (or time is up).
        log_path = f"{host.data_dir}/.rentstack/logs/idle-stop-cpu.log"
        log = host.exec(f"cat {log_path}")
        while "powering off" not in log and time.monotonic() < deadline + 30:
            time.sleep(1)
            log = host.exec(f"cat {log_path}")
        assert host.exec(f"test -f {run}/vllm-cpu.pid && echo up", check=False).strip() == "", log
        assert "server is up; stopping it after 20s without requests" in log
        assert "no request running, waiting or finished; stopping the server" in log
        assert "stopped supervisor" in log and "powering off" in log
        assert host.exec(f"cat {RECORD}").strip() in ("shutdown", "shutdown -h now")
        # the server is gone, the watchdog's supervisor is still there (it survives its server)
        probe = (f"python3 -c \"import urllib.request; "
                 f"urllib.request.urlopen('http://127.0.0.1:{host.server_port}/health', timeout=3)\" && echo up")
        assert host.exec(probe, check=False).strip() == ""
    finally:
        host.exec("rm -f /usr/local/sbin/shutdown", check=False)
        fab("down", "--host", host.address, "--data-dir", host.data_dir)
