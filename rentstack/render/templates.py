"""Rendered artifacts from a Deployment: pure functions from values to file texts.

Templates (templates/<artifact>.<ext>.j2) only substitute and loop; everything they show
is computed here. StrictUndefined turns a missing value into an error, not a blank.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jinja2

from rentstack import __version__
from rentstack.errors import RentstackError
from rentstack.render import around
from rentstack.render.deployment import Deployment
from rentstack.safe import check_text, env_line, yaml_scalar
from rentstack.config import Tier, list_tiers
from rentstack.releases import Release, default_release
from rentstack.render.front import CONTAINER_FRONT_DIR, FRONT_INTERNAL_PORT, FRONT_PORT
from rentstack.versions import FRONT_IMAGE, VLLM_CPU_IMAGE

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
CUSTOM_PROFILE = "gpu"
"""Profile of the service for cards described on the command line (--gpus/--gpu-mem)."""

# The healthcheck runs every 2 s so `up --wait` returns soon after vLLM is ready (Docker 20.10
# has no start_interval). curl is in the CPU image (debootstrap'ed with it) and costs a few ms;
# the official CUDA image is only known to have python3.
_HEALTH_URL = "http://127.0.0.1:8000/health"
HEALTH_CPU = json.dumps(["CMD", "curl", "-fsS", "-o", "/dev/null", "--max-time", "5", _HEALTH_URL])
HEALTH_GPU = json.dumps(["CMD", "python3", "-c",
                         f"import urllib.request; urllib.request.urlopen('{_HEALTH_URL}', timeout=5)"])

@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


_scalar = yaml_scalar   # the YAML writer of safe.py


def render_vllm_yaml(dep: Deployment) -> str:
    return _env().get_template("vllm.yaml.j2").render(
        version=__version__, tier=dep.tier.name, vllm_version=dep.vllm_version,
        # notes become `# ...` comment lines: a line break in one (a stack file value it quotes)
        # would start YAML of its own; values are JSON scalars, which escape everything
        plan_notes=[check_text("plan note", note) for note in dep.notes],
        settings=[(k, _scalar(v)) for k, v in dep.settings.items()])


def compose_profile(tier_name: str) -> str:
    """The compose profile (and service suffix) of a tier: its own name when shipped, else `gpu`."""
    return tier_name if tier_name in _profiles() else CUSTOM_PROFILE


def image_for(tier: Tier, release: Release | None = None) -> str:
    """The image a tier's service runs: the local CPU build, or the official CUDA image of the
    release chosen for the host (default: the newest release)."""
    if tier.accelerator == "cpu":
        return VLLM_CPU_IMAGE
    image = (release or default_release()).image
    if image is None:
        raise RentstackError(f"vLLM {(release or default_release()).name} has no image for compose hosts: "
                             "use the native runner (--runner native) or another --vllm-version")
    return image


def _gpu_image_ref() -> str:
    """compose.yaml's GPU image: the release compose.env names, the newest by default."""
    return "${RENTSTACK_VLLM_IMAGE:-%s}" % default_release().image


def render_front_conf(tier_name: str, values: dict[str, object]) -> str:
    """nginx.conf of the front door; `values` from rentstack.render.front (compose or native)."""
    return _env().get_template("nginx.conf.j2").render(version=__version__, tier=tier_name, **values)


def compose_env_values(dep: Deployment, state_dir: str, cache_dir: str, front_digest: str = "",
                       idle_image: str = around.BASE_IMAGE) -> list[tuple[str, str]]:
    values = [
        ("RENTSTACK_BIND", dep.bind),
        ("RENTSTACK_PORT", str(dep.port)),
        ("RENTSTACK_MODELS_DIR", dep.models_dir),
        ("RENTSTACK_STATE_DIR", state_dir),
        ("RENTSTACK_CACHE_DIR", cache_dir),
        ("RENTSTACK_TIER", dep.tier.name),
        # changes with front/'s files, so `up` recreates the front (only) when its config changed
        ("RENTSTACK_FRONT_DIGEST", front_digest),
        ("COMPOSE_PROFILES", ",".join(around.active_profiles(compose_profile(dep.tier.name), dep.profiles,
                                                             dep.idle_stop))),
        *around.compose_env_values(dep.profiles, dep.idle_stop, dep.idle_action, state_dir, dep.model.name,
                                   idle_image),
    ]
    if dep.tier.accelerator == "cpu":
        values.append(("RENTSTACK_CPU_KV_GIB", str(dep.cpu_kv_gib)))
    else:
        values.append(("RENTSTACK_VLLM_IMAGE", image_for(dep.tier, dep.release)))
        values.append(("RENTSTACK_GPUS", str(dep.tier.gpu.count)))
        values.append(("RENTSTACK_NCCL_P2P_DISABLE", "0" if dep.tier.gpu.p2p else "1"))
    return values


def render_compose_env(dep: Deployment, state_dir: str, cache_dir: str, front_digest: str = "",
                       idle_image: str = around.BASE_IMAGE) -> str:
    """compose.env: every line made by safe.env_line, so no value can add a line of its own."""
    lines = [env_line(key, value) for key, value in compose_env_values(dep, state_dir, cache_dir, front_digest,
                                                                        idle_image)]
    return _env().get_template("compose.env.j2").render(version=__version__, tier=dep.tier.name, lines=lines)


@lru_cache(maxsize=1)
def _profiles() -> frozenset[str]:
    return frozenset(list_tiers())


def _service(tier: Tier) -> dict:
    cpu = tier.accelerator == "cpu"
    env = dict(tier.env)
    if cpu:
        env["VLLM_CPU_KVCACHE_SPACE"] = "${RENTSTACK_CPU_KV_GIB:-1}"
    else:
        env.setdefault("HF_HUB_OFFLINE", "1")   # weights are local; never reach for a hub at start
    return {
        "service": f"vllm-{tier.name}",
        "profile": tier.name,
        # a YAML comment line in compose.yaml: a line break would start YAML of its own
        "description": check_text(f"stacks/{tier.name}.yaml description", tier.description),
        "image": image_for(tier) if cpu else _gpu_image_ref(),
        "cpu": cpu,
        "shm_size": tier.shm_size,
        "gpus": tier.gpu.count,
        "start_period_s": tier.health.start_period_s,
        "health_test": HEALTH_CPU if cpu else HEALTH_GPU,
        "environment": [(k, _scalar(str(v))) for k, v in sorted(env.items())],
    }


def render_root_compose(tiers: list[Tier]) -> str:
    """compose.yaml: one service per shipped tier, plus `gpu` for cards given by size."""
    # A tier spanning hosts is a Ray cluster brought up over SSH (fab ray), not one compose service.
    services = [_service(t) for t in tiers if t.hosts == 1]
    custom = {
        "service": f"vllm-{CUSTOM_PROFILE}", "profile": CUSTOM_PROFILE,
        "description": "any other card, described by --gpus/--gpu-mem at render time",
        "image": _gpu_image_ref(), "cpu": False, "shm_size": "", "gpus": "${RENTSTACK_GPUS:-1}",
        "start_period_s": 900, "health_test": HEALTH_GPU,
        "environment": [("HF_HUB_OFFLINE", '"1"'), ("NCCL_P2P_DISABLE", '"${RENTSTACK_NCCL_P2P_DISABLE:-0}"')],
    }
    services = [*services, custom]
    return _env().get_template("compose.yaml.j2").render(
        services=services, profiles=", ".join(json.dumps(s["profile"]) for s in services),
        front_image=FRONT_IMAGE, front_port=FRONT_PORT, front_internal_port=FRONT_INTERNAL_PORT,
        front_dir=CONTAINER_FRONT_DIR, **around.template_values())
