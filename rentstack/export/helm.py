"""A planned deployment as values for the vLLM production stack's Helm chart (`vllm-stack`).

For users who outgrow rented boxes and move to Kubernetes: the same model, tier settings
and planner choices, expressed in the chart's `servingEngineSpec.modelSpec[]` and
`routerSpec`. Pure: a Deployment in, a dict out. The chart's own values schema is checked
in the tests (tests/data/production-stack/), and `unknown_keys()` lets the caller refuse
keys the chart would silently ignore (its schema allows extra properties).

The chart builds the vLLM command itself (deployment-vllm-multi.yaml): model URL, then
its own flags for the keys in `vllmConfig`, then `vllmConfig.extraArgs` verbatim. So the
settings the chart names go into `vllmConfig`, and every other rendered setting becomes a
`--flag value` pair in `extraArgs`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from rentstack.errors import RentstackError

CHART = "vllm-stack"
"""Helm chart name in vllm-project/production-stack (helm/Chart.yaml)."""

# Rendered vLLM flag -> the chart's vllmConfig key; the chart turns these back into flags.
_CHART_KEYS = {
    "max-model-len": "maxModelLen",
    "dtype": "dtype",
    "tensor-parallel-size": "tensorParallelSize",
    "max-num-seqs": "maxNumSeqs",
    "gpu-memory-utilization": "gpuMemoryUtilization",
}
# Settings the chart sets itself (model URL, --host/--port) or that only make sense in our
# own container layout: never repeated in extraArgs.
_OWNED_BY_CHART = {"model", "host", "port", "api-key", "download-dir"}
_K8S_NAME = re.compile(r"[^a-z0-9-]+")


def k8s_name(text: str) -> str:
    """A DNS-1123 label from a model or tier name (lowercase, digits and '-', ≤ 63)."""
    name = _K8S_NAME.sub("-", text.lower()).strip("-")[:63].strip("-")
    if not name:
        raise RentstackError(f"name {text!r} has no letters or digits to build a Kubernetes name from")
    return name


def _flag_args(flag: str, value: object) -> list[str]:
    if value is True:
        return [f"--{flag}"]
    if value is False or value is None:
        return []
    return [f"--{flag}", str(value)]


def model_url(source_scheme: str, ref: str, hf_id: str | None) -> tuple[str, list[dict[str, str]]]:
    """What `vllm serve` is given, and the env it needs: HF id, or ModelScope via VLLM_USE_MODELSCOPE."""
    if source_scheme == "hf":
        return ref, []
    if hf_id:
        return hf_id, []
    if source_scheme == "modelscope":
        return ref, [{"name": "VLLM_USE_MODELSCOPE", "value": "True"}]
    raise RentstackError(f"model source {source_scheme}:{ref} is not on a hub a cluster can pull from: "
                         "use a catalog model, or hf:ORG/NAME / modelscope:ORG/NAME")


def helm_values(dep: Any, *, image: str, replicas: int = 1, secret_name: str | None = None,
                routing: str = "session") -> dict[str, Any]:
    """Values for `helm install -f values.yaml vllm vllm/vllm-stack` from a planned Deployment."""
    tier, model, settings = dep.tier, dep.model, dep.settings
    if tier.accelerator != "gpu":
        raise RentstackError(f"tier {tier.name} runs on the CPU with a locally built image; "
                             "export helm is for GPU tiers (e.g. --tier 4090x1)")
    if tier.hosts > 1:
        raise RentstackError(f"tier {tier.name} spans {tier.hosts} hosts on Ray; export helm writes single-pod "
                             "engines: export a one-host tier (e.g. --tier 4090x4) and scale with --replicas")
    if not 1 <= replicas <= 64:
        raise RentstackError(f"--replicas {replicas} is out of range: use 1-64")
    if routing not in ("session", "roundrobin", "prefixaware"):
        raise RentstackError(f"--routing {routing!r} is unknown: use session, roundrobin or prefixaware")
    repository, _, tag = image.rpartition(":")
    url, env = model_url(model.source.scheme, model.source.ref, model.hf_id)
    env += [{"name": k, "value": str(v)} for k, v in sorted(tier.env.items())]

    vllm_config: dict[str, Any] = {"enablePrefixCaching": True}   # the chart writes --no-… when absent
    extra: list[str] = []
    for flag, value in settings.items():
        if flag in _OWNED_BY_CHART:
            continue
        if flag in _CHART_KEYS:
            vllm_config[_CHART_KEYS[flag]] = value
        else:
            extra += _flag_args(flag, value)
    if extra:
        vllm_config["extraArgs"] = extra

    gpus = int(settings.get("tensor-parallel-size", 1)) * int(settings.get("pipeline-parallel-size", 1))
    offload = float(settings.get("cpu-offload-gb", 0) or 0)
    # Host RAM: weights pass through it while loading, plus what is offloaded per GPU.
    ram_gib = math.ceil(model.weights_gib + offload * gpus + 8)
    name = k8s_name(model.name)
    spec: dict[str, Any] = {
        "name": name,
        "repository": repository,
        "tag": tag,
        "modelURL": url,
        "replicaCount": replicas,
        "requestCPU": max(4, 4 * gpus),
        "requestMemory": f"{ram_gib}Gi",
        "requestGPU": gpus,
        "pvcStorage": f"{math.ceil(model.weights_gib * 1.2 + 5)}Gi",
        "shmSize": "20Gi" if gpus > 1 else "2Gi",
        "vllmConfig": vllm_config,
    }
    if env:
        spec["env"] = env
    engine: dict[str, Any] = {"runtimeClassName": "nvidia", "modelSpec": [spec]}
    if dep.require_api_key:
        # A reference only: the key itself never goes into values (see the printed kubectl line).
        engine["vllmApiKey"] = {"secretName": secret_name or k8s_name(f"rentstack-{tier.name}"),
                                "secretKey": "VLLM_API_KEY"}
    router: dict[str, Any] = {"enableRouter": True, "routingLogic": routing}
    if "vllmApiKey" in engine:
        router["vllmApiKey"] = dict(engine["vllmApiKey"])   # the router calls the engines with it
    if routing == "session":
        router["sessionKey"] = "x-user-id"
    return {"servingEngineSpec": engine, "routerSpec": router}


def unknown_keys(values: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Keys in `values` the schema does not declare (the chart would ignore them silently)."""
    found: list[str] = []
    if isinstance(values, dict):
        props = schema.get("properties")
        if props is None:                     # a free-form object (labels, resources, …)
            return found
        for key, value in values.items():
            where = f"{path}.{key}" if path else key
            if key not in props:
                found.append(where)
            else:
                found += unknown_keys(value, props[key], where)
    elif isinstance(values, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(values):
            found += unknown_keys(item, schema["items"], f"{path}[{i}]")
    return found
