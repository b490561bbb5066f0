"""Every tier's compose service passes the real `docker compose config`, with the values that matter."""

from __future__ import annotations

import json
import subprocess

import pytest

from rentstack.local.compose import Stack
from rentstack.local.deploy_dir import write_deployment
from rentstack.render import build_deployment
from rentstack.config import custom_tier, list_tiers, load_tier

# A tier spanning hosts is a Ray cluster brought up over SSH, not a compose service.
CASES = [(name, None) for name in list_tiers() if load_tier(name).hosts == 1] + [("gpu", "custom")]


def _tier(name, kind):
    return custom_tier(2, 24.0) if kind == "custom" else load_tier(name)


@pytest.mark.parametrize(("name", "kind"), CASES, ids=[c[0] for c in CASES])
def test_compose_config_passes_for_every_tier(name, kind, tmp_path):
    tier = _tier(name, kind)
    dep = build_deployment(tier, None if kind != "custom" else "qwen3-8b", models_dir="/data/models")
    out = write_deployment(dep, tmp_path / "state", tmp_path / "cache")
    stack = Stack(profile=name, env_file=out.compose_env, project="rentstack-config-test")
    proc = subprocess.run(stack.cmd("config", "--format", "json"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    assert list(config["services"]) == [f"vllm-{name}"], "only this tier's service is active"
    svc = config["services"][f"vllm-{name}"]
    port = svc["ports"][0]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "8000", 8000)
    assert svc["environment"]["VLLM_API_KEY"].startswith("rs-")        # from the 0600 env file
    assert "rs-" not in " ".join(svc["command"])
    mounts = {v["target"]: v for v in svc["volumes"]}
    assert mounts["/models"]["source"] == "/data/models" and mounts["/models"]["read_only"] is True
    assert mounts["/etc/rentstack/vllm.yaml"]["source"] == str(out.vllm_yaml)
    assert svc["healthcheck"]["start_period"]
    assert svc["restart"] == "unless-stopped"
    if tier.accelerator == "cpu":
        assert svc["shm_size"] == "2147483648"
        assert svc["environment"]["VLLM_CPU_KVCACHE_SPACE"] == "1"
    else:
        assert svc["ipc"] == "host"
        device = svc["deploy"]["resources"]["reservations"]["devices"][0]
        assert device["count"] == tier.gpu.count and device["capabilities"] == ["gpu"]
        if not tier.gpu.p2p:
            assert svc["environment"]["NCCL_P2P_DISABLE"] == "1"


def test_public_bind_reaches_compose(tmp_path):
    dep = build_deployment(load_tier("cpu"), bind="0.0.0.0", port=6006, models_dir="/data/models")
    out = write_deployment(dep, tmp_path / "state", tmp_path / "cache")
    stack = Stack(profile="cpu", env_file=out.compose_env, project="rentstack-config-test")
    config = json.loads(subprocess.run(stack.cmd("config", "--format", "json"), capture_output=True,
                                       text=True, check=True).stdout)
    port = config["services"]["vllm-cpu"]["ports"][0]
    assert (port["host_ip"], port["published"]) == ("0.0.0.0", "6006")
