"""Bad input gives one actionable line (RentstackError), naming the field, the value and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rentstack.errors import RentstackError
from rentstack.plan import Hardware, LaunchParams, load_arch, plan

REPO = Path(__file__).resolve().parents[2]
QWEN3_8B = REPO / "stacks" / "model-configs" / "qwen3-8b.json"


def cfg(**changes):
    c = json.loads(QWEN3_8B.read_text())
    c.update(changes)
    return {k: v for k, v in c.items() if v is not None}


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("field", ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
                                   "max_position_embeddings"])
def test_missing_field_is_named(field):
    c = cfg()
    del c[field]
    with pytest.raises(RentstackError) as exc:
        load_arch(c)
    assert repr(field) in one_line(exc)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(RentstackError) as exc:
        load_arch(tmp_path / "nope.json")
    assert "does not exist" in one_line(exc)
    (tmp_path / "config.json").write_text(QWEN3_8B.read_text())
    assert load_arch(tmp_path).num_layers == 36  # a model directory reads its config.json


def test_invalid_json(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(RentstackError) as exc:
        load_arch(bad)
    assert "not valid JSON" in one_line(exc)


def test_unknown_architecture_refused_unless_asked():
    c = cfg(architectures=["MambaForCausalLM"])
    with pytest.raises(RentstackError) as exc:
        load_arch(c)
    msg = one_line(exc)
    assert "MambaForCausalLM" in msg and "not modelled" in msg and "--assume-dense" in msg
    arch = load_arch(c, allow_unknown=True)
    assert arch.family == "fallback"
    known = plan(load_arch(cfg()), Hardware(80), LaunchParams(max_model_len=4096))
    guessed = plan(arch, Hardware(80), LaunchParams(max_model_len=4096))
    assert guessed.weights_gib == pytest.approx(known.weights_gib * 1.15, rel=0.001)  # the stated +15%
    assert any("not modelled" in w for w in guessed.warnings)


def test_tp_must_divide_heads():
    with pytest.raises(RentstackError) as exc:
        plan(load_arch(cfg()), Hardware(24, gpus=3), LaunchParams(tp=3))
    msg = one_line(exc)
    assert "tp 3" in msg and "32 attention heads" in msg and "use a tp among" in msg


@pytest.mark.parametrize("util", [0.0, -0.1, 1.01, 2])
def test_utilization_outside_range(util):
    with pytest.raises(RentstackError) as exc:
        plan(load_arch(cfg()), Hardware(24), LaunchParams(gpu_memory_utilization=util))
    msg = one_line(exc)
    assert f"gpu_memory_utilization {float(util)}" in msg and "(0, 1]" in msg


def test_max_model_len_above_limit_needs_override():
    arch = load_arch(cfg())
    with pytest.raises(RentstackError) as exc:
        plan(arch, Hardware(80), LaunchParams(max_model_len=65536))
    msg = one_line(exc)
    assert "max_model_len 65536" in msg and "40960" in msg and "VLLM_ALLOW_LONG_MAX_MODEL_LEN" in msg
    pl = plan(arch, Hardware(80, name="H100"), LaunchParams(max_model_len=65536), allow_long_max_model_len=True)
    assert pl.resolved.max_model_len == 65536 and pl.fits


def test_more_ranks_than_cards():
    with pytest.raises(RentstackError) as exc:
        plan(load_arch(cfg()), Hardware(24, gpus=1), LaunchParams(tp=2))
    assert "needs 2 GPUs" in one_line(exc)


@pytest.mark.parametrize("kw,needle", [
    ({"kv_cache_dtype": "int3"}, "kv_cache_dtype"),
    ({"block_size": 24}, "block_size 24"),
    ({"quantization": "magic"}, "quantization 'magic'"),
    ({"dtype": "int8"}, "dtype 'int8'"),
    ({"cpu_offload_gb": -1}, "cpu_offload_gb"),
    ({"vllm_version": "latest"}, "vllm_version 'latest'"),
])
def test_other_bad_flags(kw, needle):
    with pytest.raises(RentstackError) as exc:
        plan(load_arch(cfg()), Hardware(24), LaunchParams(**kw))
    assert needle in one_line(exc)
