"""The cause registry: every cause module is registered, recognises its own example lines through
the whole reader, and owns a unique name; adding a cause touches its module and the registry."""

from __future__ import annotations

import pkgutil
import re

import pytest

import rentstack.doctor.causes as causes_pkg
from rentstack.doctor import CAUSES, diagnose
from rentstack.doctor.causes import BY_NAME, REGISTRY, TRIGGER, UNKNOWN, Cause, Found, match_failure
from rentstack.doctor.parse import LogFacts

EXAMPLES = [(c.name, line) for c in REGISTRY for line in c.examples]


def test_every_cause_module_is_registered_once():
    modules = {m.name for m in pkgutil.iter_modules(causes_pkg.__path__)} - {"base"}
    assert modules == {c.name for c in REGISTRY}, "a module under causes/ is missing from REGISTRY (or misnamed)"
    assert len(BY_NAME) == len(REGISTRY)
    assert CAUSES == (*(c.name for c in REGISTRY), UNKNOWN)


@pytest.mark.parametrize("cause", REGISTRY, ids=lambda c: c.name)
def test_cause_is_complete(cause: Cause):
    assert re.fullmatch(r"[a-z][a-z0-9_]*", cause.name)
    assert cause.summary and cause.triggers and cause.examples


@pytest.mark.parametrize(("name", "line"), EXAMPLES)
def test_example_is_recognised_by_its_cause_through_the_reader(name: str, line: str):
    cause = BY_NAME[name]
    assert isinstance(cause.match(line), Found)
    assert any(word in line for word in cause.triggers), "the reader would skip this line"
    assert TRIGGER.search(line)
    first = match_failure(line)
    assert first is not None and first[0].name == name, f"an earlier cause in REGISTRY takes it: {first[0].name}"
    facts = LogFacts()
    facts.feed(line + "\n")
    assert [f.cause for f in facts.failures] == [name]


def test_other_causes_examples_are_not_claimed():
    for cause in REGISTRY:
        for other, line in EXAMPLES:
            if other != cause.name and REGISTRY.index(BY_NAME[other]) > REGISTRY.index(cause):
                # a cause tried earlier must leave later causes' lines alone
                assert cause.match(line) is None, f"{cause.name} claims {other}'s line: {line[:80]}"


@pytest.mark.parametrize(("name", "line"), EXAMPLES)
def test_each_example_alone_gives_a_verdict_with_words(name: str, line: str):
    head = "INFO 11-21 14:20:00 [api_server.py:1] vLLM API server version 0.10.2\n"
    d = diagnose([head, line + "\n"])
    assert (d.status, d.cause) == ("failed", name)
    assert d.explanation and d.evidence == line.strip()
    for fix in d.fixes:
        assert fix.why and fix.cost


def test_a_secondary_cause_gives_way_to_the_root_cause():
    nccl = BY_NAME["nccl_p2p"].examples[0]
    oom = BY_NAME["cuda_oom"].examples[0]
    assert BY_NAME["nccl_p2p"].secondary
    assert diagnose([nccl + "\n", oom + "\n"]).cause == "cuda_oom"
    assert diagnose([nccl + "\n"]).cause == "nccl_p2p"


def test_a_new_cause_needs_only_its_module_and_the_registry(monkeypatch):
    """Adding a cause: one Cause value, one REGISTRY entry (as driver_too_old and unsupported_gpu were added)."""
    from rentstack.doctor import causes

    line = "OSError: [Errno 28] No space left on device: '/root/.cache/vllm/torch_compile_cache'"
    new = Cause(
        name="disk_full",
        summary="the disk holding vLLM's caches is full",
        triggers=("No space left",),
        match=lambda text: Found("startup", {"errno": 28}) if "No space left" in text else None,
        explain=lambda ctx: f"The disk is full (errno {ctx.details['errno']}).",
        examples=(line,),
    )
    registry = (*causes.REGISTRY, new)
    monkeypatch.setattr(causes, "REGISTRY", registry)
    monkeypatch.setattr(causes, "BY_NAME", {c.name: c for c in registry})
    monkeypatch.setattr(causes, "TRIGGER", re.compile(causes.TRIGGER.pattern + "|" + re.escape(new.triggers[0])))
    d = diagnose(["INFO 01-01 00:00:00 [api_server.py:1] vLLM API server version 0.10.2\n", line + "\n"])
    assert (d.cause, d.phase, d.fixes) == ("disk_full", "startup", [])
    assert d.explanation == "The disk is full (errno 28)."


# The "Actual usage" figures line, in both of its shapes -------------------------------------

_USAGE_028 = ("(EngineCore pid=5475) INFO 09-05 16:32:02 [gpu_worker.py:804] Free memory on device (30.86/31.36 GiB) "
              "on startup. Desired GPU memory utilization is (0.9, 28.22 GiB). Actual usage is 16.7 GiB for consumed "
              "memory (weights + non-torch), 1.19 GiB for peak activation, and 0.58 GiB for CUDAGraph memory. "
              "Replace gpu_memory_utilization config with `--kv-cache-memory=11032338432` (10.27 GiB) to fit into "
              "requested memory, or `--kv-cache-memory=17652813824` (16.44 GiB) to fully utilize gpu memory. "
              "Current kv cache memory in use is 10.34 GiB.")
_USAGE_0102 = ("INFO 09-20 10:00:00 [gpu_worker.py:276] Free memory on device (78.57/79.18 GiB) on startup. Desired "
               "GPU memory utilization is (0.9, 71.26 GiB). Actual usage is 14.99 GiB for weight, 4.76 GiB for peak "
               "activation, 0.13 GiB for non-torch memory, and 0.39 GiB for CUDAGraph memory. Replace "
               "gpu_memory_utilization config with `--kv-cache-memory=55491753575` to fit into requested memory, or "
               "`--kv-cache-memory=63344644096` to fully utilize gpu memory.")


@pytest.mark.parametrize("line,want", [
    (_USAGE_028, {"weights_plus_non_torch_gib": 16.7, "activation_gib": 1.19, "cuda_graph_gib": 0.58,
                  "init_free_gib": 30.86, "requested_gib": 28.22}),
    (_USAGE_0102, {"weights_gib": 14.99, "activation_gib": 4.76, "non_torch_gib": 0.13, "cuda_graph_gib": 0.39,
                   "requested_gib": 71.26}),
], ids=["0.28 consumed", "0.10.2 weight"])
def test_actual_usage_line_figures(line, want):
    # Each number lands in its own figure (the 0.28 shape once crashed the reader: the numbers
    # were read by position, and the label's group came first).
    figs = diagnose([line]).figures
    assert {k: figs.get(k) for k in want} == want


def test_an_offline_run_is_versioned_by_its_engine_banner():
    banner = ("(EngineCore pid=5475) INFO 09-05 16:27:56 [core.py:122] Initializing a V1 LLM engine (v0.28.0) with "
              "config: model='Qwen/Qwen3-30B-A3B-GPTQ-Int4', speculative_config=None")
    figs = diagnose([banner]).figures
    assert (figs["vllm_version"], figs["model"]) == ("0.28.0", "Qwen/Qwen3-30B-A3B-GPTQ-Int4")
    # in a server log it follows the server's own banner, which stays the authority (a different
    # number here only to tell the two apart)
    figs = diagnose(["INFO 09-05 16:27:50 [api_server.py:1] vLLM API server version 0.28.1", banner]).figures
    assert figs["vllm_version"] == "0.28.1"
