"""The parts around the server, all up at once on the CPU tier through `rentstack up --profiles`:
Prometheus scrapes vLLM through the front door with the metrics token, Open WebUI answers a
question in a real browser, and the idle-stop service stops an idle server.

The UI test needs Debian's chromium + chromium-driver and Selenium (marked `browser`); under
CI=true it runs like every integration test. The screenshot is kept as a test artifact
outside git: $RENTSTACK_ARTIFACTS (default /tmp/rentstack-artifacts)/webui-chat.png."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from browser import browser_problem, chrome, open_webui_chat, quit_chrome
from prometheus_probe import prometheus_json, scrape_targets
from rentstack.cli import main
from rentstack.local.around import read_env_file
from rentstack.remote.connection import free_local_port

PROJECT = "rentstack-itest-around"
ARTIFACTS = Path(os.environ.get("RENTSTACK_ARTIFACTS", "/tmp/rentstack-artifacts"))


def _compose(state: Path, *args: str) -> subprocess.CompletedProcess:
    from rentstack.local.compose import Stack

    stack = Stack(profile="cpu", env_file=state / "cpu" / "compose.env", project=PROJECT)
    return subprocess.run(stack.cmd(*args), capture_output=True, text=True)


@pytest.fixture(scope="module")
def around(smollm2, tmp_path_factory):
    state = tmp_path_factory.mktemp("around") / "state"
    api, ui = free_local_port(), free_local_port()
    common = ["--tier", "cpu", "--state-dir", str(state), "--project", PROJECT]
    os.environ["RENTSTACK_WEBUI_PORT"] = str(ui)       # compose: the shell wins over compose.env
    # A 135M model rambles at the UI's default temperature: greedy and short, so the answer is checkable.
    os.environ["RENTSTACK_WEBUI_MODEL_PARAMS"] = '{"temperature": 0, "max_tokens": 48}'
    try:
        # --tls: the published listener serves HTTPS (as with --public); the parts must still reach
        # vLLM through the front's plain internal listener (http://front:8081).
        assert main(["up", *common, "--port", str(api), "--tls", "--profiles", "webui monitoring"]) == 0
        yield state, api, ui
    finally:
        main(["down", *common])
        os.environ.pop("RENTSTACK_WEBUI_PORT", None)
        os.environ.pop("RENTSTACK_WEBUI_MODEL_PARAMS", None)


def _in_prometheus(state: Path) -> list[str]:
    from rentstack.local.compose import Stack

    return Stack(profile="cpu", env_file=state / "cpu" / "compose.env", project=PROJECT).cmd("exec", "-T", "prometheus")


def test_prometheus_scrapes_vllm_through_the_front_with_the_token(around):
    state, api, _ = around
    assert json.loads((state / "cpu" / "deployment.json").read_text())["endpoint"] == f"https://127.0.0.1:{api}"
    targets = scrape_targets(_in_prometheus(state))
    assert len(targets) == 1
    target = targets[0]
    assert target["labels"]["job"] == "vllm"
    assert target["scrapeUrl"] == "http://front:8081/metrics"
    assert target["health"] == "up", target.get("lastError")

    series = prometheus_json(_in_prometheus(state), "/api/v1/query?query=vllm:num_requests_running")["data"]["result"]
    assert series and series[0]["metric"]["model_name"] == "smollm2-135m"

    # The token is in secrets.env only: not in the config Prometheus runs with, not in compose.yaml.
    token = read_env_file(state / "cpu" / "secrets.env")["RENTSTACK_METRICS_TOKEN"]
    config = _compose(state, "exec", "-T", "prometheus", "cat", "/etc/rentstack/prometheus.yml").stdout
    assert "credentials_file: /run/rentstack/metrics_token" in config and token not in config
    mode = _compose(state, "exec", "-T", "prometheus", "stat", "-c", "%a", "/run/rentstack/metrics_token").stdout
    assert mode.strip() == "600"
    # Its time series live on the host (the data disk on a rented host), not in the container.
    assert (state / "prometheus" / "wal").is_dir()


@pytest.mark.browser
def test_webui_logs_in_asks_and_shows_the_models_answer(around):
    problem = browser_problem()
    if problem:
        pytest.skip(problem)
    state, _, ui = around
    admin = read_env_file(state / "webui" / "admin.env")
    assert oct((state / "webui" / "admin.env").stat().st_mode & 0o777) == "0o600"
    url = f"http://127.0.0.1:{ui}"
    with urllib.request.urlopen(f"{url}/health", timeout=10) as resp:
        assert resp.status == 200
    driver = chrome()
    try:
        answer = open_webui_chat(driver, url, admin["WEBUI_ADMIN_EMAIL"], admin["WEBUI_ADMIN_PASSWORD"],
                                 "What is the capital of France?", ARTIFACTS / "webui-chat.png")
    finally:
        quit_chrome(driver)
    assert "paris" in answer.lower(), answer
    assert (ARTIFACTS / "webui-chat.png").stat().st_size > 10_000
