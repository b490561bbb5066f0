"""What the steps work from: a frozen context, a read-only view for checks, a host for acts.

``Ctx`` holds the user's options, the resolved tier and model, the host's facts (read once,
in one round trip) and the paths on the host: values only, nothing to call. ``View`` is all
a check may do: read a fact (rentstack.remote.facts) and look at the state file's records.
``Host`` adds what an act may do: run commands, write files, record a finished step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from rentstack.config import CatalogModel, Tier
from rentstack.remote.facts import Fact, HostFacts, file_text_fact, gather
from rentstack.remote.hosts import HostSpec
from rentstack.remote.host_state import HostState, parse_state, state_path
from rentstack.remote.layout import Layout
from rentstack.remote.options import Options
from rentstack.remote.provision import LOCAL_MODELS, resolve_inputs
from rentstack.releases import Choice, GpuHost, Release, choose
from rentstack.safe import inside

T = TypeVar("T")


@dataclass(frozen=True)
class Ctx:
    """One host and one request, resolved: everything a step builder needs, as values."""

    spec: HostSpec
    opts: Options
    tier: Tier
    model: CatalogModel
    facts: HostFacts
    layout: Layout
    local_models: Path = LOCAL_MODELS
    choice: Choice | None = None
    """The vLLM release for a GPU tier, chosen from the facts (None: cpu tier, or no GPU seen)."""

    @property
    def release(self) -> Release | None:
        return self.choice.release if self.choice else None

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def slug(self) -> str:
        return self.spec.slug

    @property
    def runner(self) -> str:
        return self.opts.runner or self.facts.runner

    def key(self, step: str) -> str:
        """State key of a per-tier step ("render:cpu"): tiers on one host are independent."""
        return f"{step}:{self.tier.name}"

    @property
    def remote_model_dir(self) -> str:
        if self.model.source.scheme == "local":
            return self.model.source.ref
        return f"{self.layout.models}/{self.model.source.dirname}"

    @property
    def weights_key(self) -> str:
        """One state entry per model directory: several models can share a data disk."""
        return f"weights:{self.remote_model_dir}"

    @property
    def local_model_dir(self) -> Path | None:
        """The builtin model's directory on this machine (it is uploaded, not downloaded)."""
        if self.model.source.scheme != "builtin":
            return None
        # the upload's source: a name checked by the catalog, resolved inside the models dir
        return inside("builtin model", self.local_models, self.model.source.dirname)

    @property
    def health_timeout(self) -> int:
        return self.opts.health_timeout or self.tier.health.start_period_s + 120

    @property
    def local_key_file(self) -> Path:
        """A 0600 copy of the tier's key on this machine, for clients through the tunnel."""
        return self.opts.local_state / self.slug / self.tier.name / "secrets.env"


class View:
    """What a check may do: read facts and the state file's records. Nothing here writes."""

    def __init__(self, io: HostIO) -> None:
        self._io = io

    def read(self, fact: Fact[T]) -> T:
        return self._io.read(fact)

    def done(self, name: str, digest: str) -> bool:
        return self._io.state.done(name, digest)

    @property
    def steps(self) -> Mapping[str, Mapping[str, Any]]:
        return MappingProxyType({k: MappingProxyType(v) for k, v in self._io.state.steps.items()})


class HostIO:
    """A connected host for the acts: commands, uploads and the state file (the one
    mutable thing, written through after every change)."""

    def __init__(self, remote: Any, data_dir: str, state: HostState) -> None:
        self.remote = remote
        self.data_dir = data_dir
        self.state = state

    # reads
    def read(self, fact: Fact[T]) -> T:
        code, out = self.remote.run(fact.command)
        return fact.parse(out, code)

    def view(self) -> View:
        return View(self)

    # writes
    def run(self, command: str, *, timeout: float | None = None) -> tuple[int, str]:
        return self.remote.run(command, timeout=timeout)

    def check(self, command: str, what: str, **kwargs: Any) -> str:
        return self.remote.check(command, what, **kwargs)

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        self.remote.write(path, text, mode)

    def put_file(self, local: str, path: str) -> None:
        self.remote.put_file(local, path)

    def tunnel(self, local_port: int, remote_port: int):  # noqa: ANN201 - a context manager
        return self.remote.tunnel(local_port, remote_port)

    def record(self, name: str, digest: str, detail: str) -> str:
        self.state.record(name, digest, detail)
        self.save_state()
        return detail

    def forget(self, name: str) -> None:
        self.state.forget(name)
        self.save_state()

    def save_state(self) -> None:
        self.remote.write(state_path(self.data_dir), self.state.dumps(), 0o600)


Host = HostIO


def connect(remote: Any, opts: Options, echo: Callable[[str], None] | None = None) -> tuple[Ctx, HostIO]:
    """Read the host's facts and state (two round trips) and resolve the request into a Ctx."""
    tier, model = resolve_inputs(opts)
    facts = gather(remote.run, opts.data_dir)
    io = HostIO(remote, opts.data_dir, HostState())
    io.state = parse_state(io.read(file_text_fact(state_path(opts.data_dir))) or "")
    choice = choose_release(tier, facts, opts, io.state)
    ctx = Ctx(spec=remote.spec, opts=opts, tier=tier, model=model, facts=facts,
              layout=Layout(opts.data_dir, **({"vllm": choice.release.name} if choice else {})), choice=choice)
    return ctx, io


RELEASE_KEY = "vllm-release"
"""State entry of the chosen release: its checksum is the release's name, its detail why."""


def choose_release(tier: Tier, facts: HostFacts, opts: Options, state: HostState) -> Choice | None:
    """The vLLM release a GPU tier gets on this host, before any step runs: a host no release
    runs on is refused here, before anything is downloaded. None for the cpu tier and for a
    host booted without its GPU (`fab up` chooses once the GPU is there)."""
    host = GpuHost.from_facts(facts)
    if tier.accelerator != "gpu" or host is None:
        return None
    recorded = (state.steps.get(RELEASE_KEY) or {}).get("checksum")
    return choose(host, opts.runner or facts.runner, requested=opts.vllm_version, recorded=recorded)
