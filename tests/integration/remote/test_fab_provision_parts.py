"""The parts around the server over fab: `fab provision --profiles webui,monitoring` on the Docker
SSH host brings Prometheus up beside the server, scraping vLLM's /metrics through the front door
with the metrics token, and Open WebUI, logging in with the admin file made on the host and
listing the served model it reads through the front with the key; the native host refuses
the parts in one line before any step runs.

The Docker host shares this machine's daemon, so the images `make up PROFILES="webui
monitoring"` built are already there and the runtime step skips; its build path (Dockerfile
and context uploaded, `docker build` on the host) is covered by tests/unit/test_fab_parts.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request

import pytest

from rentstack.config import load_tier
from rentstack.remote import runners
from rentstack.remote.facts import parse_compose_services
from rentstack.remote.layout import Layout
from fab_report import step_lines
from integration.prometheus_probe import prometheus_json, scrape_targets

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_native_host_refuses_the_parts_before_any_step(hosts, fab) -> None:
    host = hosts["native"]
    r = fab("provision", "--host", host.address, "--data-dir", host.data_dir, "--port", str(host.server_port),
            "--profiles", "webui,monitoring")
    assert r.code == 1, r.text
    assert "webui and monitoring need Docker" in r.text and "fab tunnel" in r.text, r.text
    assert step_lines(r.out) == {}, r.out          # refused before the first step: nothing ran, nothing planned


@pytest.fixture(scope="module")
def part_images(docker_required) -> None:
    """The parts' images, built here on the debootstrap base: the Docker SSH test host shares this
    daemon and, with no registry, could not pull the slim base its own build would start from
    (that path is covered by tests/unit/test_fab_parts.py)."""
    from rentstack.local.profile_images import build_profile_images

    build_profile_images(("webui", "monitoring"))


def test_compose_provision_with_prometheus_through_the_front(hosts, fab, part_images) -> None:
    host = hosts["docker"]
    common = ["--host", host.address, "--data-dir", host.data_dir, "--port", str(host.server_port),
              "--project", host.project, "--profiles", "webui,monitoring"]
    deploy = f"{host.data_dir}/.rentstack/deploy"
    container = f"{host.project}-prometheus-1"
    try:
        dry = fab("provision", *common, "--dry-run")
        assert dry.code == 0, dry.text
        assert step_lines(dry.out)["runtime: parts"] == \
            "skip|rentstack/open-webui:0.12.4, rentstack/prometheus:2.42.0 present — skipped", dry.out

        r = fab("provision", *common)
        assert r.code == 0, r.text
        steps = step_lines(r.out)
        assert steps["runtime: parts"].startswith("skip|rentstack/open-webui:0.12.4, rentstack/prometheus:2.42.0"), r.out
        assert steps["render"].startswith("ok|") and "prometheus.yml" in steps["render"], r.out
        assert steps["server"].startswith("ok|compose server healthy"), r.out
        assert "metrics: Prometheus scrapes /metrics through the front" in r.out, r.out

        # compose.env names the part; its config was uploaded beside compose.yaml (it is mounted from there)
        env = host.exec(f"cat {deploy}/cpu/compose.env")
        assert "COMPOSE_PROFILES=cpu,webui,monitoring" in env and f"RENTSTACK_PROMETHEUS_DIR={deploy}/prometheus" in env
        assert "credentials_file: /run/rentstack/metrics_token" in host.exec(
            f"cat {deploy}/scripts/prometheus/prometheus.yml")

        targets = scrape_targets(["docker", "exec", container])
        assert len(targets) == 1
        assert targets[0]["labels"]["job"] == "vllm"
        assert targets[0]["scrapeUrl"] == "http://front:8081/metrics"
        assert targets[0]["health"] == "up", targets[0].get("lastError")
        series = prometheus_json(["docker", "exec", container],
                                 "/api/v1/query?query=vllm:num_requests_running")["data"]["result"]
        assert series and series[0]["metric"]["model_name"] == "smollm2-135m"

        # The token lives in secrets.env on the host only: not in the config Prometheus runs with.
        secrets = host.exec(f"cat {deploy}/cpu/secrets.env")
        metrics_token = re.search(r"^RENTSTACK_METRICS_TOKEN=(\S+)$", secrets, re.M).group(1)
        config = subprocess.run(["docker", "exec", container, "cat", "/etc/rentstack/prometheus.yml"],
                                capture_output=True, text=True).stdout
        assert "credentials_file: /run/rentstack/metrics_token" in config and metrics_token not in config
        # The time series are on the host's data disk, in a directory only root reads.
        assert host.exec(f"stat -c %a {deploy}/prometheus").strip() == "700"
        assert host.exec(f"test -d {deploy}/prometheus/wal && echo yes").strip() == "yes"

        # The UI: its admin login was made on the host (0600, never printed); it signs in and lists
        # the served model, which it can only know by asking vLLM through the front with the key.
        assert host.exec(f"stat -c %a {deploy}/webui/admin.env").strip() == "600"
        # the parts' narrow secret files: 0600, one secret each (the UI the key, Prometheus the token)
        assert host.exec(f"stat -c %a {deploy}/cpu/key.env {deploy}/cpu/metrics.env").split() == ["600", "600"]
        assert "RENTSTACK_METRICS_TOKEN=" in host.exec(f"cat {deploy}/cpu/metrics.env")
        assert "VLLM_API_KEY=" not in host.exec(f"cat {deploy}/cpu/metrics.env")
        admin = dict(line.split("=", 1) for line in host.exec(f"cat {deploy}/webui/admin.env").splitlines()
                     if "=" in line and not line.startswith("#"))
        assert admin["WEBUI_ADMIN_PASSWORD"] not in r.text
        assert "chat UI: ssh -CNg -L 3000:127.0.0.1:3000" in r.out and "webui/admin.env on the host" in r.out
        signin = urllib.request.Request("http://127.0.0.1:3000/api/v1/auths/signin", method="POST",
                                        headers={"Content-Type": "application/json"},
                                        data=json.dumps({"email": admin["WEBUI_ADMIN_EMAIL"],
                                                         "password": admin["WEBUI_ADMIN_PASSWORD"]}).encode())
        with urllib.request.urlopen(signin, timeout=30) as resp:
            token = json.load(resp)["token"]
        models = urllib.request.Request("http://127.0.0.1:3000/api/models",
                                        headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(models, timeout=60) as resp:
            assert [m["id"] for m in json.load(resp)["data"]] == ["smollm2-135m"]

        # `fab status` reads the parts' containers (the same command, run here for its raw output)
        raw = host.exec(runners.compose_parts_state(Layout(host.data_dir), load_tier("cpu"), host.project))
        print(f"compose parts state:\n{raw}")
        assert parse_compose_services(raw)["prometheus"].startswith("running Up"), raw
        status = fab("status", "--host", host.address, "--data-dir", host.data_dir, "--port", str(host.server_port),
                     "--project", host.project)
        assert status.code == 0 and re.search(r"^\s+prometheus: running Up .*\(healthy\)", status.out, re.M), status.text

        again = fab("provision", *common)
        assert again.code == 0, again.text
        assert all(v.startswith("skip|") for v in step_lines(again.out).values()), again.out
    finally:
        r = fab("down", "--host", host.address, "--data-dir", host.data_dir, "--project", host.project)
    assert r.code == 0 and "containers removed" in r.out, r.text
    for part in ("prometheus", "webui"):
        gone = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{host.project}-{part}-1$"],
                              capture_output=True, text=True)
        assert gone.stdout.strip() == "", f"fab down left {part} running"
