"""The planner's inputs besides the model: the card(s) and the vLLM launch parameters.

`LaunchParams` is the one table of memory-relevant vLLM flags: each field carries its vLLM
long flag, its bounds and its doc (`Knob`, in the field's metadata). `from_flags` and
`to_flags` are the only converters between vLLM's flag names and the fields; adding a
memory-relevant flag is one field here (plus its accounting in the planner).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from rentstack.errors import RentstackError
from rentstack.plan.arch import MAX_CONTEXT
from rentstack.plan.cards import Capabilities, capabilities
from rentstack.versions import VLLM_VERSION


@dataclass(frozen=True)
class Hardware:
    """The GPUs one server runs on."""

    gpu_mem_gib: float
    """Total memory of one card as CUDA reports it, GiB (an "80 GB" H100 is 79.19)."""
    gpus: int = 1
    """Cards available to this server."""
    free_mem_gib: float | None = None
    """Free memory per card a vLLM process sees at start, after its own CUDA context (vLLM's
    "initial free memory"; for vGPU slices and shared cards). None = total minus ~0.5 GiB of
    context (~1.6 GiB with TP/PP, NCCL included)."""
    name: str = ""
    """Card name, e.g. "RTX 4090"; looked up in the card table (rentstack.plan.cards)."""
    interconnect: Literal["nvlink", "pcie"] | None = None
    """How the cards reach each other, when the host/tier says: "nvlink" (NVLink/NVSwitch) or
    "pcie" (PCIe, with or without P2P). None = guess from the card name."""

    @classmethod
    def from_gpu(cls, gpu: Any, free_mem_gib: float | None = None, gpus: int | None = None) -> Hardware:
        """From a tier's `gpu` block (rentstack.config.tiers.Gpu): size, count, free memory and
        the interconnect it states (p2p off rules NVLink out; `nvlink` says it outright)."""
        nvlink = getattr(gpu, "nvlink", None)
        if nvlink is None and getattr(gpu, "p2p", True) is False:
            nvlink = False
        free = gpu.free_gib if free_mem_gib is None else free_mem_gib
        return cls(gpu_mem_gib=gpu.memory_gib, gpus=gpus or gpu.count, free_mem_gib=free, name=gpu.name,
                   interconnect=None if nvlink is None else ("nvlink" if nvlink else "pcie"))

    def check(self, labels: Mapping[str, str] | None = None) -> Hardware:
        """Sizes within bounds (a card has (0, 1024] GiB, free memory is (0, total], 1–64 cards);
        RentstackError names the first that is not, as `labels` call it (default: the field)."""
        name = {"gpu_mem_gib": "gpu_mem_gib", "free_mem_gib": "free_mem_gib", "gpus": "gpus", **(labels or {})}
        total = self.gpu_mem_gib
        if isinstance(total, bool) or not isinstance(total, (int, float)) or not 0 < total <= 1024:
            raise RentstackError(f"{name['gpu_mem_gib']} {total} must be > 0 and ≤ 1024 GiB: give the total memory "
                                 "of one card as CUDA reports it, e.g. 23.64 for a 24 GB card "
                                 "(the planner models GPU memory only)")
        free = self.free_mem_gib
        if free is not None and (isinstance(free, bool) or not isinstance(free, (int, float)) or not 0 < free <= total):
            raise RentstackError(f"{name['free_mem_gib']} {free} must be > 0 and ≤ the card's {total:g} GiB: give "
                                 "the memory a process can use per card (nvidia-smi's free column), or leave it out")
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or not 1 <= self.gpus <= 64:
            raise RentstackError(f"{name['gpus']} {self.gpus} must be a whole number from 1 to 64")
        return self

    @property
    def card(self) -> Capabilities:
        return capabilities(self.name)

    @property
    def nvlink(self) -> bool:
        if self.interconnect is not None:
            return self.interconnect == "nvlink"
        return self.card.nvlink


@dataclass(frozen=True)
class Knob:
    """What a LaunchParams field is to vLLM: its flag, its type and its bounds."""

    flag: str
    """vLLM's long flag, kebab-case, without the dashes ('' = rentstack's own input)."""
    kind: type
    doc: str
    """One line: what the value is and where its default comes from (also the CLI help)."""
    lo: float | None = None
    """Smallest allowed value (inclusive unless lo_open)."""
    hi: float | None = None
    """Largest allowed value (inclusive)."""
    lo_open: bool = False
    choices: tuple[Any, ...] = ()
    example: Any = None
    """A sensible value, for the fix in an error message."""
    aliases: tuple[str, ...] = ()
    """Other names accepted by from_flags (short CLI spellings)."""

    @property
    def options(self) -> list[str]:
        """Command-line spellings: the aliases, then vLLM's flag (`rentstack plan` adds these)."""
        return [f"--{name}" for name in (*self.aliases, self.flag) if name]

    def interval(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        fmt = (lambda x: str(int(x))) if self.kind is int else (lambda x: f"{x:g}")
        return f"{'(' if self.lo_open else '['}{fmt(self.lo)}, {fmt(self.hi)}]"


def _knob(default: Any, flag: str, kind: type, doc: str, **bounds: Any) -> Any:
    return field(default=default, metadata={"knob": Knob(flag, kind, doc, **bounds)})


@dataclass(frozen=True)
class LaunchParams:
    """vLLM launch parameters that change memory. None means vLLM's default for that version and card."""

    tp: int = _knob(1, "tensor-parallel-size", int, "GPUs each layer is split over (tensor parallelism).",
                    lo=1, hi=256, example=2, aliases=("tp",))
    pp: int = _knob(1, "pipeline-parallel-size", int, "Stages the layers are split into (pipeline parallelism).",
                    lo=1, hi=256, example=1, aliases=("pp",))
    gpu_memory_utilization: float | None = _knob(
        None, "gpu-memory-utilization", float,
        "Fraction of each card vLLM may use; default: vLLM's for the version (0.9; 0.92 from 0.21; rules_for).",
        lo=0, hi=1, lo_open=True, example=0.9)
    max_model_len: int | None = _knob(None, "max-model-len", int,
                                      "Longest request (prompt + output) in tokens; default the model's limit.",
                                      lo=1, hi=MAX_CONTEXT, example=4096)
    max_num_seqs: int | None = _knob(None, "max-num-seqs", int,
                                     "Concurrent sequences; default: vLLM's for the version and card "
                                     "(256, or 1024 on big cards; Rules.batch_defaults).", lo=1, hi=65536, example=256)
    max_num_batched_tokens: int | None = _knob(None, "max-num-batched-tokens", int,
                                               "Tokens per scheduler step (the profile run's size); default: vLLM's "
                                               "for the version and card (Rules.batch_defaults).", lo=1, hi=MAX_CONTEXT, example=8192)
    dtype: str = _knob("auto", "dtype", str,
                       "Weight/activation dtype: auto, bfloat16, float16, float32 (checked by plan.weights).")
    quantization: str | None = _knob(None, "quantization", str,
                                     "Weight quantization; unset = the checkpoint's quantization_config "
                                     "(checked by plan.weights).")
    kv_cache_dtype: str = _knob("auto", "kv-cache-dtype", str,
                                "KV cache dtype: auto (= model dtype) or fp8 / fp8_e4m3 / fp8_e5m2 (checked by plan.kv).")
    block_size: int | None = _knob(None, "block-size", int, "KV block size in tokens; default 16 on CUDA (64 for FlashMLA).",
                                   choices=(1, 8, 16, 32, 64, 128, 256), example=16)
    enforce_eager: bool = _knob(False, "enforce-eager", bool, "Disable CUDA graphs (less memory, slower decoding).")
    cpu_offload_gb: float = _knob(0.0, "cpu-offload-gb", float,
                                  "GiB of weights per GPU kept in host memory (vLLM multiplies by 1024**3).",
                                  lo=0, hi=4096, example=4)
    vllm_version: str = _knob(VLLM_VERSION, "", str,
                              "vLLM release whose accounting to model (rentstack's input, not a vLLM flag); "
                              "`rentstack plan --tier` defaults to the release this machine's driver and cards run "
                              f"(config/releases.yaml), else {VLLM_VERSION}.", aliases=("vllm-version",))

    def with_(self, **changes: Any) -> LaunchParams:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # --- the flag <-> field converters --------------------------------------------------
    @classmethod
    def flags_to_fields(cls, flags: Mapping[str, Any] | None, *, strict: bool = True,
                        check: bool = True) -> dict[str, Any]:
        """The fields a mapping sets, converted: keys may be vLLM long flags (kebab-case, with or
        without '--'), field names or aliases; keys without memory effect and None values are left out.

        strict: a value of the wrong type is a RentstackError naming the flag (else it is left
        out, for flags read from a log). check: with strict, bounds are checked too."""
        out: dict[str, Any] = {}
        for key, value in (flags or {}).items():
            name = _NAMES.get(str(key).lstrip("-"))
            if name is None or value is None:
                continue
            knob = _KNOBS[name]
            label = str(key).lstrip("-")  # errors name the value as the user wrote it
            try:
                out[name] = _convert(value, knob.kind)
            except (TypeError, ValueError, OverflowError):
                if strict:
                    raise RentstackError(f"{label} {value!r} is not {_KIND_WORDS[knob.kind]}; "
                                         f"{_fix(label, knob)}") from None
                continue
            if strict and check:
                _check(label, out[name], knob)
        return out

    @classmethod
    def from_flags(cls, flags: Mapping[str, Any] | None, *, strict: bool = True, **base: Any) -> LaunchParams:
        """LaunchParams from vLLM flags (see flags_to_fields); `base` fields apply underneath."""
        return cls(**{**base, **cls.flags_to_fields(flags, strict=strict)})

    def to_flags(self, *, quiet: bool = False) -> dict[str, Any]:
        """The values under vLLM's long flag names (kebab-case), in field order; never
        vllm_version. quiet: leave out unset values (None) and those equal to vLLM's default."""
        out: dict[str, Any] = {}
        for f in fields(self):
            knob = f.metadata["knob"]
            value = getattr(self, f.name)
            if not knob.flag:
                continue
            if f.name == "quantization" and not value:
                continue
            if quiet and (value is None or value == f.default):
                continue
            out[knob.flag] = value
        return out

    @classmethod
    def knobs(cls) -> list[tuple[str, Knob]]:
        """(field name, Knob) of every field, in order: the table the CLI and converters read."""
        return list(_KNOBS.items())

    def check(self) -> None:
        """Every set value within its bounds; RentstackError names the first that is not."""
        for f in fields(self):
            value, knob = getattr(self, f.name), f.metadata["knob"]
            if value is None:
                continue
            try:
                value = _convert(value, knob.kind)
            except (TypeError, ValueError, OverflowError):
                raise RentstackError(f"{f.name} {value!r} is not {_KIND_WORDS[knob.kind]}; {_fix(f.name, knob)}") from None
            _check(f.name, value, knob)


_KNOBS: dict[str, Knob] = {f.name: f.metadata["knob"] for f in fields(LaunchParams)}
_NAMES: dict[str, str] = {}
for _name, _k in _KNOBS.items():
    _NAMES.update({key: _name for key in (_name, _k.flag, *_k.aliases) if key})
_KIND_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def _convert(value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, str):
            low = value.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no", ""):
                raise ValueError(value)
            return low in ("true", "1", "yes")
        if isinstance(value, (bool, int)):
            return bool(value)
        raise TypeError(value)
    if kind is str:
        if isinstance(value, (bool, dict, list, tuple)):
            raise TypeError(value)
        return str(value)
    if isinstance(value, bool):
        raise TypeError(value)
    if kind is int:
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(value)
            return int(value)
        return int(str(value).strip().replace("_", "")) if isinstance(value, str) else int(value)
    return float(value)


def _fix(label: str, knob: Knob, in_range: str = "") -> str:
    """The fix part of a message: what to write instead."""
    if knob.kind is bool:
        return f"write {label} as true or false"
    if knob.kind is str:
        return f"write {label} as a string"
    what = in_range or (knob.interval() if knob.choices else f"{_KIND_WORDS[knob.kind]} in {knob.interval()}")
    return f"use {what}" + (f", e.g. {label} {knob.example}" if knob.example is not None else "")


def _check(label: str, value: Any, knob: Knob) -> None:
    if knob.choices:
        if value not in knob.choices:
            raise RentstackError(f"{label} {value} is not {knob.interval()}; {_fix(label, knob, 'one of them')}")
        return
    if knob.lo is None and knob.hi is None:
        return
    x = float(value)
    low_ok = (x > knob.lo if knob.lo_open else x >= knob.lo) if knob.lo is not None else True
    if math.isnan(x) or not low_ok or (knob.hi is not None and not x <= knob.hi):
        raise RentstackError(f"{label} {value} is outside {knob.interval()}; "
                             f"{_fix(label, knob, f'{_KIND_WORDS[knob.kind]} in that range')}")
