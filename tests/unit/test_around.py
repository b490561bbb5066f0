"""The parts around the server as rendered values: profiles, idle settings, compose blocks."""

from __future__ import annotations

import stat

import pytest
import yaml

from rentstack.cli import main
from rentstack.errors import RentstackError
from rentstack.local.around import ensure_webui_files, read_env_file
from rentstack.render import around
from rentstack.render.templates import render_root_compose
from rentstack.config import list_tiers, load_tier


def _compose() -> dict:
    return yaml.safe_load(render_root_compose([load_tier(t) for t in list_tiers()]))


def test_profiles_are_checked_and_deduplicated():
    assert around.check_profiles(["webui", "monitoring", "webui"]) == ("webui", "monitoring")
    with pytest.raises(RentstackError, match="unknown profile 'webiu' \\(did you mean 'webui'\\?\\)"):
        around.check_profiles(["webiu"])


def test_idle_stop_profile_only_with_a_window():
    assert around.active_profiles("cpu", ("webui",), "off") == ("cpu", "webui")
    assert around.active_profiles("cpu", ("idle-stop",), "off") == ("cpu",)
    assert around.active_profiles("cpu", (), "30m") == ("cpu", "idle-stop")
    assert around.active_parts(("webui", "idle-stop"), "30m") == ("webui", "idle-stop")
    assert around.check_idle("30M", "stop") == "30m"
    assert around.check_idle("off", "poweroff") == "off"
    with pytest.raises(RentstackError, match="idle-stop: idle window '30 min'"):
        around.check_idle("30 min", "stop")
    with pytest.raises(RentstackError, match="unknown idle action 'halt'"):
        around.check_idle("30m", "halt")


def test_parts_reach_vllm_only_through_front_and_hold_no_secret():
    services = _compose()["services"]
    assert services["webui"]["profiles"] == ["webui"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["idle-stop"]["profiles"] == ["idle-stop"]
    assert services["webui"]["environment"]["OPENAI_API_BASE_URL"] == "http://front:8081/v1"
    assert services["idle-stop"]["environment"]["RENTSTACK_IDLE_METRICS_URL"] == "http://front:8081/metrics"
    for name in ("webui", "prometheus", "idle-stop"):
        svc = services[name]
        assert svc["pull_policy"] == ("missing" if name == "idle-stop" else "never")   # idle-stop: see below
        # never the whole secrets.env (HF_TOKEN lives there): the UI the key only, the others the token only
        assert svc["env_file"][0]["path"].endswith("/key.env" if name == "webui" else "/metrics.env")
        text = yaml.safe_dump(svc)
        assert "VLLM_API_KEY=" not in text and "rs-" not in text
        assert "ports" not in svc or name == "webui"      # only the UI publishes, behind its own login
    # the UI speaks plain HTTP: loopback only, even with --public (RENTSTACK_BIND=0.0.0.0)
    assert services["webui"]["ports"] == ["127.0.0.1:${RENTSTACK_WEBUI_PORT:-3000}:8080"]
    idle = services["idle-stop"]
    assert idle["image"] == "${RENTSTACK_IDLE_IMAGE:-rentstack/debian-base:bookworm}" and idle["pull_policy"] == "missing"
    assert "RENTSTACK_IDLE_TLS_INSECURE" not in idle["environment"]


def test_every_service_key_compose_requires_a_mapping_for_is_one():
    """`environment:` left empty renders as null, which docker compose refuses for the whole file
    ("services.prometheus.environment must be a mapping") — every tier's `up` would fail."""
    for name, svc in _compose()["services"].items():
        for key in ("environment", "labels", "depends_on", "healthcheck"):
            if key in svc:
                assert isinstance(svc[key], dict), (name, key, svc[key])


def test_webui_admin_file_is_private_and_kept(tmp_path):
    admin = ensure_webui_files(tmp_path)
    assert stat.S_IMODE(admin.stat().st_mode) == 0o600
    first = read_env_file(admin)
    assert len(first["WEBUI_ADMIN_PASSWORD"]) >= 20 and first["WEBUI_SECRET_KEY"]
    ensure_webui_files(tmp_path)
    assert read_env_file(admin) == first


def test_render_writes_the_parts_into_compose_env(tmp_path):
    from rentstack.local.deploy_dir import write_deployment
    from rentstack.render import build_deployment
    from dataclasses import replace

    dep = replace(build_deployment(load_tier("cpu")), profiles=("webui", "monitoring"), idle_stop="45s")
    rendered = write_deployment(dep, tmp_path, tmp_path / "cache")
    env = read_env_file(rendered.compose_env)
    assert env["COMPOSE_PROFILES"] == "cpu,webui,monitoring,idle-stop"
    assert env["RENTSTACK_IDLE_STOP"] == "45s" and env["RENTSTACK_IDLE_ACTION"] == "stop"
    assert env["RENTSTACK_PROMETHEUS_DIR"] == f"{tmp_path.resolve()}/prometheus"


@pytest.mark.parametrize("argv, needle", [
    (["--profiles", "grafana"], "unknown profile 'grafana'"),
    (["--idle-stop", "soon"], "idle window 'soon' is not a duration"),
])
def test_up_bad_parts_are_one_line(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("rentstack.commands.up.require_docker", lambda: None)
    assert main(["up", "--state-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_parts_secret_files_hold_one_secret_each(tmp_path):
    from rentstack.local.deploy_dir import write_deployment
    from rentstack.render import build_deployment

    dep = build_deployment(load_tier("cpu"), "smollm2-135m", {"hf-token": "hf_secret"}, models_dir=str(tmp_path / "m"))
    out = write_deployment(dep, tmp_path / "state", tmp_path / "cache")
    tier_dir = out.directory
    key = read_env_file(tier_dir / "secrets.env")
    assert key["HF_TOKEN"] == "hf_secret"
    for name, wanted in (("key.env", {"VLLM_API_KEY"}), ("metrics.env", {"RENTSTACK_METRICS_TOKEN"})):
        values = read_env_file(tier_dir / name)
        assert set(values) == wanted and all(values[k] == key[k] for k in wanted)
        assert stat.S_IMODE((tier_dir / name).stat().st_mode) == 0o600
