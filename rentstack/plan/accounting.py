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

import re
from dataclasses import dataclass

from rentstack.errors import RentstackError

GiB = 1024**3


def parse_version(version: str) -> tuple[int, int, int]:
    """'0.11.0+582e.nv25.11' → (0, 11, 0); '0.10.1.1' → (0, 10, 1)."""
    m = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?", str(version))
    if not m:
        raise RentstackError(f"vllm_version {version!r} is not a release number; use X.Y.Z, e.g. 0.32.0")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


@dataclass(frozen=True)
class Rules:
    """The accounting rules of one vLLM release."""

    version: tuple[int, int, int]
    engine: str
    """"v1", or "v0" before 0.8 (the V0 engine profiles max_model_len tokens at once)."""
    caps_whole_gpu: bool
    """≤0.9.0: other processes' memory counts against gpu_memory_utilization."""
    checks_free_memory: bool
    """≥0.9.1: init_device refuses to start when free memory < total·utilization."""
    budgets_cuda_graphs: bool
    """≥0.20: profile_cudagraph_memory() is subtracted before the KV cache is sized
    (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS defaults to 1 from the 0.20.0 wheel)."""
    sampler_bytes: float
    """Profile-run sampler peak per (dummy request × vocab entry), bytes. Measured:
    ~8.5 B up to 0.10.1 (Qwen2-7B, A100), ~38 B in 0.10.2–0.16 (top-k/top-p over the
    full vocab; Llama-3.1-8B 4.76 GiB, Qwen3 5.6 GiB at 1024 requests), ~14.4 B from 0.17
    (the drop logged for Qwen3-14B 5.64 → 2.23 GiB)."""
    tokens_from_concurrency: bool
    """≥0.21: "GPU KV cache size" is max_concurrency × max_model_len, not blocks × block_size."""
    big_card_defaults: bool
    """Cards ≥70 GiB (A100 excluded) get 8192 batched tokens / 1024 seqs (server)."""
    huge_card_defaults: bool
    """≥0.32: cards ≥160 GiB get 16384 batched tokens (get_batch_defaults)."""
    non_torch_single_gib: float
    """Non-torch memory of one process (CUDA context, cuBLAS workspaces) counted after the
    init snapshot. Measured: 0.13–0.14 GiB in 0.11–0.16, 0.24–0.25 GiB in 0.19, 0.35 V0."""
    non_torch_nvlink_gib: float
    """Extra non-torch memory per rank with TP/PP over NVLink (custom all-reduce and NCCL
    buffers). Measured 1.8–2.0 GiB on H100 in 0.19; ~1.05 GiB in 0.10 (A100)."""

    @property
    def label(self) -> str:
        return ".".join(map(str, self.version))


def rules_for(version: str) -> Rules:
    v = parse_version(version)
    if v < (0, 5, 0):
        raise RentstackError(f"vllm_version {version} is older than 0.5, which the planner does not model; use ≥0.6")
    v0 = v < (0, 8, 0)
    if v < (0, 10, 2):
        sampler = 8.5
    elif v < (0, 17, 0):
        sampler = 38.0
    else:
        sampler = 14.4
    if v0:
        nt_single = 0.35
    elif v < (0, 17, 0):
        nt_single = 0.14
    else:
        nt_single = 0.25
    return Rules(
        version=v,
        engine="v0" if v0 else "v1",
        caps_whole_gpu=v < (0, 9, 1),
        checks_free_memory=v >= (0, 9, 1),
        budgets_cuda_graphs=v >= (0, 20, 0),
        sampler_bytes=sampler,
        tokens_from_concurrency=v >= (0, 21, 0),
        big_card_defaults=v >= (0, 8, 5),
        huge_card_defaults=v >= (0, 32, 0),
        non_torch_single_gib=nt_single,
        non_torch_nvlink_gib=1.85 if v >= (0, 12, 0) else 1.05,
    )


def batch_defaults(rules: Rules, gpu_mem_gib: float, is_a100: bool) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) the OpenAI server picks on this card."""
    if rules.huge_card_defaults and gpu_mem_gib >= 160:
        return 16384, 1024
    if rules.big_card_defaults and gpu_mem_gib >= 70 and not (is_a100 and rules.version >= (0, 10, 0)):
        return 8192, 1024
    return 2048, 256


def cuda_graph_sizes(max_num_seqs: int) -> list[int]:
    """Decode batch sizes captured by default: [1,2,4,8..248 step 8, 256..max step 16]."""
    top = min(2 * max_num_seqs, 512)
    sizes = [s for s in [1, 2, 4, *range(8, 256, 8), *range(256, top + 1, 16)] if s <= top]
    return sizes or [1]
