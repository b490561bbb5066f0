"""The phases of a vLLM start, in order, and how the doctor names them in a sentence."""

from __future__ import annotations

PHASE_ORDER = (
    "startup",
    "weight_loading",
    "profiling",
    "kv_cache_allocation",
    "cuda_graph_capture",
    "sampler_warmup",
    "runtime",
)
"""Start phases in the order the V1 engine runs them (gpu_worker: load_model → determine_available_memory
→ initialize_from_config → compile_or_warm_up_model (graphs, then sampler) → API server up)."""

PHASE_WORDS = {
    "startup": "while starting up (before loading the model)",
    "weight_loading": "while loading the weights",
    "profiling": "while profiling memory (the dummy forward pass)",
    "kv_cache_allocation": "while sizing and allocating the KV cache",
    "cuda_graph_capture": "while capturing CUDA graphs",
    "sampler_warmup": "while warming up the sampler",
    "runtime": "after the server was up, while serving",
}
