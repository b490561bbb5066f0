"""The vLLM log lines the doctor recognises, one regular expression each.

Every pattern names where vLLM prints the line and in which versions, so the next
person can re-read the source (`pip download vllm==X --no-deps`) when a release
rewords a message. Numbers in vLLM's messages use "," as a thousands separator
("476,016 tokens"), so count patterns accept it.
"""

from __future__ import annotations

import re

NUM = r"(-?[0-9][0-9,]*(?:\.[0-9]+)?)"
"""A number as vLLM formats it: optional sign, thousands commas, optional decimals."""

# --- the line's shape -------------------------------------------------------------------
LOG_PREFIX = re.compile(
    r"(?:^|\s)(?:INFO|WARNING|ERROR|DEBUG|CRITICAL)\s+\d\d-\d\d\s+\d\d:\d\d:\d\d(?:\.\d+)?\s+\[?[\w./-]+\.py:\d+\]"
)
"""vLLM's own formatter: 'INFO 05-01 12:00:00 [gpu_worker.py:298] ...' (0.8+); V0-era releases
print 'INFO 12-02 13:41:55 worker.py:232] ...' without the opening bracket."""

WORKER_TAG = re.compile(r"^\s*\((?P<tag>[A-Za-z_]+[A-Za-z_0-9 ]*?)\s+pid=\d+\)")
"""Process prefix added by multiprocessing: '(EngineCore_DP0 pid=1)', '(VllmWorker TP1 pid=7)'."""

TRIGGER_WORDS = (
    # banner, arguments, figures
    "version", "█", "LLM engine (v", "non-default args", "args: Namespace", "Using max model len", "took", "total_gpu_memory",
    "model weights take", "Memory profiling results", "Available KV cache memory", "Explicitly set",
    "KV cache size", "Maximum concurrency", "blocks:", "Estimated CUDA graph", "--kv-cache-memory=", "init engine",
    # phases
    "Starting", "Loading", "Profiling CUDA graph", "Capturing CUDA graph", "Compile and warming up",
    "Application startup complete", "Uvicorn running",
    # tracebacks, the engine's own failure line, hints, argparse's usage text
    "Traceback", 'File "', "rror", "Exception", "Exit", "Engine core", "EngineCore failed", "EngineDead",
    "Custom allreduce", "[--",
)
"""A line with none of these words (nor any cause's `triggers`) cannot match any pattern, so the
reader skips it after one search. Request logs and throughput lines — nearly all of a long-running
server's log — fall here. Every pattern in this module needs one of these words; add the word when
adding a pattern. Each cause lists its own words (rentstack.doctor.causes.TRIGGER joins them)."""

# --- what the run is ---------------------------------------------------------------------
VERSION_BANNER = re.compile(
    r"vLLM (?:API )?server version\s+(?P<version>[0-9][\w.+-]*)(?:, serving model (?P<model>\S+))?"
)
"""'vLLM API server version X' (api_server.py, ≤0.18) or 'vLLM server version X, serving model M'
(entrypoints/utils.py log_version_and_model, 0.19+, when the logo is disabled)."""

VERSION_LOGO = re.compile(r"[█▀▄]\s+version\s+(?P<version>[0-9][\w.+-]*)\s*$")
"""The 0.19+ ASCII logo: '... █ ▀▄▀ █  version 0.19.0' on one line, 'model M' on the next."""

ENGINE_BANNER = re.compile(
    r"Initializing an? (?:V[01] )?LLM engine \(v(?P<version>[0-9][\w.+-]*)\) with config: model='(?P<model>[^']+)'"
)
"""llm_engine.py / v1 core.py (0.6+): 'Initializing a V1 LLM engine (v0.28.0) with config: model=…'.
The only version line of an offline LLM() run; in a server's log it follows the banner above."""

LOGO_MODEL = re.compile(r"[█▀▄]\s+model\s+(?P<model>\S+)\s*$")

NON_DEFAULT_ARGS = re.compile(r"non-default args:\s*(?P<args>\{.*\})\s*$")
"""entrypoints/utils.py (0.10+) / entrypoints/common/startup.py (0.33): only the flags set."""

NAMESPACE_ARGS = re.compile(r"\]\s+args:\s*Namespace\((?P<args>.*)\)\s*$")
"""openai/api_server.py 'args: Namespace(...)' (0.8–0.9): every flag, defaults included."""

MAX_MODEL_LEN_USED = re.compile(r"Using max model len " + NUM)
"""config/model.py (0.10+): the context length the engine settled on."""

# --- figures -----------------------------------------------------------------------------
MODEL_LOADING = re.compile(r"Model loading took " + NUM + r" ?GiB(?: memory)? and " + NUM + r" seconds")
"""v1/worker/gpu_model_runner.py load_model: '%.4f GiB and %.6f seconds' (≤0.18),
'%s GiB memory and %.6f seconds' (0.19+)."""

LOADING_WEIGHTS_V0 = re.compile(r"Loading model weights took " + NUM + r" ?GB")
"""V0 / XPU worker: 'Loading model weights took 14.9888 GB' (the value is GiB)."""

PROFILE_V0_TOTAL = re.compile(
    r"total_gpu_memory \(" + NUM + r" ?GiB\) x gpu_memory_utilization \(" + NUM + r"\) = " + NUM + r" ?GiB"
)
"""V0 worker.py determine_num_available_blocks 'Memory profiling takes ...' block, line 2."""

PROFILE_V0_SPLIT = re.compile(
    r"model weights take " + NUM + r" ?GiB; non_torch_memory takes " + NUM
    + r" ?GiB; PyTorch activation peak memory takes " + NUM
    + r" ?GiB; the rest of the memory reserved for KV Cache is " + NUM + r" ?GiB"
)
"""V0 'Memory profiling takes' block, line 3 (also printed by some 0.8–0.9 V1 builds)."""

PROFILE_V0_RESULTS = re.compile(r"Memory profiling results: (?P<pairs>.*)$")
"""V0 worker.py (0.6.x): 'Memory profiling results: total_gpu_memory=23.58GiB ... non_torch_memory=0.35GiB
kv_cache_size=3.81GiB gpu_memory_utilization=0.90'."""

PROFILE_V0_PAIR = re.compile(r"(\w+)=(-?[0-9.]+)(?:GiB)?")

AVAILABLE_KV = re.compile(r"Available KV cache memory: " + NUM + r" ?GiB")
"""v1/worker/gpu_worker.py determine_available_memory (0.9+); once per worker before 0.12."""

CPU_KV_SPACE = re.compile(r"Explicitly set \((?P<kv>[0-9.]+)/(?P<total>[0-9.]+)\) GiB for KV cache")
"""v1/worker/cpu_worker.py (CPU builds): the KV budget from VLLM_CPU_KVCACHE_SPACE / --kv-cache-memory-bytes."""

KV_CACHE_SIZE = re.compile(r"(?P<device>[A-Z]+)(?: \+ host)? KV cache size: " + NUM + r" tokens")
"""v1/core/kv_cache_utils.py: 'GPU KV cache size: N tokens' (CPU builds say 'CPU'); 0.28+
prints it on one line together with the concurrency figure."""

MAX_CONCURRENCY = re.compile(r"Maximum concurrency for " + NUM + r" tokens per request: " + NUM + r"x")
"""kv_cache_utils.py next to the KV size line: 'Maximum concurrency for 8,192 tokens per request: 58.11x'."""

NUM_GPU_BLOCKS = re.compile(r"# (?:GPU|cuda) blocks: " + NUM)
"""V0 executor_base.py '# cuda blocks: N, # CPU blocks: M' (older: '# GPU blocks')."""

GRAPH_CAPTURED = re.compile(r"Graph capturing finished in " + NUM + r" secs?, took " + NUM + r" ?GiB")
"""gpu_model_runner.py capture_model: the measured CUDA-graph pool (all versions)."""

GRAPH_ESTIMATE = re.compile(r"Estimated CUDA graph memory: " + NUM + r" ?GiB total")
"""gpu_model_runner.py profile_cudagraph_memory (0.18+): budgeted before the KV cache from 0.20."""

KV_CACHE_MEMORY_HINT = re.compile(
    r"Replace gpu_memory_utilization config with `--kv-cache-memory=(?P<fit>\d+)`.*?`--kv-cache-memory=(?P<full>\d+)`"
)
"""gpu_worker.py compile_or_warm_up_model (0.10.2+): exact KV bytes that fit the requested budget."""

FREE_MEMORY_INFO = re.compile(
    r"Free memory on device \((?P<free>[0-9.]+)/(?P<total>[0-9.]+) ?GiB\) on startup\. Desired GPU memory "
    r"utilization is \((?P<util>[0-9.]+), (?P<requested>[0-9.]+) ?GiB\)"
)
"""The same INFO line's start: the card's free and total memory at start and the budget."""

def _named_num(name: str) -> str:
    return NUM.replace("(", f"(?P<{name}>", 1)


ACTUAL_USAGE = re.compile(
    r"Actual usage is " + _named_num("first") + r" ?GiB for (?P<what>weight|consumed memory \(weights \+ "
    r"non-torch\)), " + _named_num("activation") + r" ?GiB for peak activation, (?:" + _named_num("non_torch")
    + r" ?GiB for non-torch memory, )?and " + _named_num("graphs") + r" ?GiB for CUDAGraph memory"
)
"""gpu_worker.py compile_or_warm_up_model, next to the --kv-cache-memory hint: INFO in 0.10.2,
0.28+; DEBUG in 0.11–0.27. 0.10–0.19 split weight / activation / non-torch; 0.28+ gives weights
and non-torch together as 'consumed memory'."""

INIT_ENGINE = re.compile(r"init engine \(profile, create kv cache, warmup model\) took " + NUM)
"""v1/engine/core.py: the engine finished profiling, KV allocation and warm-up."""

# --- phase milestones (in start order) --------------------------------------------------
START_LOADING = re.compile(r"Starting to load model|Loading safetensors checkpoint shards|Loading weights took")
PROFILING_CG = re.compile(r"Profiling CUDA graph memory")
CAPTURING_GRAPHS = re.compile(r"Capturing CUDA graph|Capturing CUDA graphs|Compile and warming up model")
SERVER_UP = re.compile(r"Starting vLLM (?:API )?server|Application startup complete|Uvicorn running on")
"""api_server.py 'Starting vLLM API server %d on %s' (≤0.2x), launchers/entry.py 'Starting vLLM server on'
(0.32), uvicorn's 'Application startup complete.'"""

# --- around failures (the failures themselves live in rentstack/doctor/causes/) ------------
P2P_WARNING = re.compile(r"Custom allreduce is disabled because your platform lacks GPU P2P capability")
"""distributed/device_communicators/custom_all_reduce.py: a hint, not a failure."""

ENGINE_FAILED = re.compile(r"Engine core initialization failed|EngineCore failed to start|EngineDeadError")
"""v1/engine/core_client.py: a consequence, never the root cause: 'See root cause above'."""

TRACEBACK_START = re.compile(r"Traceback \(most recent call last\):")
FRAME = re.compile(r'File "(?P<file>[^"]+)", line \d+, in (?P<func>\w+)')
EXCEPTION_LINE = re.compile(r"^(?:\S+ )?(?P<exc>(?:[a-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit))(?::\s*(?P<msg>.*))?$")

# Traceback frames that place an OOM in a start phase (function names stable 0.8–0.33).
FRAME_PHASES = (
    ("_dummy_sampler_run", "sampler_warmup"),
    ("capture_model", "cuda_graph_capture"),
    ("profile_cudagraph_memory", "profiling"),
    ("profile_run", "profiling"),
    ("determine_available_memory", "profiling"),
    ("initialize_from_config", "kv_cache_allocation"),
    ("load_model", "weight_loading"),
    ("load_weights", "weight_loading"),
)
