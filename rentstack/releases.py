"""Which vLLM a GPU host gets: the release matrix (rentstack/config/releases.yaml) and the choice.

Every GPU host used to get the one pinned vLLM, a CUDA 13 build that needs driver ≥ 580;
rented hosts run 535-595. Here each supported release line says what it needs (the CUDA
version its kernels, torch and image were built with; the compute capabilities it ships
kernels for; image tag and pip spec) and ``choose`` picks the newest one the host's driver
and every card can run, or refuses with what to rent instead. Pure: the host is described
by values from rentstack.remote.facts; nothing here runs a command.

The CPU tier is not in the matrix: it always runs rentstack.versions.VLLM_VERSION.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from rentstack.errors import RentstackError, did_you_mean

MATRIX_FILE = Path(__file__).resolve().parent / "config" / "releases.yaml"

Runner = Literal["compose", "native"]

RUNPOD_CUDA_VERSIONS = ("11.8", "12.0", "12.1", "12.2", "12.3", "12.4", "12.5", "12.6", "12.7", "12.8", "12.9", "13.0")
"""RunPod's `allowedCudaVersions` enum (runpod-sdk, REST `POST /pods`): a list of acceptable
host CUDA versions, so "at least X" is every entry from X up."""

_CUDA = re.compile(r"^\d+\.\d+$")
_DRIVER = re.compile(r"^\d+(\.\d+){0,2}$")


def _spelled(pattern: str, like: str) -> AfterValidator:
    """A check that a field of releases.yaml is written like `like` (the error shows an example)."""
    def check(value: str) -> str:
        if not re.match(pattern, value):
            raise ValueError(f"{value!r} is not {like}")
        return value

    return AfterValidator(check)


ReleaseNumber = Annotated[str, _spelled(r"^\d+\.\d+(\.\d+)*(\.post\d+)?$",
                                        "a release number like 0.10.1.1 or 0.8.5.post1")]
CudaVersion = Annotated[str, _spelled(_CUDA.pattern, "a CUDA version like 12.8")]
ComputeCap = Annotated[str, _spelled(r"^\d+\.\d+$", "a compute capability like 8.6")]


def version_key(version: str) -> tuple[int, ...]:
    """'0.10.1.1' → (0, 10, 1, 1, 0); '0.8.5.post1' → (0, 8, 5, 0, 1): sortable release numbers."""
    main, _, post = version.partition(".post")
    parts = [int(p) for p in re.findall(r"\d+", main)][:4]
    return (*parts, *([0] * (4 - len(parts))), int(post or 0))


def driver_key(driver: str) -> tuple[int, ...]:
    """'550.54.14' → (550, 54, 14); '570.26' → (570, 26, 0)."""
    parts = [int(p) for p in re.findall(r"\d+", driver)][:3]
    return (*parts, *([0] * (3 - len(parts))))


def cuda_key(cuda: str) -> tuple[int, int]:
    """'12.8' → (12, 8)."""
    major, _, minor = cuda.partition(".")
    return int(major), int(minor or 0)


def sm(cap: str) -> str:
    """'8.6' → 'sm_86', how vLLM's build lists and error messages name a compute capability."""
    return "sm_" + cap.replace(".", "")


class Release(BaseModel):
    """One vLLM build rentstack can install on a GPU host."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: ReleaseNumber = Field(description="vLLM release number, as pip and the image tag spell it.")
    build: str = Field(pattern=r"^cu\d{3}$", description="CUDA flavour of this build: cu124, cu128, cu129, cu130.")
    cuda: CudaVersion = Field(description="Highest CUDA version in the install (kernels, torch, image base); "
                                          "the driver must support it natively.")
    torch: str = Field(description="torch version the wheel pins (its metadata).")
    torch_cuda: CudaVersion = Field(description="CUDA version of the torch wheel pip resolves for it.")
    compute_caps: tuple[ComputeCap, ...] = Field(min_length=1, description="Compute capabilities the image runs on.")
    pip_compute_caps: tuple[ComputeCap, ...] | None = Field(
        None, description="Compute capabilities the pip install runs on, when fewer than the image's "
                          "(its torch from PyPI lacks an architecture); default: compute_caps.")
    image: str | None = Field(None, description="Image for compose hosts; none: native hosts only.")
    pip: str = Field(description="Requirement the native runner installs, e.g. vllm==0.11.0.")
    pip_index: str | None = Field(None, description="Extra index holding this build's vLLM wheel.")
    torch_index: str | None = Field(None, description="Extra index holding the matching torch build.")
    args: str = Field(description="Which dumped argument list (rentstack/config/vllm_args/<args>.json) applies.")
    verified: bool = Field(description="Checked against vLLM's packaging; only verified rows are chosen automatically.")
    source: str = Field(min_length=10, description="Where each figure of this row comes from.")

    @property
    def name(self) -> str:
        """'0.32.0+cu129': what --vllm-version takes and the host state records."""
        return f"{self.version}+{self.build}"

    def caps(self, runner: Runner) -> tuple[str, ...]:
        if runner == "native" and self.pip_compute_caps is not None:
            return self.pip_compute_caps
        return self.compute_caps

    def pip_args(self) -> tuple[str, ...]:
        """pip install arguments for the native runner: the spec and its extra indexes."""
        extra: list[str] = []
        for index in (self.pip_index, self.torch_index):
            if index:
                extra += ["--extra-index-url", index]
        if self.torch_index:
            # Without the pin pip keeps PyPI's torch build, whose CUDA differs from this build's.
            return (*extra, self.pip, f"torch=={self.torch}+{self.build}")
        return (*extra, self.pip)

    @property
    def rules(self):
        """This release's memory-accounting rules (the planner's one home of version rules)."""
        from rentstack.plan.rules import rules_for

        return rules_for(self.version)


class Matrix(BaseModel):
    """releases.yaml: the releases, newest first, and NVIDIA's driver per CUDA version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cuda_drivers: dict[str, str] = Field(description="CUDA version → minimum Linux driver (CUDA release notes).")
    releases: tuple[Release, ...] = Field(min_length=1)

    @field_validator("cuda_drivers")
    @classmethod
    def _drivers(cls, value: dict[str, str]) -> dict[str, str]:
        for cuda, driver in value.items():
            if not _CUDA.match(cuda) or not _DRIVER.match(driver):
                raise ValueError(f"{cuda}: {driver} is not 'CUDA X.Y: driver N.N[.N]'")
        return value

    def model_post_init(self, _context: object) -> None:
        names = [r.name for r in self.releases]
        if len(set(names)) != len(names):
            raise ValueError(f"a release is listed twice: {names}")
        for r in self.releases:
            if r.cuda not in self.cuda_drivers:
                raise ValueError(f"{r.name}: CUDA {r.cuda} has no minimum driver in cuda_drivers")

    def min_driver(self, cuda: str) -> str:
        return self.cuda_drivers[cuda]

    def cuda_of_driver(self, driver: str) -> str | None:
        """The highest CUDA version this driver supports natively, from the driver table."""
        fits = [c for c, d in self.cuda_drivers.items() if driver_key(driver) >= driver_key(d)]
        return max(fits, key=cuda_key) if fits else None

    def newest_first(self) -> list[Release]:
        """Newest version first; builds of one version in file order (the default build first)."""
        order = {r.name: i for i, r in enumerate(self.releases)}
        return sorted(self.releases, key=lambda r: (tuple(-x for x in version_key(r.version)), order[r.name]))

    def find(self, requested: str) -> Release:
        """A release by name: '0.32.0+cu129', or a bare version for its default build."""
        wanted = requested.strip().lstrip("v")
        for r in self.newest_first():
            if wanted in (r.name, r.version):
                return r
        names = [r.name for r in self.newest_first()]
        raise RentstackError(f"--vllm-version {requested!r} is not in the release matrix"
                             f"{did_you_mean(wanted, names + [r.version for r in self.releases])}; "
                             f"choose one of: {', '.join(names)} (rentstack/config/releases.yaml)")


@lru_cache(maxsize=1)
def load_matrix(path: Path = MATRIX_FILE) -> Matrix:
    import yaml

    try:
        return Matrix.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RentstackError(f"{path.name}: {where}: {first['msg']}") from None


# --------------------------------------------------------------------------- the host


@dataclass(frozen=True)
class GpuHost:
    """What the choice needs to know about a host: from nvidia-smi (rentstack.remote.facts)."""

    driver: str
    """Driver version, e.g. 550.54.14."""
    cuda: str = ""
    """Highest CUDA version the driver supports, from nvidia-smi's header ('' = unknown)."""
    cards: tuple[tuple[str, str], ...] = ()
    """(name, compute capability) per card; capability '' when nvidia-smi could not say."""

    @classmethod
    def from_facts(cls, facts: object) -> GpuHost | None:
        """From rentstack.remote.facts.HostFacts; None when the host has no GPU."""
        gpus = getattr(facts, "gpus", ())
        if not gpus:
            return None
        header = getattr(facts, "nvidia_driver", None)
        driver = (header.driver_version if header else "") or gpus[0].driver_version
        return cls(driver=driver, cuda=header.cuda_version if header else "",
                   cards=tuple((g.name, getattr(g, "compute_cap", "")) for g in gpus))

    def supported_cuda(self, matrix: Matrix) -> str | None:
        return self.cuda or matrix.cuda_of_driver(self.driver)

    @property
    def caps(self) -> tuple[str, ...]:
        return tuple(sorted({cap for _, cap in self.cards if cap}, key=cuda_key))

    def describe(self, matrix: Matrix) -> str:
        cuda = self.supported_cuda(matrix)
        names = sorted({n for n, _ in self.cards})
        caps = ", ".join(sm(c) for c in self.caps) or "compute capability unknown"
        count = f"{len(self.cards)} x " if len(self.cards) > 1 else ""
        return (f"driver {self.driver} (CUDA {cuda or 'unknown'}), "
                f"{count}{' + '.join(names) or 'GPU'} ({caps})")


def why_not(release: Release, host: GpuHost, runner: Runner, matrix: Matrix) -> list[str]:
    """What stops this release on this host; empty when it runs."""
    problems: list[str] = []
    need_driver = matrix.min_driver(release.cuda)
    cuda = host.supported_cuda(matrix)
    if driver_key(host.driver) < driver_key(need_driver) or cuda is None or cuda_key(cuda) < cuda_key(release.cuda):
        problems.append(f"needs CUDA {release.cuda} (driver ≥ {need_driver})")
    caps = release.caps(runner)
    missing = [c for c in host.caps if c not in caps]
    if missing:
        how = " from pip" if runner == "native" and release.pip_compute_caps is not None else ""
        names = sorted({n for n, c in host.cards if c in missing})
        problems.append(f"has no kernels{how} for {', '.join(sm(c) for c in missing)} ({', '.join(names)})")
    if runner == "compose" and not release.image:
        problems.append("has no image for compose hosts")
    return problems


@dataclass(frozen=True)
class Choice:
    """The release a host gets, and why."""

    release: Release
    how: Literal["newest", "requested", "recorded"]
    reason: str
    skipped: tuple[tuple[str, str], ...] = field(default=())
    """Newer releases passed over: (name, why)."""

    @property
    def line(self) -> str:
        """One line for plans and dry runs: 'vLLM 0.11.0+cu128 — newest that runs here: …'."""
        return f"vLLM {self.release.name} — {self.reason}"


def choose(host: GpuHost, runner: Runner = "compose", requested: str | None = None,
           recorded: str | None = None, matrix: Matrix | None = None) -> Choice:
    """Pick the release for a GPU host: ``requested`` (--vllm-version) if it runs here, else
    the one ``recorded`` in the host state by an earlier run if it still runs, else the
    newest verified release that runs. Refuses (RentstackError) before anything is installed."""
    m = matrix or load_matrix()
    described = host.describe(m)
    if requested:
        release = m.find(requested)
        problems = why_not(release, host, runner, m)
        if problems:
            best = _newest(host, runner, m)
            instead = f"; this host runs up to vLLM {best[0].name} (drop --vllm-version)" if best[0] else ""
            raise RentstackError(f"--vllm-version {requested}: vLLM {release.name} {' and '.join(problems)}, "
                                 f"but this host has {described}{instead}")
        note = "" if release.verified else " (row not verified against vLLM's packaging; see its source)"
        return Choice(release, "requested", f"requested with --vllm-version; runs on {described}{note}")
    if recorded:
        try:
            release = m.find(recorded)
        except RentstackError:
            release = None
        if release is not None and not why_not(release, host, runner, m):
            return Choice(release, "recorded", f"chosen by an earlier run on this host and still runs on {described}")
    release, skipped = _newest(host, runner, m)
    if release is None:
        raise RentstackError(refusal(host, runner, m))
    passed = f"; newer: {'; '.join(f'{n} {w}' for n, w in skipped[:2])}" if skipped else ""
    redo = (f" (the recorded {recorded} no longer runs here)" if recorded and recorded != release.name else "")
    return Choice(release, "newest", f"newest release that runs on {described}{passed}{redo}", tuple(skipped))


def choose_or_default(host: GpuHost | None, runner: Runner = "compose", requested: str | None = None,
                      recorded: str | None = None, matrix: Matrix | None = None) -> Choice:
    """``choose`` for a host with GPUs; on a machine without one (planning on a laptop, the
    CI machine) the requested or newest release, marked as not checked against a driver."""
    if host is not None:
        return choose(host, runner, requested, recorded, matrix)
    m = matrix or load_matrix()
    release = m.find(requested) if requested else default_release(m)
    return Choice(release, "requested" if requested else "newest",
                  "no GPU on this machine, so not checked against a driver "
                  "(`fab provision` and `make up` on a GPU machine choose from nvidia-smi)")


def _newest(host: GpuHost, runner: Runner, m: Matrix) -> tuple[Release | None, list[tuple[str, str]]]:
    skipped: list[tuple[str, str]] = []
    for release in m.newest_first():
        if not release.verified:
            continue
        problems = why_not(release, host, runner, m)
        if not problems:
            return release, skipped
        if release.name not in {n for n, _ in skipped}:
            skipped.append((release.name, " and ".join(problems)))
    return None, skipped


def refusal(host: GpuHost, runner: Runner, m: Matrix) -> str:
    """Why nothing runs, and which host to rent instead: the newest release these cards run
    sets the CUDA version to ask for; the oldest one sets the floor."""
    card_ok = [r for r in m.newest_first() if r.verified and all(c in r.caps(runner) for c in host.caps)
               and (runner != "compose" or r.image)]
    head = f"no vLLM release rentstack knows runs on this host ({host.describe(m)})"
    if not card_ok:
        caps = ", ".join(sm(c) for c in host.caps)
        return f"{head}: no release in the matrix has kernels for {caps}; use another GPU"
    target = card_ok[0]
    # The newest release among those needing the least CUDA.
    floor = min(card_ok, key=lambda r: (cuda_key(r.cuda), tuple(-x for x in version_key(r.version))))
    return (f"{head}: the oldest release with kernels for these cards, {floor.name}, needs CUDA {floor.cuda} "
            f"(driver ≥ {m.min_driver(floor.cuda)}). {rent_advice(target.cuda, m)} for vLLM {target.name}"
            + (f", or at least CUDA {floor.cuda} for {floor.name}" if floor.cuda != target.cuda else ""))


def rent_advice(cuda: str, m: Matrix) -> str:
    """How to ask each marketplace for a host whose driver supports ``cuda``."""
    runpod = [v for v in RUNPOD_CUDA_VERSIONS if cuda_key(v) >= cuda_key(cuda)]
    major, minor = cuda_key(cuda)
    return (f"Rent a host whose driver supports CUDA ≥ {cuda} (driver ≥ {m.min_driver(cuda)}): "
            f"RunPod allowedCudaVersions {runpod}, Vast `cuda_max_good>={cuda}`, "
            f"AutoDL's CUDA filter ≥ {cuda} (API cuda_v_from={major}{minor})")


def default_release(m: Matrix | None = None) -> Release:
    """What a GPU tier renders for when no host was read (`rentstack render`, `make plan`
    without a GPU): the newest verified release."""
    return next(r for r in (m or load_matrix()).newest_first() if r.verified)


def newest_for_cuda(cuda: str, runner: Runner = "compose", m: Matrix | None = None) -> Release | None:
    """The newest verified release a driver supporting CUDA ``cuda`` runs (cards not considered):
    what the doctor suggests when a log shows the driver's CUDA version."""
    m = m or load_matrix()
    known = [c for c in m.cuda_drivers if cuda_key(c) <= cuda_key(cuda)]
    if not known:
        return None
    host = GpuHost(driver=m.min_driver(max(known, key=cuda_key)), cuda=cuda)
    release, _ = _newest(host, runner, m)
    return release


def releases_for_version(version: str, m: Matrix | None = None) -> list[Release]:
    """The builds of one vLLM version ('0.32.0', '0.32.0+cu129', '0.8.5.post1'), default build first."""
    wanted = version.strip().lstrip("v")
    return [r for r in (m or load_matrix()).newest_first() if wanted in (r.version, r.name)]


def card_support(m: Matrix | None = None) -> dict[str, str]:
    """For each compute capability that not every verified release covers: which ones do,
    e.g. {'7.0': '0.8.5.post1 … 0.13.0', '12.0': '0.9.2 … 0.32.0 (pip: 0.10.2 … 0.32.0)'}."""
    m = m or load_matrix()
    verified = [r for r in m.newest_first() if r.verified]
    caps = sorted({c for r in verified for c in r.compute_caps}, key=cuda_key)
    out: dict[str, str] = {}
    for cap in caps:
        image = [r.version for r in verified if cap in r.caps("compose")]
        pip = [r.version for r in verified if cap in r.caps("native")]
        if len(image) == len(verified) and len(pip) == len(verified):
            continue
        text = f"{image[-1]} … {image[0]}" if image else "none"
        if pip != image:
            text += f" (pip: {pip[-1]} … {pip[0]})" if pip else " (pip: none)"
        out[cap] = text
    return out


def cuda_of_code(code: int) -> str:
    """CUDA's integer version as torch and the driver API report it: 12080 → '12.8'."""
    return f"{code // 1000}.{code % 1000 // 10}"


def driver_for(release: Release, m: Matrix | None = None) -> str:
    """The minimum driver a release needs."""
    return (m or load_matrix()).min_driver(release.cuda)
