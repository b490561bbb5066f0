"""The load sweep as values: settings, the driver's input, result rows, table, prediction.

Pure: no I/O. rentstack.bench.run feeds it and writes what it returns.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

PERCENTILES = (50, 95, 99)
"""Latency percentiles vLLM's benchmark reports (--metric-percentiles)."""
METRICS = ("ttft", "tpot", "itl", "e2el")
"""Latencies it reports them for: time to first token, per output token, between tokens, end to end."""


class BenchSettings(BaseModel):
    """One sweep: the same random workload at each concurrency level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: tuple[int, ...] = Field((1, 2, 4, 8), min_length=1, max_length=16)
    """Concurrency levels (vLLM's --max-concurrency), each 1-1024; run in ascending order."""
    input_len: int = Field(128, ge=1, le=131072)
    """Prompt tokens per request (random dataset)."""
    output_len: int = Field(32, ge=1, le=32768)
    """Generated tokens per request; EOS is ignored so every request produces exactly this many."""
    rounds: int = Field(2, ge=1, le=100)
    """Requests per level = rounds x level (at least min_prompts): every slot is refilled `rounds` times."""
    min_prompts: int = Field(4, ge=1, le=10000)
    """Fewest requests at any level, so the low levels still give percentiles."""
    seed: int = Field(0, ge=0)
    """Seed of the random prompts: two runs send the same workload."""

    @field_validator("concurrency")
    @classmethod
    def _levels(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [c for c in value if not 1 <= c <= 1024]
        if bad:
            raise ValueError(f"concurrency level {bad[0]} is out of range: use 1-1024")
        return tuple(sorted(set(value)))

    def prompts(self, level: int) -> int:
        return max(self.min_prompts, self.rounds * level)

    @property
    def request_tokens(self) -> int:
        return self.input_len + self.output_len


def parse_levels(text: str) -> tuple[int, ...]:
    """'1,2,4,8' -> (1, 2, 4, 8); one line naming the bad item otherwise (ValueError)."""
    levels = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise ValueError(f"concurrency {text!r}: {item!r} is not a positive whole number; write e.g. 1,2,4,8")
        levels.append(int(item))
    return tuple(levels)


def driver_input(settings: BenchSettings, *, base_url: str, model: str, tokenizer: str, out: str) -> dict:
    """The JSON the in-image driver (rentstack/bench/driver.py) runs: vLLM's own benchmark flags."""
    flags = [
        "--backend", "openai", "--base-url", base_url, "--endpoint", "/v1/completions",
        "--model", model, "--tokenizer", tokenizer,
        "--dataset-name", "random", "--random-input-len", str(settings.input_len),
        "--random-output-len", str(settings.output_len), "--ignore-eos",
        "--seed", str(settings.seed), "--request-rate", "inf", "--disable-tqdm",
        "--percentile-metrics", ",".join(METRICS),
        "--metric-percentiles", ",".join(str(p) for p in PERCENTILES),
    ]
    return {"levels": list(settings.concurrency), "prompts": [settings.prompts(c) for c in settings.concurrency],
            "flags": flags, "out": out}


@dataclass(frozen=True)
class Row:
    """One concurrency level's result, in the units the table and plot show."""

    concurrency: int
    completed: int
    failed: int
    duration_s: float
    requests_per_s: float
    output_tokens_per_s: float
    total_tokens_per_s: float
    peak_concurrent: int
    ttft_p50_ms: float
    ttft_p95_ms: float
    ttft_p99_ms: float
    itl_p50_ms: float
    itl_p95_ms: float
    itl_p99_ms: float
    tpot_p50_ms: float
    e2el_p50_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


def row_from_result(result: dict) -> Row:
    """One vLLM benchmark result (the dict `vllm.benchmarks.serve.main` returns) as a Row."""
    def f(key: str) -> float:
        value = result.get(key)
        return round(float(value), 3) if value is not None else math.nan

    return Row(
        concurrency=int(result["max_concurrency"]), completed=int(result["completed"]),
        failed=int(result.get("failed", 0)), duration_s=f("duration"),
        requests_per_s=f("request_throughput"), output_tokens_per_s=f("output_throughput"),
        total_tokens_per_s=f("total_token_throughput"),
        peak_concurrent=int(result.get("max_concurrent_requests") or 0),
        ttft_p50_ms=f("p50_ttft_ms"), ttft_p95_ms=f("p95_ttft_ms"), ttft_p99_ms=f("p99_ttft_ms"),
        itl_p50_ms=f("p50_itl_ms"), itl_p95_ms=f("p95_itl_ms"), itl_p99_ms=f("p99_itl_ms"),
        tpot_p50_ms=f("p50_tpot_ms"), e2el_p50_ms=f("p50_e2el_ms"),
    )


def rows_from_results(results: list[dict]) -> list[Row]:
    return sorted((row_from_result(r) for r in results), key=lambda r: r.concurrency)


@dataclass(frozen=True)
class Prediction:
    """How many requests of this sweep's size the planner expects the server to run at once."""

    concurrency: int
    limited_by: str            # "max-num-seqs" | "kv-cache"
    why: str


def predicted_concurrency(max_num_seqs: int, kv_tokens: int, request_tokens: int, block_size: int = 16) -> Prediction:
    """min(max-num-seqs, whole requests the KV cache holds); vLLM allocates whole blocks."""
    per_request = math.ceil(request_tokens / block_size) * block_size
    by_kv = kv_tokens // per_request
    if max_num_seqs <= by_kv:
        return Prediction(max_num_seqs, "max-num-seqs",
                          f"max-num-seqs {max_num_seqs} (the KV cache of {kv_tokens:,} tokens holds {by_kv} "
                          f"requests of {request_tokens} tokens)")
    return Prediction(by_kv, "kv-cache",
                      f"the KV cache of {kv_tokens:,} tokens holds {by_kv} requests of {request_tokens} tokens "
                      f"(max-num-seqs {max_num_seqs})")


_COLUMNS = (
    ("conc", "concurrency", "{:d}"), ("done", "completed", "{:d}"), ("fail", "failed", "{:d}"),
    ("req/s", "requests_per_s", "{:.2f}"), ("out tok/s", "output_tokens_per_s", "{:.1f}"),
    ("TTFT p50", "ttft_p50_ms", "{:.0f}"), ("TTFT p95", "ttft_p95_ms", "{:.0f}"),
    ("ITL p50", "itl_p50_ms", "{:.1f}"), ("ITL p95", "itl_p95_ms", "{:.1f}"),
    ("peak", "peak_concurrent", "{:d}"),
)


def table(rows: list[Row], prediction: Prediction | None = None) -> str:
    """A fixed-width text table (latencies in ms), the predicted level marked with '<'."""
    header = [name for name, _, _ in _COLUMNS]
    body = [[fmt.format(getattr(r, attr)) for _, attr, fmt in _COLUMNS] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    for r, line in zip(rows, body):
        mark = "  < predicted max" if prediction and r.concurrency == prediction.concurrency else ""
        lines.append("  ".join(c.rjust(w) for c, w in zip(line, widths)) + mark)
    lines.append("latencies in ms; out tok/s = generated tokens per second over all requests; "
                 "peak = most requests in flight at once")
    if prediction:
        lines.append(f"planner: at most {prediction.concurrency} requests at once: {prediction.why}")
    return "\n".join(lines)
