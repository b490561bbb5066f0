"""`rentstack export helm`: values for the production stack chart, checked against the chart's own
values schema (tests/data/production-stack/values.schema.json) and against what was planned."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from rentstack.cli import main
from rentstack.config import list_tiers, load_tier
from rentstack.export.helm import helm_values, k8s_name, unknown_keys
from rentstack.render import build_deployment
from rentstack.releases import default_release

VLLM_GPU_IMAGE = default_release().image

SCHEMA = json.loads((Path(__file__).parents[1] / "data/production-stack/values.schema.json").read_text())
GPU_TIERS = [name for name in list_tiers() if load_tier(name).accelerator == "gpu" and load_tier(name).hosts == 1]


def _values(tier_name: str, **kw):
    dep = build_deployment(load_tier(tier_name))
    return dep, helm_values(dep, image=VLLM_GPU_IMAGE, **kw)


def _as_flags(extra: list[str]) -> dict[str, object]:
    """extraArgs back into {flag: value} (a bare flag is True)."""
    out: dict[str, object] = {}
    i = 0
    while i < len(extra):
        flag = extra[i].removeprefix("--")
        if i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            out[flag] = extra[i + 1]
            i += 2
        else:
            out[flag] = True
            i += 1
    return out


@pytest.mark.parametrize("tier", GPU_TIERS)
def test_values_validate_against_the_chart_schema(tier):
    _, values = _values(tier, replicas=2)
    jsonschema.Draft202012Validator(SCHEMA).validate(values)
    assert unknown_keys(values, SCHEMA) == []


@pytest.mark.parametrize("tier", GPU_TIERS)
def test_values_carry_the_planned_settings(tier):
    dep, values = _values(tier)
    spec = values["servingEngineSpec"]["modelSpec"][0]
    config = spec["vllmConfig"]
    s = dep.settings
    assert config["maxModelLen"] == s["max-model-len"]
    assert config["gpuMemoryUtilization"] == s["gpu-memory-utilization"]
    assert config.get("tensorParallelSize", 1) == s.get("tensor-parallel-size", 1)
    tp, pp = int(s.get("tensor-parallel-size", 1)), int(s.get("pipeline-parallel-size", 1))
    assert spec["requestGPU"] == tp * pp == load_tier(tier).gpu.count
    # Every other rendered setting reaches vLLM through extraArgs, with its value.
    extra = _as_flags(config.get("extraArgs", []))
    for flag, value in s.items():
        if flag in ("model", "host", "port", "max-model-len", "gpu-memory-utilization", "tensor-parallel-size",
                    "max-num-seqs", "dtype") or value is False:
            continue
        assert extra.get(flag) == (True if value is True else str(value)), flag
    assert extra["served-model-name"] == dep.model.name
    # The key is a reference to a Secret, for the engines and the router alike; never a value.
    ref = {"secretName": f"rentstack-{tier}", "secretKey": "VLLM_API_KEY"}
    assert values["servingEngineSpec"]["vllmApiKey"] == ref
    assert values["routerSpec"]["vllmApiKey"] == ref


def test_unknown_keys_finds_a_misspelt_key():
    _, values = _values("4090x1")
    values["servingEngineSpec"]["modelSpec"][0]["vllmConfig"]["maxModelLength"] = 4096
    values["routerSpec"]["routingLogik"] = "session"
    assert unknown_keys(values, SCHEMA) == ["servingEngineSpec.modelSpec[0].vllmConfig.maxModelLength",
                                            "routerSpec.routingLogik"]


def test_schema_rejects_a_wrong_type():
    _, values = _values("4090x1")
    values["servingEngineSpec"]["modelSpec"][0]["replicaCount"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(values)


def test_modelscope_only_model_uses_modelscope_in_the_pod():
    dep = build_deployment(load_tier("4090x1"), "modelscope:Qwen/Qwen3-14B-AWQ",
                           model_config=str(Path(__file__).parents[2] / "stacks/model-configs/qwen3-14b-awq.json"))
    values = helm_values(dep, image=VLLM_GPU_IMAGE)
    spec = values["servingEngineSpec"]["modelSpec"][0]
    assert spec["modelURL"] == "Qwen/Qwen3-14B-AWQ"
    assert {"name": "VLLM_USE_MODELSCOPE", "value": "True"} in spec["env"]


def test_k8s_names():
    assert k8s_name("Qwen3-32B_AWQ.v2") == "qwen3-32b-awq-v2"
    assert len(k8s_name("x" * 100)) == 63


def test_cli_writes_values_and_prints_the_secret_line(tmp_path, capsys):
    out = tmp_path / "values.yaml"
    assert main(["export", "helm", "--tier", "4090x1", "--replicas", "3", "-o", str(out)]) == 0
    values = yaml.safe_load(out.read_text())
    assert values["servingEngineSpec"]["modelSpec"][0]["replicaCount"] == 3
    err = capsys.readouterr().err
    assert "kubectl create secret generic rentstack-4090x1" in err


@pytest.mark.parametrize("argv, field", [
    (["--tier", "cpu"], "tier cpu"),
    (["--tier", "4090x4x2"], "spans 2 hosts"),
    (["--tier", "4090x1", "--replicas", "0"], "--replicas 0"),
    (["--tier", "4090x1", "--routing", "random"], "--routing"),
])
def test_cli_bad_input_is_one_line(argv, field, tmp_path, capsys):
    out = tmp_path / "values.yaml"
    assert main(["export", "helm", *argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0]
    assert not out.exists()
