"""The verdict: which failure ended the start, in which phase, in plain words, and what to change."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rentstack.doctor import causes
from rentstack.doctor.causes.base import Context, gib
from rentstack.doctor.diagnosis import Diagnosis, PlannerInputs
from rentstack.doctor.fixes import Situation, with_planner_fit
from rentstack.doctor.parse import Failure, LogFacts
from rentstack.doctor.phases import PHASE_WORDS


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
    """The root cause: the first failure, except that a secondary cause (NCCL errors are often other
    ranks reacting to one rank's crash) gives way to any other recognised failure."""
    if not failures:
        return None
    for failure in failures:
        if not causes.BY_NAME[failure.cause].secondary:
            return failure
    return failures[0]


def judge(facts: LogFacts, inputs: PlannerInputs) -> Diagnosis:
    figures = dict(facts.figures)
    if facts.starts > 1:
        figures["starts_seen"] = facts.starts  # a restart loop: only the last start is judged
    base = dict(figures=figures, lines=facts.lines)

    if facts.lines == 0 or (facts.binary_lines == 0 and not facts.tail):
        return Diagnosis("failed", causes.UNKNOWN, None, fixes=[], input_kind="empty", complete=False,
                         explanation="The log is empty: vLLM printed nothing. The server may not have been "
                                     "started, or the log came from another container or file.", **base)
    if facts.binary_lines and (facts.vllm_lines == 0 or facts.binary_lines * 10 >= facts.lines):
        return Diagnosis("failed", causes.UNKNOWN, None, fixes=[], input_kind="binary", complete=False,
                         explanation=f"This is not a text log: {facts.binary_lines:,} of {facts.lines:,} lines "
                                     "hold NUL or undecodable bytes. Pass the server's stdout/stderr (docker logs, journalctl).",
                         **base)
    if facts.vllm_lines == 0 and not facts.failures and not figures:
        return Diagnosis("failed", causes.UNKNOWN, None, fixes=[], input_kind="not_vllm", complete=False,
                         explanation=f"This does not look like a vLLM server log: none of its {facts.lines:,} lines "
                                     "has vLLM's log prefix, version banner or startup messages.", **base)

    failure = _primary(facts.failures)
    if failure is None:
        if facts.server_up:
            return Diagnosis("ok", None, "runtime", fixes=[], explanation=_ok_words(figures), **base)
        if facts.last_exception or facts.engine_failed:
            evidence = facts.last_exception or (facts.tail[-1] if facts.tail else None)
            return Diagnosis("failed", causes.UNKNOWN, facts.phase, fixes=[], evidence=evidence,
                             explanation=f"The start failed {PHASE_WORDS.get(facts.phase, '')} with an error the "
                                         f"doctor does not recognise: {evidence}", **base)
        return Diagnosis("failed", causes.UNKNOWN, facts.phase, fixes=[], complete=False,
                         evidence=facts.tail[-1] if facts.tail else None,
                         explanation=f"The log stops {PHASE_WORDS.get(facts.phase, '')} with no error and no "
                                     "'Application startup complete': the server was still starting, was killed "
                                     "(host out of memory, a timeout, docker stop), or the log is truncated.", **base)

    cause = causes.BY_NAME[failure.cause]
    details: dict[str, Any] = {}
    for other in facts.failures:  # the chained OOM messages complement each other
        if other.cause == failure.cause:
            for k, v in other.details.items():
                details.setdefault(k, v)
    phase = cause.phase_of(failure, facts)
    for key in cause.figures:
        if details.get(key) is not None:
            figures.setdefault(key, details[key])
    ctx = Context(Situation.build(figures, inputs), details, phase, facts)
    fixes = cause.fixes(ctx)
    if cause.memory:
        fixes = with_planner_fit(ctx.situation, fixes)
    return Diagnosis("failed", cause.name, phase, fixes=fixes, evidence=failure.line,
                     explanation=cause.explain(ctx), **base)


def _ok_words(f: dict[str, Any]) -> str:
    parts = [f"vLLM {f['vllm_version']}" if f.get("vllm_version") else "vLLM", "started"]
    text = " ".join(parts)
    bits = []
    if f.get("weights_gib") is not None:
        bits.append(f"weights take {gib(f['weights_gib'])}")
    if f.get("available_kv_gib") is not None:
        bits.append(f"the KV cache has {gib(f['available_kv_gib'])}")
    if f.get("kv_cache_tokens") is not None:
        bits.append(f"room for {f['kv_cache_tokens']:,} tokens")
    if f.get("max_concurrency") is not None and f.get("max_concurrency_tokens"):
        bits.append(f"{f['max_concurrency']} requests of {f['max_concurrency_tokens']:,} tokens at once")
    if f.get("cuda_graph_gib") is not None:
        bits.append(f"CUDA graphs took {gib(f['cuda_graph_gib'])}")
    return text + (": " + "; ".join(bits) + "." if bits else ".")
