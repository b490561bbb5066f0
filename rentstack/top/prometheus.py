"""A parser for Prometheus' text exposition format (0.0.4), as vLLM's /metrics serves it.

Pure: text in, a `Scrape` out. Only what `rentstack top` reads is modelled — samples with their
labels and the families' types — and every line is bounded, so a hostile or broken endpoint
cannot make it hold more than it was sent. Lines that do not parse are counted, not fatal: a
monitor should show what it can.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

MAX_LINE = 64 * 1024
"""Longer lines are skipped: vLLM's longest (an info gauge with every config label) is ~2 KB."""

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^(?P<name>{_NAME})(?:\{{(?P<labels>.*)\}})?\s+(?P<value>\S+)(?:\s+-?\d+)?\s*$")
_LABEL = re.compile(r'\s*(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*(?:,|$)')
_TYPE = re.compile(rf"^#\s+TYPE\s+(?P<name>{_NAME})\s+(?P<type>\w+)\s*$")
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)


@dataclass
class Scrape:
    """One read of /metrics: samples by sample name (histograms keep their _bucket/_sum/_count names)."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    """Family name → counter | gauge | histogram | summary | untyped (from the # TYPE lines)."""
    bad_lines: int = 0

    def has(self, name: str) -> bool:
        return bool(self.samples.get(name))

    def total(self, name: str) -> float | None:
        """The sum over every label set (engines, models) of a counter or gauge; None when absent."""
        values = [s.value for s in self.samples.get(name, ()) if not math.isnan(s.value)]
        return sum(values) if values else None

    def maximum(self, name: str) -> float | None:
        values = [s.value for s in self.samples.get(name, ()) if not math.isnan(s.value)]
        return max(values) if values else None

    def buckets(self, name: str) -> list[tuple[float, float]]:
        """A histogram's cumulative buckets [(upper bound, count)], summed over label sets, by bound."""
        by_le: dict[float, float] = {}
        for s in self.samples.get(f"{name}_bucket", ()):
            le = s.label("le")
            try:
                bound = float(le) if le is not None else math.nan
            except ValueError:
                continue
            if not math.isnan(bound):
                by_le[bound] = by_le.get(bound, 0.0) + s.value
        return sorted(by_le.items())

    def label_values(self, name: str, key: str) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.samples.get(name, ()):
            value = s.label(key)
            if value is not None:
                seen.setdefault(value)
        return list(seen)


def _value(text: str) -> float | None:
    try:
        return float(text)  # accepts NaN, +Inf, -Inf, 1e3
    except ValueError:
        return None


def _labels(text: str) -> tuple[tuple[str, str], ...] | None:
    out = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            return None
        raw = m.group("value")
        value = re.sub(r"\\[\\\"n]", lambda e: _UNESCAPE[e.group(0)], raw) if "\\" in raw else raw
        out.append((m.group("key"), value))
        pos = m.end()
    return tuple(out)


def parse(text: str) -> Scrape:
    """Parse the exposition text of one scrape."""
    scrape = Scrape()
    for line in text.splitlines():
        if not line or line.isspace():
            continue
        if len(line) > MAX_LINE:
            scrape.bad_lines += 1
            continue
        if line.startswith("#"):
            m = _TYPE.match(line)
            if m:
                scrape.types[m.group("name")] = m.group("type")
            continue
        m = _SAMPLE.match(line)
        labels = _labels(m.group("labels") or "") if m else None
        value = _value(m.group("value")) if m else None
        if m is None or labels is None or value is None:
            scrape.bad_lines += 1
            continue
        scrape.samples.setdefault(m.group("name"), []).append(Sample(m.group("name"), labels, value))
    return scrape
