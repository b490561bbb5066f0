"""Which vLLM metric holds each number `rentstack top` shows, across vLLM versions: one table.

vLLM renames metrics with a deprecation period (docs: "Metrics → deprecation policy"): the new
name appears beside the old one, the old one is hidden behind --show-hidden-metrics-for-version
one minor release later and removed the release after. A server therefore exposes one name or
both; the view takes the newest name this scrape has. Counters are exposed with prometheus
_client's `_total` suffix; histograms as `<name>_bucket` / `_sum` / `_count`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rentstack.top.prometheus import Scrape


@dataclass(frozen=True)
class Name:
    metric: str
    since: str
    """First vLLM version that exposes it (as far as the cited source says)."""
    until: str | None = None
    """Last version that exposes it by default; None = still current (0.32)."""
    source: str = ""


METRICS: dict[str, tuple[Name, ...]] = {
    # newest name first
    "kv_cache_usage": (
        Name("vllm:kv_cache_usage_perc", "0.10", None,
             "added by vllm#18354; a 0.10.0 /metrics shows both names (production-stack#617)"),
        Name("vllm:gpu_cache_usage_perc", "0.4", "0.10",
             "deprecated by vllm#18354, no longer emitted by default after (inference-perf#277)"),
    ),
    "running": (Name("vllm:num_requests_running", "0.4"),),
    "waiting": (Name("vllm:num_requests_waiting", "0.4"),),
    "prompt_tokens": (Name("vllm:prompt_tokens_total", "0.4"),),
    "generation_tokens": (Name("vllm:generation_tokens_total", "0.4"),),
    "preemptions": (Name("vllm:num_preemptions_total", "0.4"),),
    "requests_finished": (Name("vllm:request_success_total", "0.4"),),  # every finish reason, errors too
    "ttft": (Name("vllm:time_to_first_token_seconds", "0.4"),),
    "itl": (
        Name("vllm:inter_token_latency_seconds", "0.11", None, "vllm#24110: TPOT renamed ITL from 0.11"),
        Name("vllm:time_per_output_token_seconds", "0.4", "0.12", "hidden in 0.12, removed in 0.13 (vllm#32661)"),
    ),
}
"""Logical figure → the metric names that have held it, newest first."""

HISTOGRAMS = ("ttft", "itl")


def resolve(scrape: Scrape, figure: str) -> str | None:
    """The metric name that holds `figure` in this scrape (newest first), or None when none does."""
    for name in METRICS[figure]:
        probe = f"{name.metric}_bucket" if figure in HISTOGRAMS else name.metric
        if scrape.has(probe):
            return name.metric
    return None
