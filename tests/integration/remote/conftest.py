"""Rented-GPU-like SSH hosts for the Fabric provisioning tests (pytest-docker, compose v2).

Two hosts from hosts.compose.yaml, both reached as root@127.0.0.1:PORT with a password or
a key: `native` (a container without Docker, like AutoDL: the native runner) and `docker`
(this machine's Docker socket: the compose runner). Each has a real ext4 data disk on a loop
device; the native one starts with a filesystem smaller than its device, so the first
provision has to grow it. Everything made here is removed at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from rentstack.commands._common import REPO
from rentstack.local.image import fill_wheelhouse
from rentstack.versions import BASE_IMAGE

HERE = Path(__file__).resolve().parent
NATIVE_SSH_PORT = int(os.environ.get("RS_NATIVE_SSH_PORT", "22201"))
DOCKER_SSH_PORT = int(os.environ.get("RS_DOCKER_SSH_PORT", "22202"))
DOCKER_DATA = os.environ.get("RS_DOCKER_DATA", "/tmp/rentstack-remote-test/docker-data")
"""The Docker host's data dir: the same path inside the container and on this machine."""
WHEELS = REPO / ".cache" / "wheelhouse"
COMPOSE_PROJECT = "rstest-remote-hosts"
SERVER_PROJECT = "rstest-remote"
"""Compose project of the vLLM container the compose runner starts on this machine's daemon."""
NATIVE_PORT = 18081
DOCKER_PORT = 18082
NATIVE_DISK_START = "1G"
NATIVE_DISK_GROWN = "12G"
DOCKER_DISK = "10G"


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, text=True, capture_output=True).stdout.strip()


@dataclass
class LoopDisk:
    image: Path
    device: str
    mountpoint: str | None = None

    def remove(self) -> None:
        if self.mountpoint:
            sh("umount", self.mountpoint, check=False)
        sh("losetup", "-d", self.device, check=False)
        self.image.unlink(missing_ok=True)


def make_loop_disk(image: Path, size: str, grow_to: str | None = None) -> LoopDisk:
    """A real ext4 disk: a sparse file, a loop device, mkfs; optionally the device is then
    enlarged (file truncated bigger, `losetup -c`) so the filesystem no longer fills it."""
    sh("truncate", "-s", size, str(image))
    sh("mkfs.ext4", "-q", "-F", str(image))
    device = sh("losetup", "-f", "--show", str(image))
    if grow_to:
        sh("truncate", "-s", grow_to, str(image))
        sh("losetup", "-c", device)
    return LoopDisk(image, device)


@dataclass(frozen=True)
class TestHost:
    name: str
    ssh_port: int
    data_dir: str
    server_port: int
    container: str
    project: str = SERVER_PROJECT

    @property
    def address(self) -> str:
        return f"root@127.0.0.1:{self.ssh_port}"

    def exec(self, command: str, check: bool = True) -> str:
        proc = subprocess.run(["docker", "exec", self.container, "sh", "-c", command], text=True,
                              capture_output=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"{command!r} in {self.container} exited {proc.returncode}: {proc.stderr}")
        return proc.stdout


@dataclass(frozen=True)
class Credentials:
    password: str
    key: Path
    wrong_key: Path


@pytest.fixture(scope="session")
def credentials(tmp_path_factory) -> Credentials:
    d = tmp_path_factory.mktemp("ssh")
    for name in ("id_test", "id_wrong"):
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"rentstack-{name}", "-f", str(d / name))
    return Credentials(password="pw-" + uuid.uuid4().hex[:12], key=d / "id_test", wrong_key=d / "id_wrong")


@pytest.fixture(scope="session")
def loop_disks(tmp_path_factory, credentials, docker_required, smollm2):
    """The two data disks and the environment hosts.compose.yaml reads."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true requires the SSH host tests, and their loop-device data disks need root")
        pytest.skip("loop-device data disks need root")
    # What the hosts are built from and install from, made here when a cached CPU image
    # meant `make image` never had to (a fresh clone on a machine that built it before).
    fill_wheelhouse(WHEELS)
    sh("bash", str(REPO / "scripts" / "build-base-image.sh"), BASE_IMAGE)
    d = tmp_path_factory.mktemp("disks")
    native = make_loop_disk(d / "native.img", NATIVE_DISK_START, grow_to=NATIVE_DISK_GROWN)
    docker = make_loop_disk(d / "docker.img", DOCKER_DISK)
    Path(DOCKER_DATA).mkdir(parents=True, exist_ok=True)
    sh("mount", docker.device, DOCKER_DATA)
    docker.mountpoint = DOCKER_DATA
    env = {
        "RS_NATIVE_SSH_PORT": str(NATIVE_SSH_PORT), "RS_DOCKER_SSH_PORT": str(DOCKER_SSH_PORT),
        "RS_NATIVE_DEV": native.device, "RS_DOCKER_DATA": DOCKER_DATA, "RS_WHEELS": str(WHEELS),
        "RS_TEST_PASSWORD": credentials.password,
        "RS_AUTHORIZED_KEYS": str(credentials.key) + ".pub",
        "RS_DOCKER_CLI": shutil.which("docker") or "/usr/bin/docker",
        "RS_COMPOSE_PLUGIN": _compose_plugin(),
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield {"native": native, "docker": docker}
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    # The compose runner's vLLM container lives on this machine's daemon: remove it by its project label.
    ids = sh("docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={SERVER_PROJECT}", check=False)
    if ids:
        sh("docker", "rm", "-f", *ids.split(), check=False)
    nets = sh("docker", "network", "ls", "-q", "--filter", f"label=com.docker.compose.project={SERVER_PROJECT}", check=False)
    if nets:
        sh("docker", "network", "rm", *nets.split(), check=False)
    native.remove()
    docker.remove()


def _compose_plugin() -> str:
    for candidate in (Path(sys.executable).parent / "docker-compose", Path.home() / ".docker/cli-plugins/docker-compose"):
        if candidate.exists():
            return str(candidate.resolve())
    return shutil.which("docker-compose") or "/usr/local/bin/docker-compose"


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(HERE / "hosts.compose.yaml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return COMPOSE_PROJECT


@pytest.fixture(scope="session")
def docker_setup(loop_disks):
    # A stale stack from an interrupted session goes first; --wait honours the sshd healthchecks.
    return ["down -v --remove-orphans", "up --build --wait"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down -v --remove-orphans"]


@pytest.fixture(scope="session")
def hosts(docker_services, loop_disks) -> dict[str, TestHost]:
    return {
        "native": TestHost("native", NATIVE_SSH_PORT, "/root/autodl-tmp", NATIVE_PORT,
                           f"{COMPOSE_PROJECT}-native-host-1"),
        "docker": TestHost("docker", DOCKER_SSH_PORT, DOCKER_DATA, DOCKER_PORT, f"{COMPOSE_PROJECT}-docker-host-1"),
    }


@dataclass
class FabResult:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture(scope="session")
def fab(credentials):
    """Run the real `fab` CLI from the repository root; password from the environment."""

    def run(*args: str, password: str | None = credentials.password, timeout: float = 1800) -> FabResult:
        env = {k: v for k, v in os.environ.items() if k != "RENTSTACK_SSH_PASSWORD"}
        if password is not None:
            env["RENTSTACK_SSH_PASSWORD"] = password
        start = time.monotonic()
        proc = subprocess.run([str(REPO / ".venv" / "bin" / "fab"), *args], cwd=REPO, env=env, text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return FabResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)

    return run
