"""The sweep as a PNG: throughput (top) and latency percentiles (bottom) vs concurrency.

matplotlib (PyPI) with the Agg backend: no display needed. The planner's predicted
maximum concurrency is a dashed vertical line on both panels.
"""

from __future__ import annotations

from pathlib import Path

from rentstack.bench.sweep import Prediction, Row
from rentstack.errors import RentstackError


def plot(rows: list[Row], path: Path, *, title: str, prediction: Prediction | None = None,
         output_len: int = 0) -> Path:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter
    except ImportError:
        raise RentstackError("the bench plot needs matplotlib: pip install 'rentstack[bench]' "
                             "(make venv installs it)") from None

    xs = [r.concurrency for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.4), sharex=True, dpi=90)
    fig.suptitle(title, fontsize=11)

    top.plot(xs, [r.output_tokens_per_s for r in rows], "o-", color="tab:blue", label="output tokens/s")
    top.set_ylabel("output tokens/s")
    top.set_ylim(0, max([r.output_tokens_per_s for r in rows] + [1.0]) * 1.2)   # room for the labels
    top.grid(True, alpha=0.3)
    # Every request generates the same number of tokens (EOS ignored), so requests/s is the same
    # curve on another scale: a second axis, not a second line hiding the first.
    if output_len:
        right = top.secondary_yaxis("right", functions=(lambda t: t / output_len, lambda r: r * output_len))
        right.set_ylabel("requests/s")
    for x, r in zip(xs, rows):
        top.annotate(f"{r.output_tokens_per_s:.0f}", (x, r.output_tokens_per_s), textcoords="offset points",
                     xytext=(0, 6), ha="center", fontsize=8, color="tab:blue")

    for attr, style, label in (("ttft_p50_ms", "o-", "TTFT p50"), ("ttft_p95_ms", "o:", "TTFT p95"),
                               ("itl_p50_ms", "s-", "ITL p50"), ("itl_p95_ms", "s:", "ITL p95")):
        color = "tab:red" if attr.startswith("ttft") else "tab:purple"
        bottom.plot(xs, [getattr(r, attr) for r in rows], style, color=color, label=label)
    bottom.set_yscale("log")
    bottom.set_ylabel("latency (ms, log scale)")
    bottom.grid(True, which="both", alpha=0.3)
    bottom.set_xlabel("concurrent requests (client side)")
    bottom.set_xscale("log", base=2)
    bottom.xaxis.set_major_locator(FixedLocator(xs))
    bottom.xaxis.set_major_formatter(ScalarFormatter())
    bottom.xaxis.set_minor_locator(NullLocator())

    if prediction is not None:
        for ax in (top, bottom):
            ax.axvline(prediction.concurrency, color="0.35", linestyle="--", linewidth=1)
        top.annotate(f"planner: max {prediction.concurrency} at once\n({prediction.limited_by})",
                     xy=(prediction.concurrency, 0.04), xycoords=("data", "axes fraction"),
                     xytext=(6, 0), textcoords="offset points", fontsize=8, color="0.25")
    top.legend(loc="upper left", fontsize=8)
    bottom.legend(loc="upper left", fontsize=8, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
