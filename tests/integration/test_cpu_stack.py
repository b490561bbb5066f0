"""The CPU tier end to end: `rentstack up` serves the real model with real vLLM in real Docker
behind the front door (nginx), answers a chat request with the key, refuses one without it,
and goes down."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from rentstack.cli import main
from rentstack.local.deploy_dir import read_api_key
from rentstack.verify import chat

PROJECT = "rentstack-itest"


@pytest.fixture()
def cpu_stack(smollm2, free_port, tmp_path):
    state = tmp_path / "state"
    common = ["--tier", "cpu", "--state-dir", str(state), "--project", PROJECT]
    yield free_port, state, common
    main(["down", *common])


def test_cpu_tier_up_chat_401_down(cpu_stack, capsys):
    port, state, common = cpu_stack
    assert main(["up", *common, "--port", str(port)]) == 0
    out = capsys.readouterr().out
    url = f"http://127.0.0.1:{port}"
    assert f"ready: {url}/v1" in out
    secrets = state / "cpu" / "secrets.env"
    assert f"API key: stored in {secrets}" in out and "curl -s" in out
    key = read_api_key(secrets)
    assert key not in out                                   # the key itself is never printed

    reply = chat(url, key, "smollm2-135m", "What is the capital of France?")
    assert reply.status == 200
    assert "paris" in reply.text.lower()
    assert reply.completion_tokens > 0

    assert chat(url, None, "smollm2-135m", "hi").status == 401
    assert chat(url, "rs-wrong", "smollm2-135m", "hi").status == 401

    # bound to loopback only: the published port's host address is 127.0.0.1
    ps = subprocess.run(["docker", "compose", "-p", PROJECT, "ps", "--format", "json"],
                        capture_output=True, text=True, check=True).stdout
    # ... by the front door alone; vLLM publishes nothing (tests/integration/test_front_door.py probes every route)
    published = {(row["Service"], p["URL"], p["PublishedPort"]) for line in ps.splitlines() if line.strip()
                 for row in [json.loads(line)] for p in row["Publishers"] if p["PublishedPort"]}
    assert published == {("front", "127.0.0.1", port)}
    assert urllib.request.urlopen(f"{url}/health", timeout=5).status == 200          # open without the key
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(f"{url}/invocations", data=b"{}", method="POST"), timeout=5)
    assert refused.value.code == 401

    assert main(["smoke", *common]) == 0
    assert "tokens/s" in capsys.readouterr().out
    assert main(["status", *common]) == 0
    assert "healthy" in capsys.readouterr().out

    assert main(["down", *common]) == 0
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"{url}/health", timeout=3)
    assert main(["status", *common]) == 3


def test_up_refuses_a_taken_port(smollm2, free_port, tmp_path, capsys):
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", free_port))
        holder.listen()
        code = main(["up", "--tier", "cpu", "--port", str(free_port), "--state-dir", str(tmp_path),
                     "--project", PROJECT + "-port"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"port {free_port} on 127.0.0.1 is already in use" in err
    assert err.count("\n") == 1


def test_doctor_reads_the_live_servers_log(cpu_stack, capsys):
    port, state, common = cpu_stack
    assert main(["up", *common, "--port", str(port)]) == 0
    capsys.readouterr()
    assert main(["logs", *common]) == 0
    log = state / "server.log"
    log.write_text(capsys.readouterr().out)
    assert main(["doctor", str(log), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "ok" and report["cause"] is None
    assert report["figures"]["vllm_version"] == "0.32.0"


def test_auto_fix_closes_the_loop_on_a_real_failure(smollm2, free_port, tmp_path, capsys):
    """max-model-len above SmolLM2's 8192 makes real vLLM refuse to start (rendered with --force:
    the render check would refuse it first); the doctor reads the log, its first fix lowers the
    length, and the retry comes up healthy."""
    common = ["--tier", "cpu", "--state-dir", str(tmp_path), "--project", PROJECT + "-fix"]
    try:
        code = main(["up", *common, "--port", str(free_port), "--set", "max-model-len=20000", "--auto-fix", "1",
                     "--force"])   # the render check refuses it; --force lets real vLLM do the refusing
        out = capsys.readouterr()
        assert code == 0, out.err[-2000:]
        assert "doctor: fix: {'max-model-len': 8192}" in out.err
        assert "attempt 2/2" in out.out and f"ready: http://127.0.0.1:{free_port}/v1" in out.out
        assert "max-model-len: 8192" in (tmp_path / "cpu" / "vllm.yaml").read_text()
    finally:
        main(["down", *common])


def test_without_auto_fix_the_advice_is_printed_and_up_stops(smollm2, free_port, tmp_path, capsys):
    common = ["--tier", "cpu", "--state-dir", str(tmp_path), "--project", PROJECT + "-nofix"]
    try:
        code = main(["up", *common, "--port", str(free_port), "--set", "max-model-len=20000", "--force"])
        err = capsys.readouterr().err
        assert code == 2
        assert "doctor: fix: {'max-model-len': 8192}" in err
        assert "rerun with AUTO_FIX=1" in err
        assert err.strip().endswith("see `make logs TIER=cpu`")
    finally:
        main(["down", *common])
