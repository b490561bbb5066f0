"""Idle stop against a real vLLM CPU server in real Docker: the watchdog never fires while
requests keep coming, survives a server restart, and fires after the window once the server
is idle — stopping the container and running the power-off command. Only that power-off
command is replaced, by one that records its arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rentstack.cli import main
from rentstack.idle import watchdog
from rentstack.local.deploy_dir import read_api_key
from rentstack.verify import chat, wait_healthy

PROJECT = "rentstack-itest-idle"
WINDOW_S = 12


def _container_state(project: str) -> str:
    out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                          "--filter", "label=com.docker.compose.service=vllm-cpu", "--format", "{{.State}}"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return out


def _endpoint(state: Path) -> str:
    env = dict(line.split("=", 1) for line in (state / "cpu" / "compose.env").read_text().splitlines()
               if "=" in line and not line.startswith("#"))
    return f"http://127.0.0.1:{env['RENTSTACK_PORT']}"


@pytest.fixture()
def served(smollm2, free_port, tmp_path):
    state = tmp_path / "state"
    common = ["--tier", "cpu", "--state-dir", str(state), "--project", PROJECT]
    assert main(["up", *common, "--port", str(free_port)]) == 0
    yield state, common
    main(["down", *common])


def test_watchdog_spares_a_busy_server_and_stops_an_idle_one(served, tmp_path):
    state, _ = served
    url = _endpoint(state)
    key = read_api_key(state / "cpu" / "secrets.env")
    record = tmp_path / "poweroff.txt"
    env = {**os.environ, "RENTSTACK_IDLE_STOP": f"{WINDOW_S}s", "RENTSTACK_IDLE_INTERVAL": "1",
           "RENTSTACK_IDLE_METRICS_URL": f"{url}/metrics", "RENTSTACK_IDLE_TARGET": f"compose:{PROJECT}",
           "RENTSTACK_IDLE_ACTION": "poweroff", "VLLM_API_KEY": key,
           # the provider's power-off, replaced by a command that records that it ran and with what
           "RENTSTACK_IDLE_POWEROFF_CMD": json.dumps(["sh", "-c", f'echo "poweroff $*" >> {record}', "sh", "now"])}
    log = tmp_path / "watchdog.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, watchdog.__file__], env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        # Busy for more than two windows: requests back to back (one at a time, so some reads
        # see none running and only the counters tell the watchdog that work was done).
        stop = threading.Event()
        answers: list[int] = []

        def load():
            while not stop.is_set():
                answers.append(chat(url, key, "smollm2-135m", "Count to five.", max_tokens=16).status)

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(2 * WINDOW_S + 5)
        assert proc.poll() is None, log.read_text()
        assert _container_state(PROJECT) == "running"

        # A server restart while busy: the watchdog keeps running and does not act.
        stop.set()
        worker.join()
        subprocess.run(["docker", "restart", f"{PROJECT}-vllm-cpu-1"], check=True, capture_output=True)
        assert wait_healthy(url, timeout=240)
        assert proc.poll() is None, log.read_text()
        assert answers and set(answers) == {200}
        # The restart itself counts as activity from the watchdog's first read after it, which can
        # come before wait_healthy returns; one more request makes the last activity a known time.
        assert chat(url, key, "smollm2-135m", "Say hi.", max_tokens=4).status == 200
        last_request = time.monotonic()

        # Idle now: it fires after the window, not before (less one read interval: the watchdog
        # may read the finished counter a moment before the response reaches this test).
        code = proc.wait(timeout=WINDOW_S + 60)
        idle_for = time.monotonic() - last_request
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert code == 0, text
    assert idle_for >= WINDOW_S - 1, idle_for
    assert "server restarted (counters reset)" in text or "requests finished since the last read" in text
    assert "the server stops in" in text                      # the warning came first
    assert f"(window {WINDOW_S}s): no request running, waiting or finished; stopping the server" in text
    assert "stopped vllm-cpu" in text
    assert _container_state(PROJECT) == "exited"
    assert "powering off (configured)" in text
    assert record.read_text() == "poweroff now\n"


def test_idle_stop_profile_stops_the_served_tier(smollm2, free_port, tmp_path, monkeypatch):
    """`make up IDLE_STOP=...`: the idle-stop service reads /metrics through the front with the
    metrics token and stops the tier's vLLM container through the Docker socket."""
    project = PROJECT + "-profile"
    state = tmp_path / "state"
    common = ["--tier", "cpu", "--state-dir", str(state), "--project", project]
    monkeypatch.setenv("RENTSTACK_IDLE_INTERVAL", "1")      # compose: the shell wins over compose.env
    try:
        assert main(["up", *common, "--port", str(free_port), "--idle-stop", f"{WINDOW_S}s"]) == 0
        url = _endpoint(state)
        key = read_api_key(state / "cpu" / "secrets.env")
        assert chat(url, key, "smollm2-135m", "Say hi.", max_tokens=8).status == 200
        last_request = time.monotonic()
        time.sleep(WINDOW_S - 4)
        assert _container_state(project) == "running"          # not before the window
        deadline = last_request + WINDOW_S + 60
        while _container_state(project) == "running" and time.monotonic() < deadline:
            time.sleep(1)
        assert _container_state(project) == "exited"
        logs = subprocess.run(["docker", "logs", f"{project}-idle-stop-1"], capture_output=True, text=True).stdout
        assert "server is up; stopping it after" in logs
        assert "stopping the server" in logs and "stopped vllm-cpu" in logs
        assert key not in logs
    finally:
        main(["down", *common])
