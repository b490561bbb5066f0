"""The failure causes the doctor recognises: one module each, listed here once.

Each module under `rentstack/doctor/causes/` owns everything about its cause: the log lines
that reveal it (regular expressions, with where in vLLM's source they are printed), the figures
read out of those lines, the explanation in plain words and the fixes with their cost. The
reader, the verdict and the CLI only walk `REGISTRY`; no other module names a cause.

Adding a cause
--------------
1. Write `rentstack/doctor/causes/<name>.py` ending in ``CAUSE = Cause(...)`` (see `base.Cause`
   for the fields): `match(line)` returns `Found(phase, details)` for a line of this cause,
   `explain(ctx)` says what happened, `fixes(ctx)` proposes launch changes (build each with
   `rentstack.doctor.fixes.propose`, which attaches the planner's prediction); `triggers` are
   plain words every matching line holds; `examples` are real log lines it must recognise.
2. Import it below and put it in `REGISTRY`. Lines are tried against the causes in that order
   and the first match wins, so a cause whose lines are more specific goes before a broader one
   (the out-of-memory messages go before NCCL's, which a crash on another rank also prints).
3. Add a golden case: `tests/golden/doctor/<vllm version>-<case>.log` (a real log) and its
   `.expected.json`. `tests/unit/test_doctor_causes.py` checks every cause's examples on its own.
"""

from __future__ import annotations

import re

from rentstack.doctor import patterns
from rentstack.doctor.causes import (
    bad_argument,
    cuda_oom,
    driver_too_old,
    insufficient_free_memory,
    max_model_len_too_large,
    model_not_found,
    nccl_p2p,
    no_kv_cache_memory,
    port_in_use,
    unsupported_gpu,
)
from rentstack.doctor.causes.base import Cause, Context, Found

REGISTRY: tuple[Cause, ...] = (
    # Nothing else can run when the driver or the card does not fit the build: first.
    driver_too_old.CAUSE,
    unsupported_gpu.CAUSE,
    no_kv_cache_memory.CAUSE,
    max_model_len_too_large.CAUSE,
    insufficient_free_memory.CAUSE,
    cuda_oom.CAUSE,
    nccl_p2p.CAUSE,
    port_in_use.CAUSE,
    model_not_found.CAUSE,
    bad_argument.CAUSE,
)
"""Every cause, in the order a log line is tried against them."""

UNKNOWN = "unknown"
"""The verdict when a start failed and no cause matched (or the input is not a vLLM log)."""

CAUSES: tuple[str, ...] = (*(c.name for c in REGISTRY), UNKNOWN)
"""The failure causes `rentstack doctor --json` may report (null when the start succeeded)."""

BY_NAME: dict[str, Cause] = {c.name: c for c in REGISTRY}

TRIGGER = re.compile("|".join(re.escape(w) for w in dict.fromkeys(
    (*patterns.TRIGGER_WORDS, *(w for c in REGISTRY for w in c.triggers)))))
"""A line holding none of these words matches no pattern of the reader or of any cause."""


def match_failure(line: str) -> tuple[Cause, Found] | None:
    """The first cause (in REGISTRY order) that recognises `line`, with what it read."""
    for cause in REGISTRY:
        found = cause.match(line)
        if found is not None:
            return cause, found
    return None


__all__ = ["BY_NAME", "CAUSES", "REGISTRY", "TRIGGER", "UNKNOWN", "Cause", "Context", "Found", "match_failure"]
