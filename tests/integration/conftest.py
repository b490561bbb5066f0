"""Integration fixtures: the real CPU image and the real offline model, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from rentstack.commands._common import REPO
from rentstack.local.image import build_cpu_image, build_front_image
from rentstack.local.models import ensure_model
from rentstack.config import load_catalog
from rentstack.remote.connection import free_local_port
from rentstack.versions import VLLM_CPU_IMAGE


@pytest.fixture(autouse=True)
def _needs_docker(docker_required):
    """Every integration test needs Docker (skip locally, fail under CI=true)."""


@pytest.fixture(scope="session")
def cpu_image(docker_required) -> str:
    """The CPU image, and the front door's image every served tier runs beside it (the SSH test
    hosts share this Docker daemon, so a compose host finds both instead of pulling a base)."""
    build_cpu_image()
    build_front_image()
    return VLLM_CPU_IMAGE


@pytest.fixture(scope="session")
def smollm2(cpu_image) -> Path:
    return ensure_model(load_catalog()["smollm2-135m"], REPO / "models")


@pytest.fixture()
def free_port() -> int:
    return free_local_port()
