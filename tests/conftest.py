"""Shared test setup: integration tests need a real Docker engine.

Everything under tests/integration is marked `integration`. Without a usable Docker engine
those tests skip with the reason; with CI=true they fail instead, because CI must run them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).parent / "integration"


def docker_problem() -> str | None:
    """Why Docker cannot be used here, or None when the engine and Compose answer."""
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return f"docker CLI unusable: {exc}"
    if info.returncode != 0 or not info.stdout.strip():
        return "the Docker daemon is not running"
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if compose.returncode != 0:
        return "docker compose (v2) is missing"
    return None


def pytest_configure(config):
    # Plans must not depend on a calibration store left in this user's home by real runs.
    os.environ.setdefault("RENTSTACK_CALIBRATION",
                          str(Path(config.rootpath) / ".pytest_cache" / "calibration-isolated.json"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true an integration test may not skip, whatever made it skip."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" and item.get_closest_marker("integration"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"integration test skipped under CI=true, which must run it: {reason}"


@pytest.fixture(scope="session")
def docker_required() -> None:
    problem = docker_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires Docker for integration tests, but {problem}")
        pytest.skip(f"integration test needs Docker: {problem}")
