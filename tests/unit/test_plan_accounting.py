"""The accounting mechanisms, each pinned to a value worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rentstack.plan import Hardware, LaunchParams, kv_bytes_per_token, load_arch, plan
from rentstack.plan.rules import rules_for
from rentstack.plan.weights import pp_layer_split

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "stacks" / "model-configs"
QWEN3_CFG = json.loads((CONFIGS / "qwen3-8b.json").read_text())
QWEN3_8B = load_arch(QWEN3_CFG)
SMOL = load_arch(CONFIGS / "smollm2-135m.json")


def test_kv_bytes_gqa_and_replicated_heads():
    # Qwen3-8B: 36 layers × 2 × 8 KV heads × 128 × 2 B
    assert kv_bytes_per_token(QWEN3_8B) == 147456
    assert kv_bytes_per_token(QWEN3_8B, LaunchParams(tp=2)) == 73728
    assert kv_bytes_per_token(QWEN3_8B, LaunchParams(tp=8)) == 18432
    # SmolLM2: 3 KV heads; with tp 3... heads 9 so tp must divide 9: at tp 9 each rank keeps one replicated head
    assert kv_bytes_per_token(SMOL) == 30 * 2 * 3 * 64 * 2
    assert kv_bytes_per_token(SMOL, LaunchParams(tp=9)) == 30 * 2 * 1 * 64 * 2


def test_fp8_kv_doubles_tokens_same_gib():
    hw = Hardware(79.19, name="H100")
    a = plan(QWEN3_8B, hw, LaunchParams(max_model_len=8192))
    b = plan(QWEN3_8B, hw, LaunchParams(max_model_len=8192, kv_cache_dtype="fp8"))
    assert b.available_kv_gib == pytest.approx(a.available_kv_gib)
    assert b.kv_cache_tokens == pytest.approx(2 * a.kv_cache_tokens, rel=0.001)


def test_pp_split_gives_extra_layers_to_the_stages_before_the_last():
    assert pp_layer_split(40, 2) == [20, 20]
    assert pp_layer_split(30, 4) == [7, 8, 8, 7]
    pl = plan(QWEN3_8B, Hardware(24, gpus=2), LaunchParams(pp=2, max_model_len=8192))
    assert [g["layers"] for g in pl.per_gpu] == [18, 18]
    assert pl.kv_bytes_per_token == 18 * 2 * 8 * 128 * 2


def test_batch_defaults_by_card_and_version():
    r = rules_for("0.32.0")
    assert r.batch_defaults(79.19) == (8192, 1024)
    assert r.batch_defaults(79.15, small_batch_card=True) == (2048, 256)  # A100 excluded (vLLM PR 17885)
    assert r.batch_defaults(23.64) == (2048, 256)
    assert r.batch_defaults(178.0) == (16384, 1024)  # ≥160 GiB tier in 0.32
    assert rules_for("0.19.0").batch_defaults(178.0) == (8192, 1024)


def test_cuda_graphs_budgeted_from_0_20():
    hw = Hardware(79.19, name="H100")
    old = plan(QWEN3_8B, hw, LaunchParams(max_model_len=8192, vllm_version="0.19.0"))
    new = plan(QWEN3_8B, hw, LaunchParams(max_model_len=8192, vllm_version="0.20.0"))
    assert not old.cuda_graphs_budgeted and new.cuda_graphs_budgeted
    assert old.available_kv_gib - new.available_kv_gib == pytest.approx(new.cuda_graph_gib, abs=0.01)
    eager = plan(QWEN3_8B, hw, LaunchParams(max_model_len=8192, vllm_version="0.20.0", enforce_eager=True))
    assert eager.cuda_graph_gib == 0 and eager.available_kv_gib > new.available_kv_gib


def test_sampler_peak_by_version():
    # 1024 dummy requests × 151936 vocab: ~38 B each up to 0.16, ~14.4 B from 0.17 (logged 5.64 → 2.23 GiB)
    hw = Hardware(79.19, name="H100")
    a16 = plan(QWEN3_8B, hw, LaunchParams(max_model_len=8192, vllm_version="0.16.0")).activation_gib
    a17 = plan(QWEN3_8B, hw, LaunchParams(max_model_len=8192, vllm_version="0.17.0")).activation_gib
    assert a16 == pytest.approx(1024 * 151936 * 38 / 2**30 + 2 * 8192 * 4096 * 2 / 2**30, rel=0.01)
    assert a17 == pytest.approx(1024 * 151936 * 14.4 / 2**30 + 2 * 8192 * 4096 * 2 / 2**30, rel=0.01)


def test_nvlink_ranks_pay_for_all_reduce_buffers():
    pcie = plan(QWEN3_8B, Hardware(79.19, gpus=2, name="L40S"), LaunchParams(tp=2, max_model_len=8192))
    nvl = plan(QWEN3_8B, Hardware(79.19, gpus=2, name="H100"), LaunchParams(tp=2, max_model_len=8192))
    assert pcie.non_torch_gib == pytest.approx(0.33)  # 0.25 + NCCL over PCIe 0.08 (L40S TP4, record #26)
    assert nvl.non_torch_gib == pytest.approx(2.10)


def test_free_memory_check():
    pl = plan(QWEN3_8B, Hardware(24, free_mem_gib=15.0), LaunchParams(max_model_len=4096))
    assert not pl.fits and pl.verdict == "free_memory"
    assert "Free memory on device (15.00/24.00 GiB)" in pl.error
    assert "0.62" in pl.fix  # 15 / 24 rounded down
    # ≤0.9.0 has no such check, but other processes' memory counts against utilization
    old = plan(QWEN3_8B, Hardware(24, free_mem_gib=15.0), LaunchParams(max_model_len=4096, vllm_version="0.9.0"))
    assert old.verdict != "free_memory"


def test_no_memory_for_cache_blocks():
    pl = plan(QWEN3_8B, Hardware(16), LaunchParams(max_model_len=4096))
    assert not pl.fits and pl.verdict == "no_kv_memory"
    assert pl.error.startswith("No available memory for the cache blocks")
    assert pl.kv_cache_tokens == 0 and pl.fix


def test_cpu_offload_moves_decoder_weights_only():
    base = plan(QWEN3_8B, Hardware(24), LaunchParams(max_model_len=4096))
    off = plan(QWEN3_8B, Hardware(24), LaunchParams(max_model_len=4096, cpu_offload_gb=4))
    assert base.weights_gib - off.weights_gib == pytest.approx(4.0)
    assert off.cpu_offload_host_gib == pytest.approx(4.0)
    huge = plan(QWEN3_8B, Hardware(24), LaunchParams(max_model_len=4096, cpu_offload_gb=100))
    assert huge.weights_gib == pytest.approx(2 * 151936 * 4096 * 2 / 2**30, rel=0.01)  # embed + head stay


def test_sliding_window_hybrid_groups():
    # gpt-oss-20b (0.19 log): 12 sliding + 12 full layers share one block pool in groups of 12;
    # 59.32 GiB → 323,972 blocks of 16 → 2,591,776 tokens (blocks // 2 groups × 16).
    arch = load_arch({"architectures": ["GptOssForCausalLM"], "hidden_size": 2880, "intermediate_size": 2880,
                      "num_hidden_layers": 24, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64,
                      "vocab_size": 201088, "max_position_embeddings": 131072, "num_local_experts": 32,
                      "num_experts_per_tok": 4, "sliding_window": 128, "quantization_config": {"quant_method": "mxfp4"}})
    assert arch.layer_types.count("sliding") == 12
    pl = plan(arch, Hardware(79.19, gpus=2, free_mem_gib=77.18, name="H100"),
              LaunchParams(tp=2, gpu_memory_utilization=0.9, max_model_len=8192, vllm_version="0.19.0"))
    assert pl.kv_cache_tokens == pytest.approx(2591776, rel=0.005)
    assert pl.weights_gib == pytest.approx(7.01, rel=0.02)


SCOUT = {"architectures": ["Llama4ForConditionalGeneration"], "text_config": {
    "hidden_size": 5120, "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8,
    "head_dim": 128, "vocab_size": 202048, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
    "num_local_experts": 16, "num_experts_per_tok": 1, "interleave_moe_layer_step": 1,
    "attention_chunk_size": 8192, "no_rope_layer_interval": 4, "max_position_embeddings": 10485760}}


def test_rope_cache_counts_in_the_weights_on_every_rank():
    # Llama 4 Scout on 4× H100 (0.19 log, shared record #79): "Model loading took 53.12 GiB" per
    # rank; the linear layers and embeddings are 50.6 GiB of that, the rest is RoPE's cos/sin
    # table for 10,485,760 positions × 128 dims in bf16 = 2.5 GiB, the same on every rank.
    from rentstack.plan.weights import rope_cache_bytes, stage_weights

    arch = load_arch(SCOUT)
    assert rope_cache_bytes(arch, 2) == 10485760 * 128 * 2
    per_rank = stage_weights(arch, 4, 1, None, "auto")[0].total_bytes / 2**30
    assert per_rank == pytest.approx(53.12 - 0.9e9 * 2 / 4 / 2**30, abs=0.05)  # record #79 minus its vision tower
    # not sharded by TP and repeated on each pipeline stage
    two_stages = stage_weights(arch, 4, 2, None, "auto")
    assert all(s.embed_bytes >= 10485760 * 128 * 2 for s in two_stages)
    # partial rotary (Phi-2, GLM-4) sizes the table by the rotated dims only; MLA by its rope dims
    part = load_arch({**QWEN3_CFG, "partial_rotary_factor": 0.5})
    assert rope_cache_bytes(part, 2) == QWEN3_CFG["max_position_embeddings"] * 64 * 2


GPT_OSS_120B = {"architectures": ["GptOssForCausalLM"], "hidden_size": 2880, "intermediate_size": 2880,
                "num_hidden_layers": 36, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64,
                "vocab_size": 201088, "max_position_embeddings": 131072, "num_local_experts": 128,
                "num_experts_per_tok": 4, "sliding_window": 128, "quantization_config": {"quant_method": "mxfp4"}}


def test_mxfp4_expert_padding_follows_the_release():
    # gpt-oss-120b on one H100: 0.11 logged "Model loading took 64.38 GiB" (shared record #9),
    # the per-rank expert width 2880 kept (a multiple of 64); from 0.12 the planner assumes the
    # 128-wide pad (2944), 1.3 GiB more.
    arch = load_arch(GPT_OSS_120B)
    hw = Hardware(79.18, name="H100")
    old = plan(arch, hw, LaunchParams(max_model_len=16000, vllm_version="0.11.0"))
    new = plan(arch, hw, LaunchParams(max_model_len=16000, vllm_version="0.19.0"))
    assert rules_for("0.11.0").mxfp4_expert_pad == 64 and rules_for("0.12.0").mxfp4_expert_pad == 128
    assert old.weights_gib == pytest.approx(64.38, abs=0.15)
    assert new.weights_gib - old.weights_gib == pytest.approx(36 * 128 * 3 * 3072 * 64 * (0.5 + 1 / 32) / 2**30,
                                                              rel=0.01)


def test_a_vision_tower_warns_that_its_profile_run_is_not_modelled():
    vl = load_arch({**SCOUT, "vision_config": {"hidden_size": 1408, "num_hidden_layers": 34,
                                               "intermediate_size": 5632}})
    assert vl.extra_params > 0
    hw = Hardware(79.19, gpus=4, name="H100")
    warned = plan(vl, hw, LaunchParams(tp=4, max_model_len=8192)).warnings
    assert any("vision encoder's profile run is not modelled" in w and "--limit-mm-per-prompt" in w for w in warned)
    assert not any("vision encoder" in w for w in plan(load_arch(SCOUT), hw, LaunchParams(tp=4, max_model_len=8192)).warnings)


QWEN25_7B = {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 3584, "intermediate_size": 18944,
             "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
             "max_position_embeddings": 32768, "torch_dtype": "bfloat16"}


@pytest.mark.parametrize("version,card,engine", [
    ("0.8.5", "Tesla V100-SXM2-32GB", "v0"), ("0.10.1", "Tesla T4", "v0"), ("0.10.2", "Tesla T4", "v1"),
    ("0.8.5", "NVIDIA GeForce RTX 3090", "v1"), ("0.7.3", "NVIDIA GeForce RTX 3090", "v0"),
])
def test_pre_ampere_cards_run_v0_until_0_10_2(version, card, engine):
    from rentstack.plan.cards import capabilities

    assert rules_for(version, pre_ampere=capabilities(card).pre_ampere).engine == engine


def test_v0_fallback_on_a_v100_profiles_the_whole_prompt():
    # Qwen2.5-7B fp16 on a V100 32GB with 0.8.5 (consumer record c14): the V0 worker profiled one
    # 32768-token prompt (chunked prefill off at ≤32K) and logged activation 4.35 GiB, non-torch
    # 0.09, KV 9.88. Planned as V1 (2048-token steps, whole-device non-torch) it was 13.7 GiB.
    pl = plan(load_arch(QWEN25_7B), Hardware(31.74, name="Tesla V100-SXM2-32GB"),
              LaunchParams(vllm_version="0.8.5", dtype="float16", max_model_len=32768))
    assert pl.resolved.max_num_batched_tokens == 32768
    assert pl.activation_gib == pytest.approx(4.35, abs=0.3)
    assert pl.non_torch_gib == pytest.approx(0.09, abs=0.07)
    assert pl.available_kv_gib == pytest.approx(9.88, rel=0.05)


def test_mla_latent_is_replicated_per_rank():
    arch = load_arch({"architectures": ["DeepseekV2ForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 27,
                      "num_attention_heads": 16, "vocab_size": 102400, "max_position_embeddings": 163840,
                      "intermediate_size": 10944, "moe_intermediate_size": 1408, "n_routed_experts": 64,
                      "n_shared_experts": 2, "num_experts_per_tok": 6, "first_k_dense_replace": 1,
                      "kv_lora_rank": 512, "q_lora_rank": None, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
                      "v_head_dim": 128})
    assert kv_bytes_per_token(arch) == 27 * (512 + 64) * 2
    assert kv_bytes_per_token(arch, LaunchParams(tp=2)) == 27 * (512 + 64) * 2
    assert arch.rotary_dim == 64  # the RoPE table covers the rope part of the head only


def test_the_tier_says_the_interconnect_the_name_is_only_the_default():
    from rentstack.config.tiers import Gpu

    def nt(gpu):
        return plan(QWEN3_8B, Hardware.from_gpu(gpu), LaunchParams(tp=2, max_model_len=8192)).non_torch_gib

    guess = nt(Gpu(name="A100-SXM4-80GB", count=2, memory_gib=79.15))  # no word from the tier: NVLink guessed
    pcie = nt(Gpu(name="A100-PCIE-80GB", count=2, memory_gib=79.15, p2p=False))  # no P2P: no NVLink buffers
    said = nt(Gpu(name="A100-PCIE-80GB", count=2, memory_gib=79.15, nvlink=False))
    l40s = nt(Gpu(name="L40S", count=2, memory_gib=44.39, nvlink=True))  # the tier knows better than the name
    r = rules_for(LaunchParams().vllm_version)
    assert guess - pcie == pytest.approx(r.non_torch_nvlink_gib - r.non_torch_pcie_gib) and said == pcie
    assert l40s == pytest.approx(guess)
    with pytest.raises(ValueError, match="nvlink true needs p2p true"):
        Gpu(name="H100", count=2, memory_gib=79.19, p2p=False, nvlink=True)


def test_card_table_capabilities():
    from rentstack.plan.cards import capabilities

    h100, a100, r4090, l40s = (capabilities(n) for n in ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB",
                                                          "NVIDIA GeForce RTX 4090", "NVIDIA L40S"))
    assert (h100.nvlink, h100.fp8, h100.flashmla, h100.small_batch_defaults) == (True, True, True, False)
    assert (a100.nvlink, a100.fp8, a100.small_batch_defaults) == (True, False, True)
    assert (r4090.nvlink, r4090.fp8) == (False, True) and (l40s.nvlink, l40s.fp8) == (False, True)
    assert capabilities("") == capabilities("vGPU-32GB") == capabilities("some card")
