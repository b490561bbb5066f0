"""Spec -> validated, planned deployment: every value the templates need, computed here.

`build_deployment` is pure apart from reading the shipped config.json of the model: it
merges tier, preset, catalog model and `--set` overrides, checks every memory-related value
against LaunchParams' bounds (every tier, the CPU tier included), asks the planner for every
such value that is not fixed, checks the fixed ones with it, and refuses a deployment the
planner predicts will fail (unless forced). Figures measured on the card come in as
`measured` (the callers read the calibration store: rentstack.calibration.measured_for_tier).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

from rentstack import plan as planner
from rentstack.errors import RentstackError
from rentstack.safe import check_text, env_value
from rentstack.config import CatalogModel, Tier, resolve_model
from rentstack.config.vllm_args import DEFAULT_LINE, SECRET_ENV, for_release
from rentstack.releases import Release, default_release
from rentstack.versions import VLLM_VERSION

CONTAINER_PORT = 8000
"""vLLM listens here inside the container; the host port is mapped in compose."""

CPU_KV_MAX_GIB = 1024
"""Largest CPU-tier KV cache rendered: vLLM's CPU backend allocates VLLM_CPU_KVCACHE_SPACE in
host RAM at start, and no host rentstack targets has more than this."""


@dataclass(frozen=True)
class Deployment:
    """One tier + model + settings, planned and ready to render."""

    tier: Tier
    model: CatalogModel
    settings: dict[str, object]          # final vLLM flags (long names), model path included
    runner: str = "compose"              # compose | native
    bind: str = "127.0.0.1"
    port: int = 8000
    models_dir: str = "./models"
    plan: object | None = None           # rentstack.plan.Plan for GPU tiers
    notes: list[str] = field(default_factory=list)   # why each planned value was chosen
    cpu_kv_gib: int = 0                  # VLLM_CPU_KVCACHE_SPACE for the cpu tier
    require_api_key: bool = True
    # Secrets from --set (hf-token -> HF_TOKEN): written only to the 0600 secrets.env.
    secret_env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    release: Release | None = None       # the GPU build this host runs (None: the cpu tier)
    tls: bool = False                    # the front serves HTTPS (certificate in front/tls.crt)
    tls_cert: str | None = None          # a provided certificate (PEM); None with tls: self-signed
    tls_key: str | None = None           # its private key (PEM)
    profiles: tuple[str, ...] = ()       # parts around the server: webui, monitoring (rentstack.render.around)
    idle_stop: str = "off"               # idle window of the idle-stop watchdog ("off" or e.g. "30m")
    idle_action: str = "stop"            # stop | poweroff

    @property
    def vllm_version(self) -> str:
        """The vLLM version the server runs: the chosen GPU release, or the CPU tier's pin."""
        return self.release.version if self.release else VLLM_VERSION

    @property
    def model_path(self) -> str:
        """Where vLLM finds the weights: inside the container, or on the host for native."""
        base = "/models" if self.runner == "compose" else self.models_dir
        return str(PurePosixPath(base) / self.model.source.dirname)


def native_vllm_port(port: int) -> int:
    """Where vLLM listens on a native host, behind the front on ``port``: 10000 above it
    (8000 -> 18000, AutoDL's 6006 -> 16006), or below when that would pass 65535."""
    return port + 10000 if port + 10000 <= 65535 else port - 10000


def _is_loopback(bind: str) -> bool:
    """Whether a (checked) bind address is this machine only."""
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


def _check_bind(bind: str, require_api_key: bool) -> None:
    """The bind address must be an IP address (what Docker publishes on), or `localhost`.

    Parsing it, rather than matching a prefix, is what keeps `127.evil.example` or a value
    with a newline from passing as local and getting round the no-key refusal."""
    check_text("--bind", bind)
    if bind == "localhost":
        return
    try:
        local = ipaddress.ip_address(bind).is_loopback
    except ValueError:
        raise RentstackError(f"--bind {bind!r} is not an IP address: use 127.0.0.1 (this machine only), "
                             "an address of this host, or --public for 0.0.0.0") from None
    if not local and not require_api_key:
        raise RentstackError(
            f"bind {bind!r} publishes the server to the network without an API key: "
            "drop --no-api-key (a key is generated for you) or bind to 127.0.0.1")


def build_deployment(tier: Tier, model: str | None = None, sets: dict[str, object] | None = None,
                     *, runner: str = "compose", bind: str = "127.0.0.1", port: int = 8000,
                     models_dir: str = "./models", force: bool = False, require_api_key: bool = True,
                     model_config: str | None = None, release: Release | None = None,
                     measured: planner.Measured | None = None, tls: bool | None = None,
                     tls_cert: str | None = None, tls_key: str | None = None) -> Deployment:
    """Merge tier + model + overrides, plan the memory values, and validate the result.

    ``release`` is the vLLM build a GPU host runs (rentstack.releases.choose); without one a
    GPU tier renders for the newest release. Settings are fitted to that release's own
    argument list and the planner models its memory accounting. ``measured``: figures from an
    earlier start on this card and release (rentstack.calibration.measured_for_tier); they
    replace the planner's estimates where they carry over. ``tls`` None means: HTTPS exactly
    when the front is published beyond loopback (--public) or a certificate is given."""
    if runner not in ("compose", "native"):
        raise RentstackError(f"runner {runner!r} is unknown; use compose or native")
    if not 1 <= port <= 65535:
        raise RentstackError(f"port {port} is out of range: use 1-65535")
    _check_bind(bind, require_api_key)
    env_value("--models-dir", models_dir)   # it goes into compose.env: refuse what that cannot carry
    if (tls_cert is None) != (tls_key is None):
        raise RentstackError("tls: give both --tls-cert and --tls-key (PEM files), or neither for a self-signed one")
    if tls is None:
        tls = not _is_loopback(bind) or tls_cert is not None
    entry = resolve_model(model if model is not None else tier.model)
    if tier.accelerator == "cpu":
        release = None
    elif release is None:
        release = default_release()
    sets = dict(sets or {})
    secret_env = tuple(sorted((SECRET_ENV[k], str(sets.pop(k))) for k in list(sets) if k in SECRET_ENV))
    settings: dict[str, object] = {**tier.vllm, **sets}
    notes: list[str] = []
    settings, fitted = for_release(settings, release.args if release else DEFAULT_LINE, requested=set(sets))
    notes += fitted
    planner.LaunchParams.flags_to_fields(settings)  # bounds of every memory-relevant value, every tier
    _check_parallel(tier, settings)
    if tier.hosts > 1:
        settings, multi = _multi_host(tier, settings)
        notes += multi
    if entry.quantization and "quantization" not in settings:
        settings["quantization"] = entry.quantization

    plan = None
    cpu_kv_gib = 0
    config = model_config or (str(entry.config_path) if entry.config_path else None)
    if tier.accelerator == "cpu":
        cpu_kv_gib, note = _cpu_kv_space(config, settings, force)
        notes.append(note)
    elif config is None:
        if not force:
            raise RentstackError(
                f"model {entry.source} has no config.json to plan with: pass --model-config PATH "
                "(the model's config.json), or --force to render without a memory plan")
        notes.append("not planned: no config.json for this model (--force)")
    else:
        settings, plan, plan_notes = _plan_gpu(tier, config, settings, force, release.version, measured)
        notes += plan_notes

    served = {"served-model-name": entry.name}
    if runner == "compose":
        where = {"host": "0.0.0.0", "port": CONTAINER_PORT}
    else:
        # The native runner's front door (nginx) takes bind:port; vLLM listens on loopback only.
        where = {"host": "127.0.0.1", "port": native_vllm_port(port)}
    deployment = Deployment(tier=tier, model=entry, settings={}, runner=runner, bind=bind, port=port,
                            models_dir=models_dir, plan=plan, notes=notes, cpu_kv_gib=cpu_kv_gib,
                            require_api_key=require_api_key, secret_env=secret_env,
                            release=release, tls=tls, tls_cert=tls_cert, tls_key=tls_key)
    final = {"model": deployment.model_path, **served, **where, **dict(sorted(settings.items()))}
    return replace(deployment, settings=final)


def _check_parallel(tier: Tier, settings: dict[str, object]) -> None:
    """TP x PP must fit the cards, and TP must split them evenly."""
    tp = int(settings.get("tensor-parallel-size", 1))
    pp = int(settings.get("pipeline-parallel-size", 1))
    if tier.accelerator == "cpu":
        if tp * pp != 1:
            raise RentstackError(f"tensor-parallel-size {tp} x pipeline-parallel-size {pp}: the cpu tier runs one "
                                 "process; set both to 1")
        return
    count = tier.gpu.count
    if tp < 1 or pp < 1:
        raise RentstackError(f"tensor-parallel-size {tp} / pipeline-parallel-size {pp} must be at least 1")
    if tier.hosts > 1:
        if (tp, pp) != (count, tier.hosts):
            raise RentstackError(
                f"tier {tier.name} spans {tier.hosts} hosts of {count} GPUs: set tensor-parallel-size {count} (inside "
                f"a host) and pipeline-parallel-size {tier.hosts} (across hosts), not {tp} x {pp}; tensor parallel "
                "over Ethernet between hosts is far slower than pipeline stages")
        return
    if count % tp:
        raise RentstackError(f"tensor-parallel-size {tp} does not divide the {count} GPU(s) of tier {tier.name}: "
                             f"use one of {', '.join(str(d) for d in range(1, count + 1) if count % d == 0)}")
    if tp * pp > count:
        raise RentstackError(f"tensor-parallel-size {tp} x pipeline-parallel-size {pp} = {tp * pp} GPUs, "
                             f"but tier {tier.name} has {count}: lower one of them")


def _multi_host(tier: Tier, settings: dict[str, object]) -> tuple[dict[str, object], list[str]]:
    """One vLLM over several hosts runs on Ray (vLLM's multi-node path)."""
    from rentstack.scale.ray_cluster import PP_OVER_ETHERNET_NOTE

    backend = settings.get("distributed-executor-backend", "ray")
    if backend != "ray":
        raise RentstackError(f"distributed-executor-backend {backend!r}: tier {tier.name} spans {tier.hosts} hosts, "
                             "which vLLM runs on Ray: drop the setting or set it to ray")
    out = {**settings, "distributed-executor-backend": "ray"}
    return out, [f"{tier.hosts} hosts x {tier.gpu.count} GPUs: tensor parallel {tier.gpu.count} inside each host, "
                 f"pipeline parallel {tier.hosts} across hosts, on a Ray cluster (fab ray); {PP_OVER_ETHERNET_NOTE}"]


def _plan_gpu(tier: Tier, config: str, settings: dict[str, object], force: bool,
              vllm_version: str = VLLM_VERSION, measured: planner.Measured | None = None):
    """Fill every unset memory-related value from the planner's fit; check the set ones.

    `measured` (what this card did with this model and vLLM before) replaces the planner's
    estimates where it carries over."""
    from rentstack.plan.report import measured_line

    arch = planner.load_arch(config)
    hw = planner.Hardware.from_gpu(tier.gpu, gpus=tier.total_gpus)
    fit = planner.fit(arch, hw, fixed={**settings, "vllm_version": vllm_version}, measured=measured)
    notes = [f"{key}: {why}" for key, why in fit.reasons.items()]
    # Only the values the fit chose and vLLM would not pick by itself are written.
    out = {**{k: v for k, v in fit.params.to_flags(quiet=True).items() if k not in settings}, **settings}
    # The verdict is for exactly what gets written: the fixed values plus the fit's choices.
    result = planner.plan(arch, hw, planner.LaunchParams.from_flags(out, vllm_version=vllm_version),
                          measured=measured)
    if not result.fits and not force:
        extra = f"; {result.fix}" if getattr(result, "fix", None) else ""
        alt = f"; nearest alternative: {fit.alternatives[0]}" if getattr(fit, "alternatives", None) else ""
        raise RentstackError(f"planner: this deployment will not start: {result.error}{extra}{alt} "
                             "(--force renders it anyway)")
    notes.append(_summary(result))
    if result.measured_from:
        notes.append(f"planner: {measured_line(result)}")
        notes += [f"planner: {n}" for n in result.measured_notes]
    return out, result, notes


def _summary(result) -> str:
    verdict = "fits" if result.fits else f"DOES NOT FIT ({result.error})"
    risk = "" if result.fits_low else (" — at the band's low end this max-model-len would not fit; "
                                       f"{result.max_model_len_fit_low:,} would")
    return (f"planner: {verdict}; weights {result.weights_gib:.2f} GiB, KV cache {result.available_kv_gib:.2f} GiB "
            f"= {result.kv_cache_tokens:,} tokens (band {result.kv_cache_tokens_low:,}–{result.kv_cache_tokens_high:,}), "
            f"{result.max_concurrency:.2f} full-length requests at once{risk}")


def _cpu_kv_space(config: str | None, settings: dict[str, object], force: bool = False) -> tuple[int, str]:
    """VLLM_CPU_KVCACHE_SPACE (GiB): room for max-num-seqs full-length requests, at least 1,
    at most CPU_KV_MAX_GIB; max-model-len within the model's context (vLLM refuses more)."""
    seqs = int(settings.get("max-num-seqs", 4))
    length = int(settings.get("max-model-len", 2048))
    if config is None:
        return 4, "cpu KV cache: 4 GiB (no config.json to size it from)"
    arch = planner.load_arch(config)
    if length > arch.max_position_embeddings:
        if not force:
            raise RentstackError(
                f"max-model-len {length} is above the model's limit {arch.max_position_embeddings} "
                f"(max_position_embeddings in its config.json); set max-model-len to {arch.max_position_embeddings} "
                "or less (--force renders it anyway; vLLM will refuse it)")
        length = arch.max_position_embeddings     # size the cache for what vLLM could ever hold
    per_token = planner.kv_bytes_per_token(arch, planner.LaunchParams(dtype=str(settings.get("dtype", "auto"))))
    need = per_token * seqs * length / 2**30
    gib = max(1, math.ceil(need * 1.1))
    if gib > CPU_KV_MAX_GIB:
        raise RentstackError(
            f"max-num-seqs {seqs} x max-model-len {length} needs a {gib:,} GiB KV cache in host RAM; the CPU tier "
            f"allows at most {CPU_KV_MAX_GIB} GiB: lower max-num-seqs or max-model-len")
    return gib, (f"cpu KV cache: {gib} GiB for {seqs} x {length} tokens "
                 f"({per_token:,} B/token from config.json, +10%)")


__all__ = ["CPU_KV_MAX_GIB", "Deployment", "build_deployment"]
