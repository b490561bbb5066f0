"""Hardware tiers: stacks/<name>.yaml, validated.

A tier says what the card is (count, memory, whether GPUs can talk peer-to-peer) and
which vLLM settings suit it. Memory-related vLLM values left out of a tier are chosen
by the planner at render time; values written here are checked by it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rentstack.errors import RentstackError, one_of
from rentstack.config.errors import explain
from rentstack.config.vllm_args import check_vllm_settings
from rentstack.safe import NAME_RE, _bad_char, check_name, check_text, load_yaml

STACKS_DIR = Path(__file__).resolve().parents[2] / "stacks"
"""Tier files live at the repository's top level, next to compose.yaml."""

_FORBID = ConfigDict(extra="forbid", frozen=True)

# Tier values end up in compose.yaml, env files, directory names and terminal output; the
# validators below keep each to what its place can carry (safe.py has the same rules).
_NAME_FIX = "use 1-100 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_SHM_SIZE = re.compile(r"[0-9]{1,6}(\.[0-9]+)?[bkmg]b?", re.ASCII | re.IGNORECASE)


def _plain_text(value: str) -> str:
    """For pydantic validators: refuse control characters (a newline in a description used
    to add lines to compose.yaml) with a ValueError, so the error names the key."""
    bad = _bad_char(value)
    if bad:
        raise ValueError(f"contains a {bad[1]} at position {bad[0]}: remove it "
                         "(control characters and line breaks are not allowed)")
    return value


def _name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError(f"not a valid name: {_NAME_FIX}")
    return value


class Gpu(BaseModel):
    """The cards of a tier, as the host reports them."""

    model_config = _FORBID
    name: str = Field("", description="Card name as nvidia-smi prints it; keys calibration data.")
    count: int = Field(1, ge=0, le=16, description="Number of cards (0 for the CPU tier).")
    memory_gib: float = Field(0.0, ge=0, le=1024, description="Total memory per card, GiB.")
    free_gib: float | None = Field(
        None, gt=0, le=1024,
        description="Memory a process may really use per card (vGPU slice or shared card); "
                    "default: all of memory_gib.")
    p2p: bool = Field(True, description="Cards reach each other peer-to-peer (NVLink or PCIe P2P); "
                                        "false also tells the planner there is no NVLink.")
    nvlink: bool | None = Field(
        None, description="Cards are joined by NVLink/NVSwitch (vLLM's custom all-reduce then takes ~2 GiB per "
                          "rank); default: the card table's guess from the name (rentstack.plan.cards).")

    @field_validator("name")
    @classmethod
    def _text(cls, value: str) -> str:
        return _plain_text(value)

    @model_validator(mode="after")
    def _free_within_total(self) -> Gpu:
        if self.free_gib is not None and self.free_gib > self.memory_gib:
            raise ValueError(f"free_gib {self.free_gib} exceeds memory_gib {self.memory_gib}: "
                             "lower it to at most the card's memory")
        if self.nvlink and not self.p2p:
            raise ValueError("nvlink true needs p2p true (NVLink is peer-to-peer): drop one of them")
        return self


class Health(BaseModel):
    """How long the container may take to load weights before the healthcheck counts."""

    model_config = _FORBID
    start_period_s: int = Field(300, ge=10, le=7200, description="Healthcheck grace period, seconds.")


class Preset(BaseModel):
    """A named deployment recorded on this tier (e.g. the seed that was measured)."""

    model_config = _FORBID
    description: str = Field("", description="What this preset is and where its numbers come from.")
    model: str | None = Field(None, description="Catalog model the preset serves.")
    gpu: dict[str, float | int | bool | str] = Field(
        default_factory=dict, description="Overrides of the tier's gpu block.")
    vllm: dict[str, object] = Field(default_factory=dict, description="vLLM settings, long flag names.")
    measured: str = Field("", description="What was measured on the real card, for the record.")

    @field_validator("description", "measured", "model")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return _plain_text(value) if isinstance(value, str) else value


class Tier(BaseModel):
    """One hardware tier: stacks/<name>.yaml."""

    model_config = _FORBID
    name: str = Field(description="Tier name; the compose profile and `make up TIER=` value.")
    description: str = Field(description="Who this tier is for, one or two sentences.")
    accelerator: Literal["gpu", "cpu"] = Field("gpu", description="gpu: official CUDA image; cpu: local CPU build.")
    gpu: Gpu = Field(default_factory=lambda: Gpu(count=0), description="The cards (none for cpu).")
    hosts: int = Field(1, ge=1, le=16, description="Hosts one server spans. Above 1: one vLLM over several hosts "
                                                   "on Ray, tensor parallel inside a host and pipeline parallel "
                                                   "across hosts; gpu.count is then per host.")
    model: str = Field(description="Default catalog model for this tier (small enough to fit).")
    shm_size: str = Field("2gb", description="Shared memory for the container (CPU tier; GPU tiers use ipc: host).")
    health: Health = Field(default_factory=Health)
    env: dict[str, str] = Field(default_factory=dict, description="Extra non-secret container environment.")
    vllm: dict[str, object] = Field(default_factory=dict, description="vLLM settings, long flag names.")
    presets: dict[str, Preset] = Field(default_factory=dict, description="Named deployments on this tier.")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _name(value)

    @field_validator("description", "model")
    @classmethod
    def _text(cls, value: str) -> str:
        return _plain_text(value)

    @field_validator("shm_size")
    @classmethod
    def _shm(cls, value: str) -> str:
        if not _SHM_SIZE.fullmatch(value):
            raise ValueError("write a size like 2gb, 512m or 1g")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not _ENV_NAME.fullmatch(key):
                raise ValueError(f"variable name {key!r} is not valid: use letters, digits and '_'")
            _plain_text(item)
        return value

    @field_validator("presets")
    @classmethod
    def _preset_names(cls, value: dict[str, Preset]) -> dict[str, Preset]:
        for key in value:
            if not NAME_RE.fullmatch(key):
                raise ValueError(f"preset name {key!r} is not valid: {_NAME_FIX}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Tier:
        if self.accelerator == "gpu" and (self.gpu.count < 1 or self.gpu.memory_gib <= 0):
            raise ValueError("a gpu tier needs gpu.count >= 1 and gpu.memory_gib > 0")
        if self.accelerator == "cpu" and self.gpu.count:
            raise ValueError("the cpu tier has no GPUs: set gpu.count to 0 or drop the gpu block")
        if self.hosts > 1 and self.accelerator != "gpu":
            raise ValueError(f"hosts {self.hosts}: only GPU tiers span hosts (vLLM's CPU build has no Ray executor)")
        return self

    @property
    def total_gpus(self) -> int:
        """Cards one server uses, over all its hosts."""
        return self.gpu.count * self.hosts

    def with_preset(self, name: str | None) -> Tier:
        """This tier with a preset's gpu and vllm overrides applied (None: unchanged)."""
        if not name:
            return self
        check_text("--preset", name)
        if name not in self.presets:
            raise one_of(f"preset for tier {self.name}", name, self.presets)
        preset = self.presets[name]
        data = self.model_dump()
        data["gpu"].update(preset.gpu)
        data["vllm"] = {**self.vllm, **preset.vllm}
        if preset.model:
            data["model"] = preset.model
        return _validate(data, f"stacks/{self.name}.yaml preset {name}")


def list_tiers(stacks_dir: Path = STACKS_DIR) -> list[str]:
    """Names of the shipped tiers (one YAML file each, models.yaml excluded)."""
    return sorted(p.stem for p in stacks_dir.glob("*.yaml") if p.stem != "models" and NAME_RE.fullmatch(p.stem))


def _validate(data: object, where: str) -> Tier:
    if not isinstance(data, dict):
        raise RentstackError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    try:
        tier = Tier.model_validate(data)
    except ValidationError as exc:
        raise explain(exc, Tier, where) from None
    check_vllm_settings(tier.vllm, where=f"{where}: vllm", allow_removed=True)
    for pname, preset in tier.presets.items():
        check_vllm_settings(preset.vllm, where=f"{where}: presets.{pname}.vllm", allow_removed=True)
    return tier


def load_tier(name: str, stacks_dir: Path = STACKS_DIR) -> Tier:
    """Read and validate stacks/<name>.yaml; unknown names list the tiers.

    A tier is a name, never a path: the name becomes a directory under the state dir and a
    compose profile, so `--tier ../x` or `--tier /tmp/x` is refused before any file is read."""
    check_text("--tier", name)
    if name.endswith((".yaml", ".yml")) or "/" in name:
        raise RentstackError(f"--tier {name!r} is a path: a tier is a name from stacks/ "
                             f"({', '.join(list_tiers(stacks_dir))}); copy a tier file into stacks/ to add one")
    check_name("--tier", name)
    path = stacks_dir / f"{name}.yaml"
    if name == "models" or not path.is_file():
        raise one_of("tier", name, list_tiers(stacks_dir))
    tier = _validate(load_yaml(path, field=f"stacks/{name}.yaml"), f"stacks/{name}.yaml")
    if tier.name != name:
        raise RentstackError(f"stacks/{name}.yaml: name {tier.name!r} must match the file name {name!r}")
    return tier


def custom_tier(gpus: int, gpu_mem_gib: float, free_gib: float | None = None, p2p: bool = False,
                model: str = "qwen3-8b", name: str = "gpu") -> Tier:
    """Any other card, described by count and memory (`--gpus 2 --gpu-mem 24GiB`).

    P2P defaults to off: most rented multi-GPU boxes are consumer cards on PCIe.
    """
    return _validate({
        "name": name,
        "description": f"{gpus}x {gpu_mem_gib:g} GiB card(s), described on the command line",
        "gpu": {"name": f"{gpu_mem_gib:g}GiB-card", "count": gpus, "memory_gib": gpu_mem_gib,
                "free_gib": free_gib, "p2p": p2p},
        "model": model,
        "health": {"start_period_s": 900},
        "vllm": {"tensor-parallel-size": gpus} if gpus > 1 else {},
    }, f"--gpus {gpus} --gpu-mem {gpu_mem_gib:g}GiB")


def parse_size_gib(text: str) -> float:
    """'24GiB', '24GB', '24G', '24' -> GiB (GB taken as the card-marketing GB ~ GiB)."""
    raw = str(text).strip()
    low = raw.lower()
    for suffix in ("gib", "gb", "g"):
        if low.endswith(suffix):
            low = low[: -len(suffix)]
            break
    try:
        value = float(low)
    except ValueError:
        raise RentstackError(f"--gpu-mem {raw!r} is not a size: write it like 24GiB") from None
    if not 0 < value <= 1024:
        raise RentstackError(f"--gpu-mem {raw!r} is out of range: a card has between 0 and 1024 GiB")
    return value
