"""Hostile input on the planner side (issue 8, items 7 and 8): out-of-range vLLM values on every
tier, malformed config.json files and nonsense card sizes each end in exit 2 and one line that
names the field — never "internal error", a traceback, a hang, or a plan that "fits"."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import pytest

from rentstack.cli import main
from rentstack.errors import RentstackError
from rentstack.plan import Hardware, LaunchParams, load_arch, plan

REPO = Path(__file__).resolve().parents[2]
QWEN3_8B = json.loads((REPO / "stacks" / "model-configs" / "qwen3-8b.json").read_text())


@pytest.fixture(autouse=True)
def _no_hang():
    """A case that loops (10^30 layers did) fails after 10 s instead of stalling the suite."""
    def stop(*_):
        raise TimeoutError("hung")
    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "internal error" not in err and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


# --- item 7: every numeric vLLM value checked on every tier, the CPU tier included --------------
@pytest.mark.parametrize("tier", ["cpu", "4090x1"])
@pytest.mark.parametrize("setting,needle", [
    ("max-model-len=-5", "max-model-len -5 is outside [1, 16777216]"),
    ("max-model-len=0", "max-model-len 0 is outside [1, 16777216]"),
    ("max-model-len=1000000000000", "max-model-len 1000000000000 is outside [1, 16777216]"),
    ("max-num-seqs=-1", "max-num-seqs -1 is outside [1, 65536]"),
    ("max-num-seqs=0", "max-num-seqs 0 is outside [1, 65536]"),
    ("max-num-batched-tokens=0", "max-num-batched-tokens 0 is outside"),
    ("gpu-memory-utilization=-0.08", "gpu-memory-utilization -0.08 is outside (0, 1]"),
    ("cpu-offload-gb=-1", "cpu-offload-gb -1.0 is outside [0, 4096]"),
])
def test_out_of_range_vllm_values_are_refused_on_every_tier(tier, setting, needle, capsys, tmp_path):
    code, _, err = _cli(capsys, "render", "--tier", tier, "--set", setting, "--state-dir", str(tmp_path))
    _one_line_error(code, err, needle, "e.g.")
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_cpu_tier_context_is_bounded_by_the_model(capsys, tmp_path):
    code, _, err = _cli(capsys, "render", "--tier", "cpu", "--set", "max-model-len=100000", "--state-dir", str(tmp_path))
    _one_line_error(code, err, "max-model-len 100000 is above the model's limit 8192", "set max-model-len to 8192")


def test_cpu_tier_kv_space_is_bounded(capsys, tmp_path):
    code, _, err = _cli(capsys, "render", "--tier", "cpu", "--set", "max-num-seqs=65536", "--set", "max-model-len=8192",
                        "--state-dir", str(tmp_path))
    _one_line_error(code, err, "max-num-seqs 65536 x max-model-len 8192", "at most 1024 GiB", "lower max-num-seqs")


def test_cpu_tier_in_range_values_still_render(capsys, tmp_path):
    code, out, err = _cli(capsys, "render", "--tier", "cpu", "--set", "max-num-seqs=8", "--state-dir", str(tmp_path))
    assert code == 0, err
    env = (tmp_path / "cpu" / "compose.env").read_text()
    kv = int(next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("RENTSTACK_CPU_KV_GIB=")))
    assert 1 <= kv <= 4


# --- item 8: malformed config.json ------------------------------------------------------------
MALFORMED = [
    ({"hidden_size": "abc"}, 'field hidden_size is "abc"'),
    ({"hidden_size": "4096"}, 'field hidden_size is "4096"'),
    ({"num_hidden_layers": 36.5}, "field num_hidden_layers is 36.5"),
    ({"hidden_size": math.nan}, "field hidden_size is NaN"),
    ({"vocab_size": math.inf}, "field vocab_size is Infinity"),
    ({"num_attention_heads": 0}, "field num_attention_heads is 0"),
    ({"num_hidden_layers": 10**30}, "field num_hidden_layers is 1000000000000000000000000000000"),
    ({"hidden_size": -4096}, "field hidden_size is -4096"),
    ({"vocab_size": -5}, "field vocab_size is -5"),
    ({"intermediate_size": -12288}, "field intermediate_size is -12288"),
    ({"max_position_embeddings": -1}, "field max_position_embeddings is -1"),
    ({"hidden_size": True}, "field hidden_size is true"),
    ({"head_dim": "x"}, 'field head_dim is "x"'),
    ({"text_config": [1]}, "field text_config is [1]"),
    ({"text_config": {"num_attention_heads": "x"}}, 'field text_config.num_attention_heads is "x"'),
    ({"rope_scaling": [1]}, "field rope_scaling is [1]"),
    ({"quantization_config": [1]}, "field quantization_config is [1]"),
    ({"quantization_config": {"quant_method": "awq", "bits": "x"}}, 'field quantization_config.bits is "x"'),
    ({"architectures": "Qwen3ForCausalLM"}, 'field architectures is "Qwen3ForCausalLM"'),
    ({"layer_types": [1, 2]}, "field layer_types is [1, 2]"),
    ({"torch_dtype": [1]}, "field torch_dtype is [1]"),
    ({"rope_scaling": {"rope_type": "yarn", "original_max_position_embeddings": 4096, "factor": math.nan}},
     "field rope_scaling.factor is NaN"),
    ({"vision_config": {"hidden_size": "x", "depth": 3}}, 'field vision_config.hidden_size is "x"'),
]


@pytest.mark.parametrize("change,needle", MALFORMED, ids=[n.split(" is ")[0].split()[-1] + str(i) for i, (_, n) in enumerate(MALFORMED)])
def test_malformed_config_names_the_field(change, needle, capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**QWEN3_8B, **change}))  # NaN/Infinity are written as JSON allows them
    code, _, err = _cli(capsys, "plan", "--model-config", str(path), "--gpu-mem-gib", "24")
    _one_line_error(code, err, needle, "config.json")


def test_a_list_instead_of_an_object(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    code, _, err = _cli(capsys, "plan", "--model-config", str(path), "--gpu-mem-gib", "24")
    _one_line_error(code, err, "holds a JSON list, not an object of fields")


def test_malformed_config_in_render_names_the_field(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**QWEN3_8B, "num_attention_heads": 0}))
    code, _, err = _cli(capsys, "render", "--tier", "4090x1", "--model-config", str(path),
                        "--state-dir", str(tmp_path / "out"))
    _one_line_error(code, err, "field num_attention_heads is 0")
    assert not (tmp_path / "out").exists()


# --- sizes: never "fits" with a negative or zero size -------------------------------------------
@pytest.mark.parametrize("argv,needle", [
    (["--gpu-mem-gib", "24", "--free-gib", "-2"], "--free-gib -2.0 must be > 0"),
    (["--gpu-mem-gib", "24", "--free-gib", "0"], "--free-gib 0.0 must be > 0"),
    (["--gpu-mem-gib", "24", "--free-gib", "30"], "≤ the card's 24 GiB"),
    (["--gpu-mem-gib", "-24"], "--gpu-mem-gib -24.0 must be > 0"),
    (["--gpu-mem-gib", "nan"], "--gpu-mem-gib nan must be > 0"),
    (["--gpu-mem-gib", "24", "--gpus", "-1"], "--gpus -1 must be a whole number from 1 to 64"),
    (["--tier", "4090x1", "--free-gib", "-2"], "--free-gib -2.0 must be > 0"),
    (["--gpu-mem-gib", "24", "--max-model-len", "-5"], "max-model-len -5 is outside [1, 16777216]"),
    (["--gpu-mem-gib", "24", "--cpu-offload-gb", "-4"], "cpu-offload-gb -4.0 is outside [0, 4096]"),
    (["--gpu-mem-gib", "24", "--max-model-len", "abc"], "max-model-len 'abc' is not a whole number"),
    (["--gpu-mem-gib", "24", "--tp", "two"], "tp 'two' is not a whole number"),
])
def test_plan_refuses_nonsense_sizes(argv, needle, capsys):
    for extra in ([], ["--fit"]):
        code, out, err = _cli(capsys, "plan", "--model", "qwen3-8b", *argv, *extra)
        _one_line_error(code, err, needle)
        assert "fits" not in out


def test_negative_sizes_never_plan_as_fits():
    arch = load_arch(QWEN3_8B)
    for hw, params in [(Hardware(-24), LaunchParams()), (Hardware(24, free_mem_gib=-2), LaunchParams()),
                       (Hardware(24), LaunchParams(cpu_offload_gb=-100)), (Hardware(24), LaunchParams(max_model_len=-1))]:
        with pytest.raises(RentstackError):
            plan(arch, hw, params)
