"""`rentstack top` as a person uses it: in a terminal (tmux), against the real CPU server, while
concurrent chat requests load it; two captures of the pane must show numbers that moved."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import threading
import time

import pytest

from rentstack.cli import main
from rentstack.local.deploy_dir import read_api_key
from rentstack.verify import chat

PROJECT = "rentstack-itest-top"


def _pane(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True,
                          check=True).stdout


def _figures(frame: str) -> dict[str, float]:
    """The numbers a person reads off the frame."""
    out: dict[str, float] = {}
    for key, pattern in (("running", r"running (\d+)"), ("waiting", r"waiting (\d+)"),
                         ("finished", r"finished (\d+)"), ("generation", r"generation ([\d.]+)"),
                         ("prompt", r"prompt ([\d.]+)"), ("kv", r"KV cache .*?([\d.]+) %"),
                         ("ttft_p50", r"TTFT\s+p50 (\d+) ms")):
        m = re.search(pattern, frame)
        if m:
            out[key] = float(m.group(1))
    return out


def _wait_for(session: str, want, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    frame = ""
    while time.monotonic() < deadline:
        frame = _pane(session)
        if want(_figures(frame)):
            return frame
        time.sleep(0.5)
    raise AssertionError(f"the pane never showed what was expected; last frame:\n{frame}")


@pytest.fixture()
def served(smollm2, free_port, tmp_path):
    state = tmp_path / "state"
    common = ["--tier", "cpu", "--state-dir", str(state), "--project", PROJECT]
    assert main(["up", *common, "--port", str(free_port)]) == 0
    yield free_port, state, common
    main(["down", *common])


def test_top_under_tmux_shows_the_load_move(served, capsys):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing: scripts/run-tests.sh installs it (apt-get install tmux)")
    port, state, _ = served
    url = f"http://127.0.0.1:{port}"
    common = ["--tier", "cpu", "--state-dir", str(state)]
    key = read_api_key(state / "cpu" / "secrets.env")

    # --once: one frame on stdout, with the endpoint and every row
    assert main(["top", *common, "--once", "--interval", "1"]) == 0
    once = capsys.readouterr().out
    assert f"rentstack top — {url}" in once and "KV cache" in once and "TTFT" in once
    assert _figures(once)["running"] == 0

    session = f"rstop-{port}"
    command = shlex.join([sys.executable, "-m", "rentstack", "top", *common, "--interval", "1"])
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "110", "-y", "20", command], check=True)
    try:
        idle = _figures(_wait_for(session, lambda f: "generation" in f, 30))
        assert idle["running"] == 0 and idle["generation"] == 0

        stop = time.monotonic() + 30
        replies: list[int] = []

        def user(i: int) -> None:
            while time.monotonic() < stop:
                r = chat(url, key, "smollm2-135m", f"Count from 1 to 80, one number per line ({i}).",
                         max_tokens=200)
                assert r.status == 200
                replies.append(r.completion_tokens)

        users = [threading.Thread(target=user, args=(i,)) for i in range(4)]
        for t in users:
            t.start()
        try:
            first = _figures(_wait_for(session, lambda f: f.get("running", 0) >= 1 and f.get("generation", 0) > 0, 25))
            time.sleep(3)
            second = _figures(_wait_for(session, lambda f: f.get("generation", 0) > 0, 10))
        finally:
            for t in users:
                t.join()
        assert first["running"] >= 1
        assert first["generation"] > 0 and second["generation"] > 0
        assert first["kv"] > 0  # requests in flight hold KV blocks
        assert (first["generation"], first.get("finished")) != (second["generation"], second.get("finished"))

        after = _figures(_wait_for(session, lambda f: f.get("running", 1) == 0 and f.get("finished", 0) > 0, 20))
        assert after["finished"] >= len(replies) > 0  # every answered request was counted
        assert "ttft_p50" in first or "ttft_p50" in second  # latency percentiles came from the load
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
