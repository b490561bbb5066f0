"""How each vLLM release accounts GPU memory: the per-version rules the planner applies.

Facts from vLLM's source (re-read these when a new release is pinned):
- vllm/v1/worker/gpu_worker.py  Worker.init_device / determine_available_memory
- vllm/utils/mem_utils.py       memory_profiling (what counts as non-KV memory)
- vllm/engine/arg_utils.py      EngineArgs.get_batch_defaults (per-card batch defaults)
- vllm/v1/core/kv_cache_utils.py  get_num_blocks, the "GPU KV cache size" log line
- vllm/config/vllm.py           CUDA-graph capture sizes (min(2·max_num_seqs, 512))
Numbers marked "measured" come from the startup logs in ../shared/data and are the
planner's calibration; they are not in vLLM's source.
"""

from __future__ import annotations

from dataclasses import dataclass

GiB = 1024**3


@dataclass(frozen=True)
class Rules:
    """The accounting rules of one vLLM release."""

    version: tuple[int, int, int]
    engine: str
    """"v1", or "v0" before 0.8 (the V0 engine profiles max_model_len tokens at once)."""
    caps_whole_gpu: bool
    """The device's whole non-torch memory is charged to the budget: this process's CUDA
    context, NCCL buffers and allocator leftovers as well as other processes' memory.
    ≤0.6.4 (V0 worker: total−free − torch allocated, vLLM PR 9352) and 0.8.0–0.9.0 (V1
    gpu_worker.determine_available_memory, same formula). 0.6.5–0.7.x (V0, PR 10511) and
    ≥0.9.1 charge only what grew since the init snapshot."""
    checks_free_memory: bool
    """≥0.9.1: init_device refuses to start when free memory < total·utilization."""
    budgets_cuda_graphs: bool
    """≥0.20: profile_cudagraph_memory() is subtracted before the KV cache is sized
    (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS defaults to 1 from the 0.20.0 wheel)."""
    sampler_bytes: float
    """Profile-run sampler peak per (dummy request × vocab entry), bytes. V0 (≤0.7): ~38 B.
    From its source: profile_run samples with top_k = vocab−1, top_p 0.99, so
    _apply_top_k_top_p sorts fp32 logits into values (4 B) and int64 indices (8 B), then
    softmax, cumsum and mask (9 B) and probs/logprobs (8 B) — 29 B — while the logits
    themselves stay alive: lm_head's 16-bit output (2 B) and its fp32 copy (4 B), 35 B.
    Measured 37.9 B where the sampler is the whole peak (record c07, fit: 1.39 GiB
    activation, less 0.02 GiB of hidden states, over 256 requests × 151,936 entries); the
    first figure here, 30 B, left out the logits and under-counted that peak by 0.29 GiB
    (c07) and 0.25 GiB (c04, scored: 1.42 GiB logged, 1.46 now). In TP only the driver
    rank samples, and it is the one with the fewest blocks (2× RTX 4090 record c03:
    rank 1 logged 8.69 GiB, the minimum was 1.2 GiB lower). Measured in V1: ~8.5 B up to
    0.10.1 (Qwen2-7B, A100), ~38 B in 0.10.2–0.16 (top-k/top-p over the full vocab;
    Llama-3.1-8B 4.76 GiB, Qwen3 5.6 GiB at 1024 requests), ~14.4 B from 0.17 (the drop
    logged for Qwen3-14B 5.64 → 2.23 GiB)."""
    tokens_from_concurrency: bool
    """≥0.21: "GPU KV cache size" is max_concurrency × max_model_len, not blocks × block_size."""
    big_card_defaults: bool
    """Cards ≥70 GiB (A100 excluded) get 8192 batched tokens / 1024 seqs (server)."""
    huge_card_defaults: bool
    """≥0.32: cards ≥160 GiB get 16384 batched tokens (get_batch_defaults)."""
    non_torch_single_gib: float
    """Non-torch memory of one process (cuBLAS workspaces, attention-backend buffers) that
    grows after the init snapshot. Measured: 0.03 GiB in V0 0.7.3 (RTX 4060, record c04),
    0.13–0.14 GiB in 0.11–0.16, 0.24–0.25 GiB in 0.19. Eras that charge the whole device
    (caps_whole_gpu) use the device-wide figure instead (planner.whole_device_non_torch)."""
    non_torch_nvlink_gib: float
    """Extra non-torch memory per rank with TP/PP over NVLink (custom all-reduce and NCCL
    buffers). Measured 1.8–2.0 GiB on H100 in 0.19; ~1.05 GiB in 0.10 (A100)."""
    default_gpu_memory_utilization: float = 0.9
    """--gpu-memory-utilization when unset (vllm/config/cache.py): 0.9 up to 0.20, 0.92 from 0.21
    (era_rules)."""
    mxfp4_expert_pad: int = 128
    """Multiple the per-rank MXFP4 expert width is padded to on Hopper (the hidden size goes to
    a multiple of 256 either way). 0.11's Triton path pads to 64 (mxfp4.py create_weights:
    round_up(intermediate_size_per_partition, 64)); gpt-oss-120b on an H100 at 0.11 logged
    64.38 GiB = a 64-wide pad (shared record #9), where 128 would be 65.8. Later releases pick
    the backend in fused_moe/oracle/mxfp4.py; 0.19's TP2 gpt-oss-20b logged 7.01 GiB, nearer
    the 128 pad (7.05) than 64 (6.83). 0.12–0.18 are unmeasured: the wider pad is kept there,
    as it promises fewer KV tokens."""
    non_torch_pcie_gib: float = 0.08
    """Extra non-torch memory per rank with TP/PP over PCIe: NCCL communicator buffers only
    (vLLM's custom all-reduce needs NVLink or P2P). Measured 0.08 GiB in V1 (L40S TP4 at
    0.10.2 logged 0.21 against 0.13 for one H100 of that era, shared record #26) and 0.22
    GiB in V0 0.7 (2× RTX 4090, record c03: 0.25 against 0.03 for one RTX 4060, c04)."""

    @property
    def label(self) -> str:
        return ".".join(map(str, self.version))

    def batch_defaults(self, gpu_mem_gib: float, small_batch_card: bool = False) -> tuple[int, int]:
        """(max_num_batched_tokens, max_num_seqs) the OpenAI server picks on this card
        (EngineArgs.get_batch_defaults). small_batch_card: the card table's A100 exception."""
        if self.huge_card_defaults and gpu_mem_gib >= 160:
            return 16384, 1024
        if self.big_card_defaults and gpu_mem_gib >= 70 and not (small_batch_card and self.version >= (0, 10, 0)):
            return 8192, 1024
        return 2048, 256


def era_rules(v: tuple[int, int, int], v0_engine: bool = False) -> Rules:
    """The rule set of release `v` (parsed; rentstack.plan.rules.rules_for is the entry point).

    v0_engine: a V1-era release running its V0 engine, as 0.8.0–0.10.1 do on pre-Ampere cards.
    Those starts get V0's worker accounting: non-torch growth since its own snapshot (not the
    whole device), its sampler peak, no free-memory check or CUDA-graph budget, KV capacity
    logged as blocks. Logged on V100 / T4 / RTX 2060 / 2080 Ti with 0.8.2–0.8.5 (consumer
    records c14, c16–c18, c20): non-torch 0.04–0.09 GiB on one card, 0.20 with TP4 over PCIe."""
    v0 = v < (0, 8, 0) or v0_engine
    if v0:
        sampler = 38.0
    elif v < (0, 10, 2):
        sampler = 8.5
    elif v < (0, 17, 0):
        sampler = 38.0
    else:
        sampler = 14.4
    if v0:
        nt_single = 0.03
    elif v < (0, 17, 0):
        nt_single = 0.14
    else:
        nt_single = 0.25
    return Rules(
        version=v,
        engine="v0" if v0 else "v1",
        # ≤0.6.4: the V0 worker charged the whole device; 0.8.0–0.9.0: the V1 worker did.
        caps_whole_gpu=v <= (0, 6, 4) or (not v0 and (0, 8, 0) <= v <= (0, 9, 0)),
        checks_free_memory=not v0 and v >= (0, 9, 1),
        budgets_cuda_graphs=not v0 and v >= (0, 20, 0),
        sampler_bytes=sampler,
        tokens_from_concurrency=not v0 and v >= (0, 21, 0),
        big_card_defaults=v >= (0, 8, 5),
        huge_card_defaults=v >= (0, 32, 0),
        non_torch_single_gib=nt_single,
        non_torch_pcie_gib=0.22 if v0 else 0.08,
        non_torch_nvlink_gib=1.85 if v >= (0, 12, 0) else 1.05,
        mxfp4_expert_pad=64 if v < (0, 12, 0) else 128,
        # CacheConfig.gpu_memory_utilization: 0.92 in the 0.32.0 package itself and in 0.25.1
        # start logs that leave it unset (consumer records c30, c31); vLLM PR 38284 made the
        # change for 0.21. 0.9 before.
        default_gpu_memory_utilization=0.92 if v >= (0, 21, 0) else 0.9,
    )


def cuda_graph_sizes(max_num_seqs: int) -> list[int]:
    """Decode batch sizes captured by default: [1,2,4,8..248 step 8, 256..max step 16]."""
    top = min(2 * max_num_seqs, 512)
    sizes = [s for s in [1, 2, 4, *range(8, 256, 8), *range(256, top + 1, 16)] if s <= top]
    return sizes or [1]
