"""From two reads of /metrics to the numbers `rentstack top` shows, and from those to text.

Pure: `build_view(previous, current)` turns two snapshots into a `View` (rates from counter
deltas, latency percentiles from histogram bucket deltas, so they describe the last interval,
not the server's lifetime); `render(view)` turns a View into the lines of one frame. The loop
that reads the endpoint and redraws is in `rentstack.top.live`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rentstack.top.gpu import GpuLoad
from rentstack.top.names import METRICS, resolve
from rentstack.top.prometheus import Scrape


@dataclass(frozen=True)
class Snapshot:
    """One read: when (monotonic seconds), what /metrics said, and the GPUs (empty without one)."""

    at: float
    scrape: Scrape
    gpus: tuple[GpuLoad, ...] = ()


@dataclass(frozen=True)
class View:
    """What one frame shows; None = the server does not expose it or no interval has passed yet."""

    model: str | None
    interval_s: float | None
    """Seconds between the two snapshots the rates and percentiles describe (None: first read)."""
    kv_cache_pct: float | None
    running: int | None
    waiting: int | None
    prompt_tokens_per_s: float | None
    generation_tokens_per_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    itl_p50_s: float | None
    itl_p95_s: float | None
    latency_requests: int
    """Requests that got their first token in the interval (what the TTFT percentiles rest on)."""
    preemptions_total: int | None
    preemptions_delta: int | None
    requests_finished_total: int | None
    gpus: tuple[GpuLoad, ...] = ()
    missing: tuple[str, ...] = field(default=())
    """Figures this server exposes under none of the names in rentstack.top.names.METRICS."""


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile on cumulative (upper bound, count) buckets: linear inside the
    bucket that holds the rank; the +Inf bucket answers with the highest finite bound."""
    if not buckets:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            inside = count - lower_count
            if inside <= 0:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / inside
        lower_bound, lower_count = bound, count
    return lower_bound


def bucket_delta(now: list[tuple[float, float]], before: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Per-bound count increase; a counter that went down (the server restarted) counts from zero."""
    old = dict(before)
    delta = [(bound, count - old.get(bound, 0.0)) for bound, count in now]
    if any(d < 0 for _, d in delta):
        return list(now)
    return delta


def _rate(now: float | None, before: float | None, seconds: float | None) -> float | None:
    if now is None or before is None or not seconds or seconds <= 0:
        return None
    grown = now - before
    return (now if grown < 0 else grown) / seconds


def _int(value: float | None) -> int | None:
    return None if value is None else int(round(value))


def build_view(previous: Snapshot | None, current: Snapshot) -> View:
    """The frame for `current`; rates and percentiles need `previous` (None on the first read)."""
    now = current.scrape
    before = previous.scrape if previous is not None else None
    seconds = (current.at - previous.at) if previous is not None else None
    names = {figure: resolve(now, figure) for figure in METRICS}

    def total(figure: str, scrape: Scrape | None) -> float | None:
        name = names[figure]
        return scrape.total(name) if (scrape is not None and name) else None

    def latency(figure: str) -> tuple[float | None, float | None, int]:
        name = names[figure]
        if not name or before is None:
            return None, None, 0
        window = bucket_delta(now.buckets(name), before.buckets(name))
        count = int(window[-1][1]) if window else 0
        return quantile(0.5, window), quantile(0.95, window), count

    kv_name = names["kv_cache_usage"]
    kv = now.maximum(kv_name) if kv_name else None  # with several engines, the fullest one limits
    ttft50, ttft95, n = latency("ttft")
    itl50, itl95, _ = latency("itl")
    pre_now = total("preemptions", now)
    pre_before = total("preemptions", before)
    model = None
    for figure in ("running", "generation_tokens"):
        if names[figure]:
            found = now.label_values(names[figure], "model_name")
            if found:
                model = found[0]
                break
    return View(
        model=model,
        interval_s=seconds,
        kv_cache_pct=None if kv is None else 100.0 * kv,
        running=_int(total("running", now)),
        waiting=_int(total("waiting", now)),
        prompt_tokens_per_s=_rate(total("prompt_tokens", now), total("prompt_tokens", before), seconds),
        generation_tokens_per_s=_rate(total("generation_tokens", now), total("generation_tokens", before), seconds),
        ttft_p50_s=ttft50, ttft_p95_s=ttft95, itl_p50_s=itl50, itl_p95_s=itl95, latency_requests=n,
        preemptions_total=_int(pre_now),
        preemptions_delta=(None if pre_now is None or pre_before is None else max(0, _int(pre_now - pre_before) or 0)),
        requests_finished_total=_int(total("requests_finished", now)),
        gpus=current.gpus,
        missing=tuple(f for f, n_ in names.items() if n_ is None),
    )


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if value is None else fmt.format(value)


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f} ms"


def _bar(pct: float | None, width: int = 20) -> str:
    if pct is None:
        return "[" + " " * width + "]"
    filled = max(0, min(width, round(pct / 100 * width)))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def render(view: View, endpoint: str = "", clock: str = "") -> list[str]:
    """The lines of one frame (plain text; the loop adds the screen control)."""
    head = "rentstack top" + (f" — {endpoint}" if endpoint else "") + (f" — {view.model}" if view.model else "")
    window = f"last {view.interval_s:.1f} s" if view.interval_s else "first read: rates need a second read"
    lines = [head + (f"   {clock}" if clock else ""), ""]
    lines.append(f"KV cache   {_bar(view.kv_cache_pct)} {_num(view.kv_cache_pct)} %")
    lines.append(f"requests   running {_num(view.running, '{}')}   waiting {_num(view.waiting, '{}')}   "
                 f"finished {_num(view.requests_finished_total, '{}')}")
    lines.append(f"tokens/s   prompt {_num(view.prompt_tokens_per_s)}   generation {_num(view.generation_tokens_per_s)}"
                 f"   ({window})")
    lines.append(f"TTFT       p50 {_ms(view.ttft_p50_s)}   p95 {_ms(view.ttft_p95_s)}"
                 f"   ({view.latency_requests} requests in the window)")
    lines.append(f"ITL        p50 {_ms(view.itl_p50_s)}   p95 {_ms(view.itl_p95_s)}")
    lines.append(f"preempted  {_num(view.preemptions_total, '{}')} total"
                 + (f", +{view.preemptions_delta} in the window" if view.preemptions_delta else ""))
    if view.gpus:
        for g in view.gpus:
            mem = (f"{_num(g.memory_used_mib, '{:.0f}')} / {_num(g.memory_total_mib, '{:.0f}')} MiB"
                   if g.memory_total_mib else "memory –")
            lines.append(f"GPU {g.index}      {g.name}: util {_num(g.utilization_pct, '{:.0f}')} %   {mem}")
    else:
        lines.append("GPU        none here (nvidia-smi absent or no card)")
    if view.missing:
        lines.append(f"not exposed by this server: {', '.join(view.missing)}")
    return lines
