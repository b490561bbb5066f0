"""Two SSH hosts on a public and a private network, for the Ray cluster and replica tests.

Plain `docker compose` (not pytest-docker: the remote tests' session already uses it for
their own stack). The hosts' pip installs Ray from a wheel folder filled here once, and the
replica router from another (mounted at ROUTER_WHEELS_ON_HOST, given to `fab router --wheels`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from replica_probe import DATA, REPLICA_PORT, replica_hosts

from rentstack.commands._common import REPO
from rentstack.local.image import fill_wheelhouse
from rentstack.remote.connection import Remote
from rentstack.remote.hosts import Auth, parse_host
from rentstack.scale.ray_cluster import RAY_VERSION
from rentstack.scale.router import ROUTER_REQUIREMENT, ROUTER_VERSION
from rentstack.versions import BASE_IMAGE

HERE = Path(__file__).resolve().parent
PROJECT = "rstest-scale"
RAY_WHEELS = REPO / ".cache" / "ray-wheels"
WHEELS = REPO / ".cache" / "wheelhouse"
ROUTER_WHEELS = REPO / ".cache" / "router-wheels"
ROUTER_WHEELS_ON_HOST = "/root/router-wheels"
HEAD_SSH, WORKER_SSH = 22211, 22212
PRIVATE = {"head": "10.77.0.2", "worker": "10.77.0.3"}
PUBLIC = {"head": "172.30.0.2", "worker": "172.30.0.3"}


def _run(*args: str, env: dict | None = None, timeout: float = 900) -> str:
    proc = subprocess.run(args, text=True, capture_output=True, env=env, timeout=timeout)
    if proc.returncode:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr[-1500:]}")
    return proc.stdout


def _fill_ray_wheels() -> None:
    if any(RAY_WHEELS.glob(f"ray-{RAY_VERSION}-*.whl")):
        return
    RAY_WHEELS.mkdir(parents=True, exist_ok=True)
    _run(sys.executable, "-m", "pip", "download", "-q", f"ray=={RAY_VERSION}", "-d", str(RAY_WHEELS))


def _fill_router_wheels() -> None:
    """vllm-router and its dependencies for the hosts' Python (bookworm's 3.11, like this one's)."""
    if any(ROUTER_WHEELS.glob(f"vllm_router-{ROUTER_VERSION}-*.whl")):
        return
    ROUTER_WHEELS.mkdir(parents=True, exist_ok=True)
    _run(sys.executable, "-m", "pip", "download", "-q", ROUTER_REQUIREMENT, "-d", str(ROUTER_WHEELS))


@pytest.fixture(scope="session")
def ray_hosts(docker_required, tmp_path_factory):
    """Start head + worker; yield their SSH addresses and credentials; remove them after."""
    _fill_ray_wheels()
    _fill_router_wheels()
    fill_wheelhouse(WHEELS)
    _run("bash", str(REPO / "scripts" / "build-base-image.sh"), BASE_IMAGE)
    _run("docker", "build", "-q", "-t", "rentstack/test-ssh-host:bookworm", "-f",
         str(REPO / "tests/integration/remote/host.Dockerfile"), str(REPO / "tests/integration/remote"))
    keys = tmp_path_factory.mktemp("ssh")
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "id"))
    password = "pw-" + uuid.uuid4().hex[:12]
    env = {**os.environ, "RS_TEST_PASSWORD": password, "RS_AUTHORIZED_KEYS": str(keys / "id.pub"),
           "RS_RAY_WHEELS": str(RAY_WHEELS), "RS_WHEELS": str(WHEELS), "RS_ROUTER_WHEELS": str(ROUTER_WHEELS), "RS_HEAD_SSH_PORT": str(HEAD_SSH), "RS_WORKER_SSH_PORT": str(WORKER_SSH)}
    compose = ["docker", "compose", "-p", PROJECT, "-f", str(HERE / "hosts.compose.yaml")]
    _run(*compose, "down", "-v", "--remove-orphans", env=env)
    _run(*compose, "up", "--build", "--wait", env=env)
    try:
        yield {"head": f"root@127.0.0.1:{HEAD_SSH}", "worker": f"root@127.0.0.1:{WORKER_SSH}",
               "key": keys / "id", "password": password,
               "private": PRIVATE, "public": PUBLIC}
    finally:
        _run(*compose, "down", "-v", "--remove-orphans", env=env)


@pytest.fixture(scope="session")
def fab_scale(ray_hosts):
    """The real `fab` CLI against these hosts, logging in with the test key."""

    def run(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "RENTSTACK_SSH_PASSWORD"}
        return subprocess.run([str(REPO / ".venv" / "bin" / "fab"), *args, "--key", str(ray_hosts["key"])],
                              cwd=REPO, env=env, text=True, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    return run


@pytest.fixture()
def connect(ray_hosts):
    """Open a real SSH connection (Fabric) to 'head' or 'worker'; closed after the test."""
    opened: list[Remote] = []

    def open_(name: str) -> Remote:
        remote = Remote(parse_host(ray_hosts[name]), Auth(key_filename=str(ray_hosts["key"]))).open()
        opened.append(remote)
        return remote

    yield open_
    for remote in opened:
        remote.close()


@pytest.fixture(scope="session")
def replicas(ray_hosts, fab_scale):
    """Both hosts serving the CPU tier (native runner, real vLLM) with one shared key; for the
    router here (test_replicas.py) and on the head (test_router_on_host.py)."""
    r = fab_scale("provision", "--host", replica_hosts(ray_hosts), "--tier", "cpu", "--replicas",
                  "--port", str(REPLICA_PORT), "--data-dir", DATA)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "fab router --host" in r.stdout
    return r
