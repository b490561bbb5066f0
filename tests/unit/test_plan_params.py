"""LaunchParams is the one flag <-> field table: converters, bounds, and who else may not hold a copy."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import pytest

from rentstack.config.vllm_args import known_args
from rentstack.errors import RentstackError
from rentstack.plan import LaunchParams
from rentstack.plan.rules import parse_version, rules_for

REPO = Path(__file__).resolve().parents[2]


def test_every_field_names_a_real_vllm_flag():
    flags = {f.name: f.metadata["knob"].flag for f in fields(LaunchParams)}
    assert flags.pop("vllm_version") == ""  # rentstack's own input
    assert set(flags.values()) <= set(known_args()), set(flags.values()) - set(known_args())


def test_from_flags_accepts_flags_fields_and_aliases_and_drops_the_rest():
    p = LaunchParams.from_flags({"--tensor-parallel-size": 2, "pp": 1, "max_model_len": 4096,
                                 "enforce-eager": "true", "kv-cache-dtype": "fp8", "swap-space": 4,
                                 "served-model-name": "x", "max-num-seqs": None, "vllm-version": "0.19.0"})
    assert (p.tp, p.pp, p.max_model_len, p.enforce_eager, p.kv_cache_dtype) == (2, 1, 4096, True, "fp8")
    assert p.max_num_seqs is None and p.vllm_version == "0.19.0"


def test_to_flags_round_trips_and_quiet_leaves_vllm_defaults_out():
    p = LaunchParams(tp=2, gpu_memory_utilization=0.85, max_model_len=8192, enforce_eager=True, quantization="awq")
    assert LaunchParams.from_flags(p.to_flags()) == p.with_(vllm_version=LaunchParams().vllm_version)
    assert p.to_flags(quiet=True) == {"tensor-parallel-size": 2, "gpu-memory-utilization": 0.85,
                                      "max-model-len": 8192, "quantization": "awq", "enforce-eager": True}
    assert "vllm-version" not in p.to_flags()


@pytest.mark.parametrize("flags,needle", [
    ({"max-model-len": -5}, "max-model-len -5 is outside [1, 16777216]"),
    ({"max-model-len": 0}, "max-model-len 0 is outside"),
    ({"max-model-len": 10**12}, "max-model-len 1000000000000 is outside"),
    ({"max-num-seqs": -1}, "max-num-seqs -1 is outside [1, 65536]"),
    ({"max-num-seqs": 0}, "max-num-seqs 0 is outside"),
    ({"gpu-memory-utilization": float("nan")}, "gpu-memory-utilization nan is outside (0, 1]"),
    ({"cpu-offload-gb": -1}, "cpu-offload-gb -1.0 is outside [0, 4096]"),
    ({"block-size": 24}, "block-size 24 is not one of 1, 8, 16"),
    ({"max-model-len": "abc"}, "max-model-len 'abc' is not a whole number"),
    ({"max-model-len": 1.5}, "max-model-len 1.5 is not a whole number"),
    ({"tp": True}, "tp True is not a whole number"),
    ({"enforce-eager": "maybe"}, "enforce-eager 'maybe' is not true or false"),
])
def test_bad_values_are_one_line_naming_flag_value_bound_and_fix(flags, needle):
    with pytest.raises(RentstackError) as exc:
        LaunchParams.from_flags(flags)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg
    assert "e.g." in msg or "true or false" in msg or "one of them" in msg


def test_lenient_mode_drops_what_does_not_convert():
    assert LaunchParams.flags_to_fields({"max-model-len": "32k", "max-num-seqs": 8}, strict=False) == {"max_num_seqs": 8}


def test_one_version_parser_and_one_default_utilization():
    assert parse_version("0.11.0+582e.nv25.11") == (0, 11, 0) and parse_version("v0.19") == (0, 19, 0)
    assert rules_for("0.32.0").default_gpu_memory_utilization == 0.92  # CacheConfig's default in the package
    assert rules_for("0.20.2").default_gpu_memory_utilization == 0.9
    with pytest.raises(RentstackError, match="vllm_version 'latest'"):
        rules_for("latest")


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_no_import_cycle_between_measured_and_planner_and_plan_reads_no_store():
    plan_dir = REPO / "rentstack" / "plan"
    assert "rentstack.plan.planner" not in _imports(plan_dir / "measured.py")
    for path in [*plan_dir.glob("*.py"), REPO / "rentstack" / "render" / "deployment.py"]:
        mods = _imports(path)
        assert not any("calibration" in m or m.startswith("rentstack.doctor") for m in mods), path
