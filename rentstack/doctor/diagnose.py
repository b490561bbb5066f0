"""The verdict: which failure ended the start, in which phase, in plain words, and what to change."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rentstack.doctor import fixes as F
from rentstack.doctor.diagnosis import Diagnosis, PlannerInputs
from rentstack.doctor.parse import Failure, LogFacts

MEMORY_CAUSES = ("cuda_oom", "no_kv_cache_memory", "max_model_len_too_large", "insufficient_free_memory")

PHASE_WORDS = {
    "startup": "while starting up (before loading the model)",
    "weight_loading": "while loading the weights",
    "profiling": "while profiling memory (the dummy forward pass)",
    "kv_cache_allocation": "while sizing and allocating the KV cache",
    "cuda_graph_capture": "while capturing CUDA graphs",
    "sampler_warmup": "while warming up the sampler",
    "runtime": "after the server was up, while serving",
}


def diagnose(lines: Iterable[str | bytes], planner_inputs: PlannerInputs | dict | None = None) -> Diagnosis:
    """Read a vLLM server log (any iterable of lines, consumed once) and explain how the start went.

    `planner_inputs` adds what a log does not hold (the model's config.json, card size, an earlier
    calibration) so fixes carry the planner's predicted result; without it, predictions are scaled
    from the log's own figures."""
    return judge(read_facts(lines), PlannerInputs.coerce(planner_inputs))


def read_facts(lines: Iterable[str | bytes]) -> LogFacts:
    """The one pass over the log; `judge` may then be called several times on its result."""
    facts = LogFacts()
    for line in lines:
        if isinstance(line, (bytes, bytearray)):
            line = bytes(line).decode("utf-8", errors="replace")
        facts.feed(line)
    return facts


def _primary(failures: list[Failure]) -> Failure | None:
    """The root cause: the first failure, except that NCCL errors are often other ranks reacting
    to one rank's crash, so any other recognised failure wins over them."""
    if not failures:
        return None
    for failure in failures:
        if failure.cause != "nccl_p2p":
            return failure
    return failures[0]


def _phase_of(failure: Failure, facts: LogFacts) -> str:
    if failure.cause in MEMORY_CAUSES:
        if failure.phase == "sampler_warmup" or (failure.cause != "cuda_oom" and failure.phase):
            return failure.phase
        if failure.cause == "cuda_oom":
            # the sampler message is chained after the allocator's own OOM: prefer what it names
            for other in facts.failures:
                if other.cause == "cuda_oom" and other.phase:
                    return other.phase
        return failure.frame or ("runtime" if failure.reached == "runtime" else failure.reached)
    return failure.reached


def judge(facts: LogFacts, inputs: PlannerInputs) -> Diagnosis:
    figures = dict(facts.figures)
    if facts.starts > 1:
        figures["starts_seen"] = facts.starts  # a restart loop: only the last start is judged
    base = dict(figures=figures, lines=facts.lines)

    if facts.lines == 0 or (facts.binary_lines == 0 and not facts.tail):
        return Diagnosis("failed", "unknown", None, fixes=[], input_kind="empty", complete=False,
                         explanation="The log is empty: vLLM printed nothing. The server may not have been "
                                     "started, or the log came from another container or file.", **base)
    if facts.binary_lines and (facts.vllm_lines == 0 or facts.binary_lines * 10 >= facts.lines):
        return Diagnosis("failed", "unknown", None, fixes=[], input_kind="binary", complete=False,
                         explanation=f"This is not a text log: {facts.binary_lines:,} of {facts.lines:,} lines "
                                     "hold NUL or undecodable bytes. Pass the server's stdout/stderr (docker logs, journalctl).",
                         **base)
    if facts.vllm_lines == 0 and not facts.failures and not figures:
        return Diagnosis("failed", "unknown", None, fixes=[], input_kind="not_vllm", complete=False,
                         explanation=f"This does not look like a vLLM server log: none of its {facts.lines:,} lines "
                                     "has vLLM's log prefix, version banner or startup messages.", **base)

    failure = _primary(facts.failures)
    if failure is None:
        if facts.server_up:
            return Diagnosis("ok", None, "runtime", fixes=[], explanation=_ok_words(figures), **base)
        if facts.last_exception or facts.engine_failed:
            evidence = facts.last_exception or (facts.tail[-1] if facts.tail else None)
            return Diagnosis("failed", "unknown", facts.phase, fixes=[], evidence=evidence,
                             explanation=f"The start failed {PHASE_WORDS.get(facts.phase, '')} with an error the "
                                         f"doctor does not recognise: {evidence}", **base)
        return Diagnosis("failed", "unknown", facts.phase, fixes=[], complete=False,
                         evidence=facts.tail[-1] if facts.tail else None,
                         explanation=f"The log stops {PHASE_WORDS.get(facts.phase, '')} with no error and no "
                                     "'Application startup complete': the server was still starting, was killed "
                                     "(host out of memory, a timeout, docker stop), or the log is truncated.", **base)

    details: dict[str, Any] = {}
    for other in facts.failures:  # the chained OOM messages complement each other
        if other.cause == failure.cause:
            for k, v in other.details.items():
                details.setdefault(k, v)
    phase = _phase_of(failure, facts)
    for key in ("free_gib", "total_gpu_gib", "gpu_memory_utilization", "requested_gib", "needed_kv_gib",
                "suggested_max_model_len", "oom_tried_gib", "oom_free_gib", "oom_total_gib",
                "sampler_dummy_requests", "max_model_len"):
        if details.get(key) is not None:
            figures.setdefault(key, details[key])
    if failure.cause == "max_model_len_too_large" and details.get("available_kv_gib") is not None:
        figures.setdefault("available_kv_gib", details["available_kv_gib"])
    s = F.Situation.build(figures, inputs)

    cause = failure.cause
    if cause == "max_model_len_too_large":
        fixes = F.fixes_max_model_len(s, details)
    elif cause == "no_kv_cache_memory":
        fixes = F.fixes_no_kv_memory(s, details)
    elif cause == "insufficient_free_memory":
        fixes = F.fixes_free_memory(s, details)
    elif cause == "cuda_oom":
        fixes = F.fixes_cuda_oom(s, details, phase)
    elif cause == "nccl_p2p":
        fixes = F.fixes_nccl(s, details)
    elif cause == "port_in_use":
        fixes = F.fixes_port(s, details)
    elif cause == "bad_argument":
        fixes = F.fixes_bad_argument(s, details, facts.usage_flags)
    else:
        fixes = []
    if cause in MEMORY_CAUSES:
        fixes = F.with_planner_fit(s, fixes)
    return Diagnosis("failed", cause, phase, fixes=fixes, evidence=failure.line,
                     explanation=_failure_words(cause, phase, details, s, facts), **base)


def _gib(x: Any) -> str:
    return f"{x:.2f} GiB" if isinstance(x, (int, float)) else "? GiB"


def _ok_words(f: dict[str, Any]) -> str:
    parts = [f"vLLM {f['vllm_version']}" if f.get("vllm_version") else "vLLM", "started"]
    text = " ".join(parts)
    bits = []
    if f.get("weights_gib") is not None:
        bits.append(f"weights take {_gib(f['weights_gib'])}")
    if f.get("available_kv_gib") is not None:
        bits.append(f"the KV cache has {_gib(f['available_kv_gib'])}")
    if f.get("kv_cache_tokens") is not None:
        bits.append(f"room for {f['kv_cache_tokens']:,} tokens")
    if f.get("max_concurrency") is not None and f.get("max_concurrency_tokens"):
        bits.append(f"{f['max_concurrency']} requests of {f['max_concurrency_tokens']:,} tokens at once")
    if f.get("cuda_graph_gib") is not None:
        bits.append(f"CUDA graphs took {_gib(f['cuda_graph_gib'])}")
    return text + (": " + "; ".join(bits) + "." if bits else ".")


def _failure_words(cause: str, phase: str, d: dict[str, Any], s: F.Situation, facts: LogFacts) -> str:
    where = PHASE_WORDS.get(phase, "")
    model = s.figures.get("model") or "the model"
    if cause == "max_model_len_too_large":
        length = d.get("max_model_len") or s.max_model_len
        if d.get("needed_kv_gib") is not None:
            text = (f"One request of the full context ({length:,} tokens) needs {_gib(d['needed_kv_gib'])} of KV "
                    f"cache, but only {_gib(d.get('available_kv_gib'))} is left after the weights and activations.")
        else:
            text = (f"One request of the full context ({length:,} tokens) does not fit the KV cache, which holds "
                    f"{d.get('kv_cache_tokens', '?'):,} tokens.")
        if d.get("suggested_max_model_len"):
            text += f" vLLM estimates the longest that fits at {d['suggested_max_model_len']:,} tokens."
        return text
    if cause == "no_kv_cache_memory":
        avail = s.figures.get("available_kv_gib")
        return ("Nothing is left for the KV cache: the weights, the profile run's activations and runtime "
                f"overhead already use the whole budget (gpu-memory-utilization {s.util}"
                + (f" of {_gib(s.total_gib)}" if s.total_gib else "") + ")"
                + (f"; vLLM computed {_gib(avail)} for the KV cache" if avail is not None else "")
                + ". Raising the utilization gives vLLM more of the card; lowering it makes this worse.")
    if cause == "insufficient_free_memory":
        cpu = str(d.get("device") or "").startswith("cpu")
        where = "of host memory on this NUMA node (CPU backend)" if cpu else "on the card"
        return (f"At start only {_gib(d.get('free_gib'))} of {_gib(d.get('total_gpu_gib'))} {where} was free, "
                f"but gpu-memory-utilization {d.get('gpu_memory_utilization')} asks for "
                f"{_gib(d.get('requested_gib'))}. Another process (or a vGPU slice) holds the rest.")
    if cause == "cuda_oom":
        text = f"The card ran out of memory {where}"
        if d.get("oom_tried_gib"):
            text += f" (an allocation of {d['oom_tried_gib'] * 1024:.0f} MiB failed"
            text += f" with {d['oom_free_gib'] * 1024:.0f} MiB free)" if d.get("oom_free_gib") is not None else ")"
        text += "."
        if phase == "cuda_graph_capture" and not s.graphs_budgeted:
            text += (f" vLLM {s.version or ''} captures CUDA graphs after the KV cache is allocated, outside "
                     "gpu-memory-utilization, so they must fit in what the utilization leaves free.")
        elif phase == "sampler_warmup":
            text += " The sampler warm-up builds one logits row per concurrent sequence (max-num-seqs × vocabulary)."
        elif phase == "weight_loading":
            text += f" The weights of {model} do not fit the card."
        return text
    if cause == "nccl_p2p":
        return (f"Communication between the GPUs failed {where} (NCCL / peer-to-peer). Consumer cards "
                "without NVLink often lack working P2P; vLLM then needs it turned off."
                + (" vLLM had already warned that the platform lacks GPU P2P." if facts.p2p_warning else ""))
    if cause == "model_not_found":
        missing = d.get("missing")
        return (f"The model files are missing or incomplete for {model}"
                + (f" ({missing})" if missing and missing != model else "")
                + ": download the full model (config.json, tokenizer files and weights) or fix the path.")
    if cause == "port_in_use":
        port = d.get("port") or s.args.get("port") or 8000
        return f"Port {port} is already in use on this host: another server (maybe an older vLLM) is listening on it."
    if cause == "bad_argument":
        if d.get("derived_len"):
            return (f"max-model-len {int(d['user_len']):,} is larger than the model allows "
                    f"({int(d['derived_len']):,} tokens in its config.json).")
        what = d.get("unrec") or d.get("arg") or d.get("required") or d.get("model") or ""
        problem = d.get("problem")
        return ("vLLM rejected its arguments before starting"
                + (f": {what}" if what else "") + (f" — {problem}" if problem else "")
                + ". Check the flag names and values in the config.")
    return "The start failed for a reason the doctor does not recognise."
