"""Read a vLLM server log line by line into facts: figures, the phase reached, the failure.

One pass, constant memory: each line is matched and forgotten; only figures, a few
bounded samples (the first error lines, the innermost traceback frames) are kept. A log
that holds several starts (a container restart loop) is read as its last start: a new
version banner resets what the previous start said.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rentstack.doctor import causes
from rentstack.doctor import patterns as P
from rentstack.doctor.phases import PHASE_ORDER
from rentstack.doctor.reader import strip_controls

MAX_LINE_CHARS = 64 * 1024
"""Longer lines are cut before matching: vLLM's longest line (the args Namespace) is ~6 KB."""


def _num(text: str) -> float:
    return float(text.replace(",", ""))


_FIGURE_LINES: tuple[tuple[re.Pattern[str], dict[str, tuple[int | str, str]], str | None], ...] = (
    # (the line, {figure: (regex group, how)}, the phase such a line shows the start has reached)
    # how: "max" / "min" over the per-worker lines (_set_max, _set_min), or "last": the last line's.
    (P.MODEL_LOADING, {"weights_gib": (1, "max"), "load_seconds": (2, "last")}, "profiling"),
    (P.LOADING_WEIGHTS_V0, {"weights_gib": (1, "max")}, "profiling"),
    (P.GRAPH_CAPTURED, {"graph_capture_seconds": (1, "last"), "cuda_graph_gib": (2, "max")}, "sampler_warmup"),
    (P.INIT_ENGINE, {"init_engine_seconds": (1, "last")}, None),
    (P.AVAILABLE_KV, {"available_kv_gib": (1, "min")}, "kv_cache_allocation"),
    (P.PROFILE_V0_TOTAL, {"total_gpu_gib": (1, "last"), "gpu_memory_utilization": (2, "last"),
                          "requested_gib": (3, "last")}, None),
    (P.PROFILE_V0_SPLIT, {"weights_gib": (1, "max"), "non_torch_gib": (2, "max"), "activation_gib": (3, "max"),
                          "available_kv_gib": (4, "min")}, "kv_cache_allocation"),
    (P.CPU_KV_SPACE, {"available_kv_gib": ("kv", "min")}, "kv_cache_allocation"),
    (P.GRAPH_ESTIMATE, {"cuda_graph_estimate_gib": (1, "max")}, None),
    (P.MAX_MODEL_LEN_USED, {"max_model_len": (1, "last")}, None),
    (P.NUM_GPU_BLOCKS, {"num_gpu_blocks": (1, "min")}, None),
)
"""Lines that hold figures and nothing else to decide, one row each; the others are read in
LogFacts._figures itself."""

_FIGURE_WORDS = ("GiB", "GB", "took", "max model len", "blocks: ")
"""Every line of _FIGURE_LINES holds one of these: most lines are skipped without a search."""

_AS: dict[str, Callable[[float], float]] = {
    "max_model_len": int, "num_gpu_blocks": int,
    # vLLM prints these to the microsecond
    "load_seconds": lambda s: round(s, 2), "init_engine_seconds": lambda s: round(s, 2),
}
"""Figures that are not kept as the float the line prints."""


def _kebab(name: str) -> str:
    return name.strip().replace("_", "-")


@dataclass
class Failure:
    """One recognised failure line: its cause, the phase it names (if any) and what it says."""

    cause: str
    line: str
    phase: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    reached: str = "startup"
    """The last phase the log had reached when this line appeared."""
    frame: str | None = None
    """The phase named by the innermost known frame of the traceback just before it."""


@dataclass
class LogFacts:
    """Everything one pass over a log found; `diagnose` turns it into a verdict and fixes."""

    lines: int = 0
    vllm_lines: int = 0
    binary_lines: int = 0
    starts: int = 0
    phase: str = "startup"
    server_up: bool = False
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    frame_phase: str | None = None
    last_exception: str | None = None
    p2p_warning: bool = False
    engine_failed: bool = False
    tail: deque = field(default_factory=lambda: deque(maxlen=5))
    usage_flags: set = field(default_factory=set)
    """Flags argparse listed in its usage text (for "did you mean" on an unknown flag)."""
    _code_line_next: bool = False

    MAX_FAILURES = 20

    # -- feeding -----------------------------------------------------------------------
    def feed(self, raw: str) -> None:
        """Take one line of the log (with or without its newline)."""
        self.lines += 1
        if "\x00" in raw or raw.count("\ufffd") * 8 > len(raw) > 8:
            self.binary_lines += 1  # NUL bytes, or mostly undecodable bytes
            return
        line = raw[:MAX_LINE_CHARS].rstrip("\r\n")
        line = strip_controls(line)  # colours, and any escape a hostile log holds: never echoed
        if not line.strip():
            return
        if self.vllm_lines < 1000 and (P.LOG_PREFIX.search(line, 0, 200) or P.WORKER_TAG.match(line)
                                       or "vllm" in line.lower()):
            self.vllm_lines += 1  # only needed to tell a vLLM log from another; stop counting early
        self.tail.append(line.strip()[:300])
        if not causes.TRIGGER.search(line):
            self._code_line_next = False
            return
        if "[--" in line and len(self.usage_flags) < 4000:
            self.usage_flags.update(_USAGE_FLAG.findall(line))
        self._banner(line)
        self._figures(line)
        self._milestones(line)
        self._failures(line)

    def _reset_for_new_start(self) -> None:
        """A new banner means the server (re)started: what came before belongs to an older attempt."""
        self.starts += 1
        self.phase = "startup"
        self.server_up = False
        self.figures = {}
        self.failures = []
        self.frame_phase = None
        self.last_exception = None
        self.engine_failed = False

    def _banner(self, line: str) -> None:
        m = P.VERSION_BANNER.search(line) or P.VERSION_LOGO.search(line)
        if m:
            self._reset_for_new_start()
            self.figures["vllm_version"] = m.group("version")
            model = m.groupdict().get("model")
            if model:
                self.figures["model"] = model
            return
        m = P.ENGINE_BANNER.search(line)
        if m:
            # The same start as a server banner before it (no reset); an offline run has only this.
            self.figures.setdefault("vllm_version", m.group("version"))
            self.figures.setdefault("model", m.group("model"))
            return
        m = P.LOGO_MODEL.search(line)
        if m and "model" not in self.figures:
            self.figures["model"] = m.group("model")
            return
        m = P.NON_DEFAULT_ARGS.search(line)
        if m:
            self._launch_args(_parse_dict_args(m.group("args")), complete=False)
            return
        m = P.NAMESPACE_ARGS.search(line)
        if m:
            self._launch_args(_parse_namespace_args(m.group("args")), complete=True)

    def _launch_args(self, args: dict[str, Any], complete: bool) -> None:
        if not args:
            return
        # literal_eval decodes an escaped "\x1b" in the logged text into a real ESC: clean the values too.
        args = {_clean(k): _clean(v) for k, v in args.items()}
        merged = dict(self.figures.get("launch_args") or {})
        merged.update(args)
        self.figures["launch_args"] = merged
        self.figures["launch_args_complete"] = complete
        model = args.get("model") or args.get("model-tag")
        if model and "model" not in self.figures:
            self.figures["model"] = str(model)

    def _set_min(self, key: str, value: float) -> None:
        """Per-worker lines (≤0.11 print one per TP rank): vLLM uses the smallest, so do we."""
        old = self.figures.get(key)
        self.figures[key] = value if old is None else min(old, value)

    def _set_max(self, key: str, value: float) -> None:
        old = self.figures.get(key)
        self.figures[key] = value if old is None else max(old, value)

    def _figure_line(self, line: str) -> bool:
        """Read `line` by the first row of _FIGURE_LINES that matches it; False when none does."""
        for pattern, reads, phase in _FIGURE_LINES:
            m = pattern.search(line)
            if not m:
                continue
            for key, (group, how) in reads.items():
                value = _AS.get(key, float)(_num(m.group(group)))
                if how == "max":
                    self._set_max(key, value)
                elif how == "min":
                    self._set_min(key, value)
                else:
                    self.figures[key] = value
            if phase:
                self._advance(phase)
            return True
        return False

    def _figures(self, line: str) -> None:
        if any(w in line for w in _FIGURE_WORDS) and self._figure_line(line):
            return
        f = self.figures
        if "GiB" in line:
            m = P.PROFILE_V0_RESULTS.search(line)
            if m:
                pairs = {k: float(v) for k, v in P.PROFILE_V0_PAIR.findall(m.group("pairs"))}
                for key, name in (("total_gpu_memory", "total_gpu_gib"),
                                  ("gpu_memory_utilization", "gpu_memory_utilization")):
                    if key in pairs:
                        f[name] = pairs[key]
                if "non_torch_memory" in pairs:
                    self._set_max("non_torch_gib", pairs["non_torch_memory"])
                if "kv_cache_size" in pairs:
                    self._set_min("available_kv_gib", pairs["kv_cache_size"])
                    self._advance("kv_cache_allocation")
                return
        if "tokens" in line:
            # 0.28+ prints both figures on one line, older versions on two.
            size = P.KV_CACHE_SIZE.search(line)
            if size:
                self._set_min("kv_cache_tokens", int(_num(size.group(2))))
                f["kv_cache_device"] = size.group("device")
                self._advance("kv_cache_allocation")
            conc = P.MAX_CONCURRENCY.search(line)
            if conc:
                f["max_concurrency_tokens"] = int(_num(conc.group(1)))
                self._set_min("max_concurrency", _num(conc.group(2)))
            if size or conc:
                return
        if "--kv-cache-memory=" in line:
            m = P.FREE_MEMORY_INFO.search(line)
            if m:
                f["init_free_gib"] = float(m.group("free"))
                f["total_gpu_gib"] = float(m.group("total"))
                f["gpu_memory_utilization"] = float(m.group("util"))
                f["requested_gib"] = float(m.group("requested"))
            m = P.ACTUAL_USAGE.search(line)
            if m:
                if m.group("what") == "weight":
                    self._set_max("weights_gib", _num(m.group("first")))
                    if m.group("non_torch"):
                        self._set_max("non_torch_gib", _num(m.group("non_torch")))
                else:
                    f["weights_plus_non_torch_gib"] = _num(m.group("first"))
                self._set_max("activation_gib", _num(m.group("activation")))
                self._set_max("cuda_graph_gib", _num(m.group("graphs")))
            m = P.KV_CACHE_MEMORY_HINT.search(line)
            if m:
                f["kv_cache_memory_fit_bytes"] = int(m.group("fit"))
                f["kv_cache_memory_full_bytes"] = int(m.group("full"))

    def _advance(self, phase: str) -> None:
        """Move forward only: a late per-worker line must not pull the phase back."""
        if PHASE_ORDER.index(phase) > PHASE_ORDER.index(self.phase):
            self.phase = phase

    def _milestones(self, line: str) -> None:
        if P.START_LOADING.search(line):
            self._advance("weight_loading")
        elif P.PROFILING_CG.search(line):
            self._advance("profiling")
        elif P.CAPTURING_GRAPHS.search(line):
            self._advance("cuda_graph_capture")
        elif P.SERVER_UP.search(line):
            self._advance("runtime")
            self.server_up = True
        if P.P2P_WARNING.search(line):
            self.p2p_warning = True

    def _fail(self, cause: str, line: str, phase: str | None = None, **details: Any) -> None:
        if len(self.failures) < self.MAX_FAILURES:
            self.failures.append(Failure(cause, line.strip()[:2000], phase, details, self.phase, self.frame_phase))

    def _failures(self, line: str) -> None:
        if self._code_line_next:
            # The source line under a traceback frame (`raise ValueError("No available memory ...`)
            # quotes the message; the exception line that follows is the evidence.
            self._code_line_next = False
            return
        m = P.FRAME.search(line)
        if m:
            self._code_line_next = True
            for func, phase in P.FRAME_PHASES:
                if m.group("func") == func:
                    self.frame_phase = phase  # innermost recognised frame wins
                    break
            return
        if P.TRACEBACK_START.search(line):
            self.frame_phase = None
            return
        m = P.EXCEPTION_LINE.match(line.strip())
        if m:
            self.last_exception = line.strip()[:500]
        if P.ENGINE_FAILED.search(line):
            self.engine_failed = True
            return
        self._match_failure(line)

    def _match_failure(self, line: str) -> None:
        found = causes.match_failure(line)
        if found:
            cause, what = found
            self._fail(cause.name, line, what.phase, **what.details)


_USAGE_FLAG = re.compile(r"\[--([a-z0-9][a-z0-9-]*)")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return strip_controls(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_clean(v) for v in value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return text.strip().strip("'\"")


def _parse_dict_args(text: str) -> dict[str, Any]:
    """`non-default args: {'model': 'x', 'max_model_len': 16000}` → {'model': 'x', 'max-model-len': 16000}."""
    value = _literal(text)
    if isinstance(value, dict):
        return {_kebab(str(k)): v for k, v in value.items()}
    # Values vLLM prints with repr() that are not literals (enums, objects): take key: scalar pairs.
    out: dict[str, Any] = {}
    for m in re.finditer(r"'(\w+)':\s*('(?:[^'\\]|\\.)*'|-?[0-9.e+-]+|True|False|None)", text):
        out[_kebab(m.group(1))] = _literal(m.group(2))
    return out


_NS_ITEM = re.compile(
    r"(?:^|,\s*)(\w+)=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\[[^\]]*\]|\{[^}]*\}|[^,()\[\]{}]+(?:\([^)]*\))?)"
)


def _parse_namespace_args(text: str) -> dict[str, Any]:
    """`Namespace(host=None, port=8000, model='x', ...)` → the flags that are set (not None)."""
    out: dict[str, Any] = {}
    for m in _NS_ITEM.finditer(text):
        value = _literal(m.group(2))
        if value is None:
            continue
        out[_kebab(m.group(1))] = value
    return out
