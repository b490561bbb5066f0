"""Tier and catalog validation: every shipped file loads; bad input is one clear line."""

from __future__ import annotations

import pytest
import yaml

from rentstack.errors import RentstackError
from rentstack.config import custom_tier, list_tiers, load_catalog, load_tier, parse_size_gib, parse_source, resolve_model
from rentstack.config.vllm_args import known_args, parse_set

SHIPPED = ["3080x2", "4090x1", "4090x4", "4090x4x2", "7gb", "cpu"]


def test_shipped_tiers_load_with_their_cards():
    assert list_tiers() == SHIPPED
    cards = {name: (load_tier(name).gpu.count, load_tier(name).gpu.memory_gib) for name in SHIPPED}
    assert cards == {"3080x2": (2, 19.7), "4090x1": (1, 23.64), "4090x4": (4, 23.64), "4090x4x2": (4, 23.64), "7gb": (1, 32.0), "cpu": (0, 0.0)}
    assert load_tier("3080x2").gpu.p2p is False
    assert load_tier("3080x2").vllm["tensor-parallel-size"] == 2
    assert load_tier("4090x4").vllm["tensor-parallel-size"] == 4


def test_every_tier_default_model_is_in_the_catalog():
    catalog = load_catalog()
    for name in SHIPPED:
        tier = load_tier(name)
        assert tier.model in catalog
        for preset in tier.presets.values():
            assert preset.model is None or preset.model in catalog


def test_seed_presets_carry_the_seed_numbers():
    seed = load_tier("7gb").with_preset("seed")
    assert seed.model == "deepseek-r1-distill-llama-70b"
    assert seed.vllm["gpu-memory-utilization"] == 0.25
    assert seed.vllm["cpu-offload-gb"] == 60
    assert seed.vllm["max-model-len"] == 512
    assert seed.vllm["quantization"] == "bitsandbytes"
    big = load_tier("7gb").with_preset("seed-32gb")
    assert (big.vllm["gpu-memory-utilization"], big.vllm["max-num-seqs"], big.vllm["block-size"]) == (0.9, 256, 32)
    assert big.gpu.free_gib == 32
    pair = load_tier("3080x2").with_preset("seed")
    assert (pair.vllm["gpu-memory-utilization"], pair.vllm["cpu-offload-gb"], pair.vllm["max-model-len"]) == (0.5, 5, 4096)


def test_unknown_tier_lists_the_tiers():
    with pytest.raises(RentstackError) as err:
        load_tier("4090x2")
    assert "unknown tier '4090x2'" in str(err.value)
    assert "3080x2, 4090x1, 4090x4, 4090x4x2, 7gb, cpu" in str(err.value)


def test_unknown_preset_lists_presets():
    with pytest.raises(RentstackError, match=r"unknown preset for tier 7gb 'sed'.*did you mean 'seed'"):
        load_tier("7gb").with_preset("sed")


def _write_tier(tmp_path, name, data):
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "models.yaml").write_text("models: {}\n")
    return tmp_path


BASE = {"name": "t1", "description": "test", "model": "qwen3-8b",
        "gpu": {"count": 1, "memory_gib": 24}}


@pytest.mark.parametrize(("patch", "message"), [
    ({"gpus": {"count": 1}}, r"unknown key 'gpus' \(did you mean 'gpu'\?\)"),
    ({"gpu": {"count": 1, "memory_gb": 24}}, r"unknown key 'gpu.memory_gb' \(did you mean 'memory_gib'\?\)"),
    ({"gpu": {"count": 1, "memory_gib": -3}}, r"gpu.memory_gib = -3: Input should be greater than or equal to 0"),
    ({"gpu": {"count": 1, "memory_gib": 24, "free_gib": 30}}, r"free_gib 30.0 exceeds memory_gib 24.0"),
    ({"vllm": {"gpu-memory-utilisation": 0.5}}, r"unknown vLLM setting 'gpu-memory-utilisation' \(did you mean 'gpu-memory-utilization'\?\)"),
    ({"vllm": {"max_model_len": 4096}}, r"unknown vLLM setting 'max_model_len'.*use vLLM's long flag names"),
    ({"vllm": {"enforce-eager": "yes"}}, r"enforce-eager = 'yes' must be a bool"),
    ({"vllm": {"api-key": "x"}}, r"'api-key' cannot be set here: the API key lives in the 0600 env file"),
    ({"vllm": {"dtype": "bf16"}}, r"dtype = 'bf16'.*choose one of: auto, bfloat16"),
    ({"accelerator": "tpu"}, r"accelerator = 'tpu': Input should be 'gpu' or 'cpu'"),
])
def test_bad_stack_file_is_one_line_naming_the_field(tmp_path, patch, message):
    stacks = _write_tier(tmp_path, "t1", {**BASE, **patch})
    with pytest.raises(RentstackError, match=message) as err:
        load_tier("t1", stacks)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("stacks/t1.yaml")


def test_tier_name_must_match_file(tmp_path):
    stacks = _write_tier(tmp_path, "t2", BASE)
    with pytest.raises(RentstackError, match="name 't1' must match the file name 't2'"):
        load_tier("t2", stacks)


def test_custom_card_by_size():
    tier = custom_tier(2, parse_size_gib("24GiB"))
    assert (tier.gpu.count, tier.gpu.memory_gib, tier.gpu.p2p) == (2, 24.0, False)
    assert tier.vllm == {"tensor-parallel-size": 2}
    assert parse_size_gib("80G") == 80.0
    with pytest.raises(RentstackError, match="--gpu-mem 'lots' is not a size"):
        parse_size_gib("lots")
    with pytest.raises(RentstackError, match="out of range"):
        parse_size_gib("0GiB")


def test_sources():
    assert str(parse_source("modelscope:Qwen/Qwen3-8B")) == "modelscope:Qwen/Qwen3-8B"
    assert parse_source("hf:Qwen/Qwen3-8B").dirname == "qwen3-8b"
    assert parse_source("local:/data/my-model").dirname == "my-model"
    with pytest.raises(RentstackError, match="has no source: write modelscope:Qwen/Qwen3-8B, hf:Qwen/Qwen3-8B"):
        parse_source("Qwen/Qwen3-8B")
    with pytest.raises(RentstackError, match=r"model source 'hg'.*did you mean 'hf'"):
        parse_source("hg:Qwen/Qwen3-8B")
    with pytest.raises(RentstackError, match="as ORG/NAME"):
        parse_source("modelscope:Qwen3-8B")
    with pytest.raises(RentstackError, match=r"unknown model 'qwen3-8'.*did you mean"):
        resolve_model("qwen3-8")


def test_catalog_has_seed_models_with_configs():
    catalog = load_catalog()
    for name in ("deepseek-r1-distill-llama-70b", "qwen3-8b", "qwen3-14b-awq", "qwen3-32b-awq", "smollm2-135m"):
        assert catalog[name].config_path.is_file(), name
    assert catalog["qwen3-14b-awq"].quantization == "awq"
    assert catalog["qwen3-8b"].source.scheme == "modelscope"
    assert catalog["smollm2-135m"].source.scheme == "builtin"


def test_set_is_typed_like_vllm_declares_it():
    assert parse_set("max-model-len=4_096") == ("max-model-len", 4096)
    assert parse_set("gpu-memory-utilization=0.85") == ("gpu-memory-utilization", 0.85)
    assert parse_set("enforce-eager=true") == ("enforce-eager", True)
    assert parse_set("kv-cache-dtype=fp8") == ("kv-cache-dtype", "fp8")
    with pytest.raises(RentstackError, match="write it as key=value"):
        parse_set("max-model-len")
    with pytest.raises(RentstackError, match="max-num-seqs takes a whole number"):
        parse_set("max-num-seqs=many")
    # Known to older releases a host may get (0.8.5-0.13): typed here, checked against the
    # chosen release at render time.
    assert parse_set("swap-space=4") == ("swap-space", 4)
    with pytest.raises(RentstackError, match=r"unknown vLLM setting.*did you mean 'swap-space'"):
        parse_set("swap-spce=4")
    with pytest.raises(RentstackError, match=r"kv-cache-dtype = 'fp9'.*did you mean 'fp8'"):
        parse_set("kv-cache-dtype=fp9")


def test_vllm_argument_list_is_vllms_own():
    args = known_args()
    assert len(args) > 200
    assert args["enforce-eager"]["kind"] == "bool"
    assert args["gpu-memory-utilization"]["kind"] == "float"
    assert "swap-space" not in args


def test_settings_follow_the_release_a_host_runs():
    from rentstack.config.vllm_args import for_release, lines

    assert {"0.8.5", "0.9.2", "0.10.1.1", "0.10.2", "0.11.0", "0.13.0", "0.32.0"} <= set(lines())
    kept, notes = for_release({"swap-space": 4, "max-model-len": 4096}, "0.11.0")
    assert kept == {"swap-space": 4, "max-model-len": 4096} and notes == []
    dropped, notes = for_release({"swap-space": 4, "max-model-len": 4096}, "0.32.0")
    assert dropped == {"max-model-len": 4096} and notes[0].startswith("dropped swap-space: 4 from the stack file")
    renamed, notes = for_release({"disable-log-requests": True, "cuda-graph-sizes": [1, 2, 4]}, "0.32.0")
    assert renamed == {"enable-log-requests": False, "cudagraph-capture-sizes": [1, 2, 4]}
    back, _ = for_release({"cudagraph-capture-sizes": [8]}, "0.11.0")
    assert back == {"cuda-graph-sizes": [8]}
    with pytest.raises(RentstackError, match=r"--set: 'swap-space' is not a vLLM 0.32.0 setting"):
        for_release({"swap-space": 4}, "0.32.0", requested={"swap-space"})
