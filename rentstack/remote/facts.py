"""Host facts: what a rented host is, read with shell commands and parsed by pure functions.

Each fact is a shell command string and a pure ``parse(output, exit_code)`` that turns the
command's stdout into a typed value. Nothing here opens a connection: ``gather(run)`` takes
any ``run(cmd) -> (exit_code, stdout)`` callable (Fabric, subprocess, a test fake), sends one
script that prints every fact in its own delimited section, and parses the sections. One
round trip matters on rented hosts reached through a high-latency SSH gateway.

The parsers are tested on captured real output in ``tests/golden/facts/``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, TypeVar

from rentstack.errors import RentstackError
from rentstack.remote.front import FRONT_FACT_COMMAND

T = TypeVar("T")

DEFAULT_DATA_DIR = "/root/autodl-tmp"
"""AutoDL's expandable data disk; the place for weights, venvs and caches."""

COMMAND_TIMEOUT_S = 20
"""Per-command limit inside the facts script: a wedged nvidia-smi or docker daemon must not hang it."""

GROW_SLACK_BYTES = 16 * 1024 * 1024
"""A block device this much larger than its filesystem counts as 'grow the filesystem'.
ext4/xfs round their size down to a block group or allocation unit, so a few MiB of
difference is normal and not worth a resize."""

GROW_RATIO_WITHOUT_SUPERBLOCK = 1.25
"""Without the filesystem's own block count (dumpe2fs unavailable) compare the device with
df's size, which excludes metadata (inode tables, journal: ~1.6 % on a 256 GiB ext4 disk,
13 % on a 100 MiB one), so only a clearly larger device counts."""


@dataclass(frozen=True)
class Fact(Generic[T]):
    """A remote read: a shell command and a pure parser of its stdout and exit code."""

    name: str
    command: str
    parse: Callable[[str, int], T]


# --------------------------------------------------------------------------- OS, CPU, RAM


@dataclass(frozen=True)
class OsRelease:
    """Distribution from /etc/os-release."""

    id: str = ""
    version_id: str = ""
    pretty_name: str = ""
    codename: str = ""
    id_like: tuple[str, ...] = ()

    @property
    def is_debian_family(self) -> bool:
        """Debian or Ubuntu (or a derivative): the distributions host preparation knows."""
        return self.id in ("debian", "ubuntu") or "debian" in self.id_like or "ubuntu" in self.id_like


def parse_os_release(output: str, exit_code: int = 0) -> OsRelease:
    """Parse /etc/os-release (shell-style KEY=value lines, values optionally quoted)."""
    values: dict[str, str] = {}
    for line in output.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key.strip()] = parts[0] if parts else ""
    return OsRelease(
        id=values.get("ID", "").lower(),
        version_id=values.get("VERSION_ID", ""),
        pretty_name=values.get("PRETTY_NAME", ""),
        codename=values.get("VERSION_CODENAME", "") or values.get("UBUNTU_CODENAME", ""),
        id_like=tuple(values.get("ID_LIKE", "").lower().split()),
    )


@dataclass(frozen=True)
class Cpu:
    """CPUs this process may use (nproc) and what they are (lscpu)."""

    count: int = 0
    model: str = ""
    arch: str = ""
    avx2: bool = False
    avx512: bool = False


def parse_cpu(output: str, exit_code: int = 0) -> Cpu:
    """Parse ``nproc`` (first line) followed by ``lscpu``'s 'Key: value' lines."""
    lines = output.splitlines()
    count = 0
    if lines and lines[0].strip().isdigit():
        count = int(lines[0].strip())
        lines = lines[1:]
    info: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip(), value.strip())
    if not count and info.get("CPU(s)", "").isdigit():
        count = int(info["CPU(s)"])
    flags = set(info.get("Flags", "").split())
    return Cpu(
        count=count,
        model=info.get("Model name", ""),
        arch=info.get("Architecture", ""),
        avx2="avx2" in flags,
        avx512="avx512f" in flags,
    )


@dataclass(frozen=True)
class Memory:
    """RAM as the kernel reports it (/proc/meminfo), in bytes."""

    total_bytes: int = 0
    available_bytes: int = 0


def parse_meminfo(output: str, exit_code: int = 0) -> Memory:
    """Parse /proc/meminfo ('MemTotal:  24684096 kB')."""
    values: dict[str, int] = {}
    for line in output.splitlines():
        m = re.match(r"^(\w+):\s+(\d+)(?:\s+kB)?\s*$", line)
        if m:
            values[m.group(1)] = int(m.group(2)) * (1024 if line.rstrip().endswith("kB") else 1)
    return Memory(
        total_bytes=values.get("MemTotal", 0),
        available_bytes=values.get("MemAvailable", values.get("MemFree", 0)),
    )


@dataclass(frozen=True)
class CgroupLimits:
    """Container limits, which /proc/meminfo and nproc do not show (None = unlimited)."""

    cpus: float | None = None
    memory_bytes: int | None = None


_UNLIMITED_MEMORY = 1 << 60  # cgroup v1 reports "no limit" as a page-rounded 2**63-1


def parse_cgroup_limits(output: str, exit_code: int = 0) -> CgroupLimits:
    """Parse 'path: content' lines for cgroup v2 cpu.max/memory.max or v1 cfs quota/limit."""
    files: dict[str, str] = {}
    for line in output.splitlines():
        path, sep, value = line.partition(": ")
        if sep:
            files[path.strip().rsplit("/", 1)[-1]] = value.strip()
    cpus: float | None = None
    if "cpu.max" in files:
        quota, _, period = files["cpu.max"].partition(" ")
        if quota.isdigit() and period.isdigit() and int(period):
            cpus = int(quota) / int(period)
    elif files.get("cpu.cfs_quota_us", "-1").lstrip("-").isdigit() and int(files.get("cpu.cfs_quota_us", "-1")) > 0:
        period = int(files.get("cpu.cfs_period_us", "100000") or 100000)
        cpus = int(files["cpu.cfs_quota_us"]) / period
    memory: int | None = None
    raw = files.get("memory.max", files.get("memory.limit_in_bytes", ""))
    if raw.isdigit() and int(raw) < _UNLIMITED_MEMORY:
        memory = int(raw)
    return CgroupLimits(cpus=cpus, memory_bytes=memory)


# --------------------------------------------------------------------------- GPUs


@dataclass(frozen=True)
class Gpu:
    """One GPU from nvidia-smi's query interface; memory in MiB as nvidia-smi reports it."""

    index: int
    name: str
    memory_total_mib: int
    memory_free_mib: int | None
    driver_version: str = ""
    compute_cap: str = ""
    """CUDA compute capability, e.g. "8.9" ('' when nvidia-smi could not say); which vLLM
    builds ship kernels for this card (rentstack.releases)."""

    @property
    def memory_total_bytes(self) -> int:
        return self.memory_total_mib * 1024 * 1024

    @property
    def memory_free_bytes(self) -> int | None:
        return None if self.memory_free_mib is None else self.memory_free_mib * 1024 * 1024


def nvidia_smi_number(cell: str) -> float | None:
    """One number cell of `nvidia-smi --format=csv,nounits`; None for the '[N/A]' or
    '[Not Supported]' it prints for fields a vGPU or driver lacks."""
    cell = cell.strip()
    return float(cell) if re.fullmatch(r"\d+(?:\.\d+)?", cell) else None


def nvidia_smi_rows(output: str, exit_code: int = 0) -> list[tuple[int, str, list[str]]]:
    """(index, name, [the last three cells]) of each card in the output of
    `nvidia-smi --query-gpu=index,name,<three fields> --format=csv,noheader`.

    A failing nvidia-smi (not installed: 127; AutoDL's no-GPU boot: 'couldn't communicate
    with the NVIDIA driver'; 'No devices were found') means no GPU: no rows.
    """
    if exit_code != 0:
        return []
    rows = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 5 or not cells[0].isdigit():
            continue
        # A GPU name never holds a comma today, but keep the last three columns fixed anyway.
        rows.append((int(cells[0]), ",".join(cells[1:-3]).strip(), cells[-3:]))
    return rows


def _mib(cell: str) -> int | None:
    number = nvidia_smi_number(cell)
    return None if number is None else int(number)


def parse_gpus(output: str, exit_code: int = 0) -> tuple[Gpu, ...]:
    """Parse ``--query-gpu=index,name,memory.total,memory.free,driver_version --format=csv,noheader,nounits``;
    no GPU (see nvidia_smi_rows) is an empty tuple, and so is a card without a total."""
    gpus = []
    for index, name, (total, free, driver) in nvidia_smi_rows(output, exit_code):
        total_mib = _mib(total)
        if total_mib is not None:
            gpus.append(Gpu(index, name, total_mib, _mib(free), driver))
    return tuple(gpus)


def parse_compute_caps(output: str, exit_code: int = 0) -> dict[int, str]:
    """Parse ``--query-gpu=index,compute_cap --format=csv,noheader`` ('0, 8.9') by GPU index.

    A separate query from ``parse_gpus``: drivers before ~510 do not know the field and fail
    the whole query, which must not hide the cards themselves."""
    if exit_code != 0:
        return {}
    caps: dict[int, str] = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) == 2 and cells[0].isdigit() and re.fullmatch(r"\d+\.\d+", cells[1]):
            caps[int(cells[0])] = cells[1]
    return caps


@dataclass(frozen=True)
class NvidiaDriver:
    """Driver and the highest CUDA version it supports, from the nvidia-smi table header."""

    driver_version: str
    cuda_version: str


def parse_nvidia_smi_header(output: str, exit_code: int = 0) -> NvidiaDriver | None:
    """Parse '| NVIDIA-SMI 550.54.14  Driver Version: 550.54.14  CUDA Version: 12.4 |'."""
    if exit_code != 0:
        return None
    driver = re.search(r"Driver Version:\s*([0-9][\w.]*)", output)
    cuda = re.search(r"CUDA Version:\s*([0-9][\w.]*)", output)
    if not driver:
        return None
    return NvidiaDriver(driver.group(1), cuda.group(1) if cuda else "")


# --------------------------------------------------------------------------- disks


@dataclass(frozen=True)
class Mount:
    """One line of ``df -B1 --output=source,fstype,size,used,avail,target``."""

    source: str
    fstype: str
    size_bytes: int
    used_bytes: int
    avail_bytes: int
    target: str


def parse_df(output: str, exit_code: int = 0) -> tuple[Mount, ...]:
    """Parse df's byte-sized output; the header line and unparseable lines are skipped."""
    mounts = []
    for line in output.splitlines():
        cells = line.split(None, 5)
        if len(cells) < 6 or not cells[2].isdigit():
            continue
        mounts.append(Mount(cells[0], cells[1], int(cells[2]), int(cells[3]), int(cells[4]), cells[5]))
    return tuple(mounts)


@dataclass(frozen=True)
class BlockDevice:
    """A block device from ``lsblk -b -J`` (children flattened into the list)."""

    name: str
    path: str
    size_bytes: int
    type: str
    fstype: str | None = None
    mountpoint: str | None = None
    parent: str | None = None


def parse_lsblk(output: str, exit_code: int = 0) -> tuple[BlockDevice, ...]:
    """Parse ``lsblk -b -J -o NAME,PATH,SIZE,TYPE,FSTYPE,MOUNTPOINT`` (old lsblk: strings, no PATH)."""
    if exit_code != 0 or not output.strip():
        return ()
    try:
        data = json.loads(output)
    except ValueError:
        return ()
    found: list[BlockDevice] = []

    def walk(entries: list[dict[str, Any]], parent: str | None) -> None:
        for entry in entries or []:
            name = str(entry.get("name", ""))
            size = entry.get("size") or 0
            found.append(
                BlockDevice(
                    name=name,
                    path=str(entry.get("path") or f"/dev/{name}"),
                    size_bytes=int(size) if str(size).isdigit() else 0,
                    type=str(entry.get("type", "")),
                    fstype=entry.get("fstype"),
                    mountpoint=entry.get("mountpoint"),
                    parent=parent,
                )
            )
            walk(entry.get("children", []), name)

    walk(data.get("blockdevices", []), None)
    return tuple(found)


@dataclass(frozen=True)
class DataDiskProbe:
    """The filesystem holding the data directory, and its size as the superblock records it."""

    mount: Mount | None
    fs_bytes: int | None = None
    """Block count x block size from dumpe2fs (ext2/3/4 only); None when unknown."""


def parse_data_disk(output: str, exit_code: int = 0) -> DataDiskProbe:
    """Parse the data-disk probe: df lines for the path, then 'Block count:'/'Block size:'."""
    mounts = parse_df(output)
    count = re.search(r"^Block count:\s*(\d+)", output, re.M)
    size = re.search(r"^Block size:\s*(\d+)", output, re.M)
    fs_bytes = int(count.group(1)) * int(size.group(1)) if count and size else None
    return DataDiskProbe(mount=mounts[0] if mounts else None, fs_bytes=fs_bytes)


@dataclass(frozen=True)
class DataDisk:
    """Where weights and caches go, how much room it has, and whether it can be grown in place."""

    path: str
    mount: Mount
    device: BlockDevice | None
    fs_bytes: int | None

    @property
    def avail_bytes(self) -> int:
        return self.mount.avail_bytes

    @property
    def is_own_filesystem(self) -> bool:
        """True when the data directory is a mount of its own (not a folder on /)."""
        return self.mount.target != "/"

    @property
    def needs_grow(self) -> bool | None:
        """True when the block device is larger than its filesystem (disk expanded in the
        console, filesystem not yet resized); None when the device is not visible here."""
        if self.device is None or not self.device.size_bytes:
            return None
        if self.fs_bytes:
            return self.device.size_bytes - self.fs_bytes > GROW_SLACK_BYTES
        return self.device.size_bytes > self.mount.size_bytes * GROW_RATIO_WITHOUT_SUPERBLOCK + GROW_SLACK_BYTES


def find_device(source: str, devices: tuple[BlockDevice, ...]) -> BlockDevice | None:
    """The lsblk entry for a df source such as /dev/vdb or /dev/loop3 (None for overlay, nfs...)."""
    for device in devices:
        if device.path == source:
            return device
    base = source.rsplit("/", 1)[-1]
    for device in devices:
        if source.startswith("/dev/") and device.name == base:
            return device
    return None


# --------------------------------------------------------------------------- Docker


@dataclass(frozen=True)
class Docker:
    """The Docker engine as ``docker info --format '{{json .}}'`` sees it."""

    cli_installed: bool = False
    reachable: bool = False
    server_version: str = ""
    runtimes: tuple[str, ...] = ()
    default_runtime: str = ""
    root_dir: str = ""


def parse_docker_info(output: str, exit_code: int = 0) -> Docker:
    """Parse docker info's JSON. Exit 127: no CLI. Exit 1 with empty ServerVersion: no daemon
    (not running, or the socket is not ours)."""
    if exit_code == 127:
        return Docker()
    try:
        data = json.loads(output.strip().splitlines()[-1]) if output.strip() else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    server = str(data.get("ServerVersion") or "")
    return Docker(
        cli_installed=True,
        reachable=exit_code == 0 and bool(server),
        server_version=server,
        runtimes=tuple(sorted((data.get("Runtimes") or {}).keys())),
        default_runtime=str(data.get("DefaultRuntime") or ""),
        root_dir=str(data.get("DockerRootDir") or ""),
    )


def parse_compose_version(output: str, exit_code: int = 0) -> str | None:
    """Parse ``docker compose version --short`` ('2.24.6', 'v2.24.6', '5.6.1'); None if absent."""
    if exit_code != 0:
        return None
    m = re.search(r"v?(\d+\.\d+(?:\.\d+)?\S*)", output)
    return m.group(1) if m else None


def parse_command_paths(output: str, exit_code: int = 0) -> tuple[str, ...]:
    """Parse ``command -v a b c`` output: the paths of the programs that exist."""
    return tuple(line.strip() for line in output.splitlines() if line.strip().startswith("/"))


# --------------------------------------------------------------------------- container, AutoDL


@dataclass(frozen=True)
class Container:
    """Whether this host is itself a container, and the evidence for it."""

    evidence: tuple[str, ...] = ()

    @property
    def is_container(self) -> bool:
        return bool(self.evidence)


_CONTAINER_CGROUP = re.compile(r"docker|kubepods|containerd|libpod|lxc|/ecs/|garden")


def parse_container(output: str, exit_code: int = 0) -> Container:
    """Parse the container probe ('dockerenv: yes', 'env: container=…', 'rootfs: overlay', 'cgroup: …')."""
    evidence: list[str] = []
    for line in output.splitlines():
        key, _, value = line.partition(": ")
        value = value.strip()
        if key == "dockerenv" and value == "yes":
            evidence.append("/.dockerenv exists")
        elif key == "containerenv" and value == "yes":
            evidence.append("/run/.containerenv exists")
        elif key == "env" and value.startswith("container="):
            evidence.append(f"pid 1 has {value}")
        elif key == "rootfs" and value in ("overlay", "aufs", "fuse-overlayfs"):
            evidence.append(f"/ is {value}")
        elif key == "cgroup" and _CONTAINER_CGROUP.search(value):
            if not any(e.startswith("/proc/1/cgroup") for e in evidence):
                evidence.append(f"/proc/1/cgroup names {_CONTAINER_CGROUP.search(value).group(0)}")
    return Container(tuple(evidence))


_AUTODL_URL = re.compile(r"""^(?:export\s+)?AutoDLService(\d+)URL=["']?([^"'\s]+)""")


def parse_autodl_env(output: str, exit_code: int = 0) -> dict[int, str]:
    """Parse AutoDL's custom-service URLs ('export AutoDLService6006URL="https://…"') by port."""
    urls: dict[int, str] = {}
    for line in output.splitlines():
        m = _AUTODL_URL.match(line.strip())
        if m and m.group(2):
            urls.setdefault(int(m.group(1)), m.group(2))
    return urls


def parse_python_version(output: str, exit_code: int = 0) -> str | None:
    """Parse python3's version ('3.11.2'); None when there is no python3 (fetch_weights needs it)."""
    m = re.search(r"(\d+\.\d+(?:\.\d+)?)", output)
    return m.group(1) if exit_code == 0 and m else None


# --------------------------------------------------------------------------- the facts


OS = Fact("os", "cat /etc/os-release", parse_os_release)
CPU = Fact("cpu", "nproc; LC_ALL=C lscpu", parse_cpu)
MEMORY = Fact("memory", "cat /proc/meminfo", parse_meminfo)
CGROUP = Fact(
    "cgroup",
    "for f in /sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
    "/sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/memory/memory.limit_in_bytes; "
    'do [ -r "$f" ] && echo "$f: $(cat "$f")"; done; true',
    parse_cgroup_limits,
)
GPUS = Fact(
    "gpus",
    "nvidia-smi --query-gpu=index,name,memory.total,memory.free,driver_version --format=csv,noheader,nounits",
    parse_gpus,
)
GPU_CAPS = Fact("gpu_caps", "nvidia-smi --query-gpu=index,compute_cap --format=csv,noheader", parse_compute_caps)
NVIDIA_DRIVER = Fact("nvidia_driver", "nvidia-smi", parse_nvidia_smi_header)
MOUNTS = Fact("mounts", "df -B1 --output=source,fstype,size,used,avail,target", parse_df)
BLOCK_DEVICES = Fact(
    "block_devices",
    # util-linux before 2.33 has no PATH column; parse_lsblk derives /dev/NAME then.
    "lsblk -b -J -o NAME,PATH,SIZE,TYPE,FSTYPE,MOUNTPOINT 2>/dev/null || lsblk -b -J -o NAME,SIZE,TYPE,FSTYPE,MOUNTPOINT",
    parse_lsblk,
)
DOCKER = Fact("docker", "command -v docker >/dev/null || exit 127; docker info --format '{{json .}}'", parse_docker_info)
COMPOSE = Fact("compose", "docker compose version --short", parse_compose_version)
NVIDIA_TOOLKIT = Fact(
    "nvidia_toolkit",
    "command -v nvidia-container-runtime nvidia-ctk nvidia-container-runtime-hook; true",
    parse_command_paths,
)
CONTAINER = Fact(
    "container",
    "[ -e /.dockerenv ] && echo 'dockerenv: yes'; [ -e /run/.containerenv ] && echo 'containerenv: yes'; "
    "tr '\\0' '\\n' < /proc/1/environ 2>/dev/null | grep '^container=' | sed 's/^/env: /'; "
    "awk '$2==\"/\" {print \"rootfs: \" $3; exit}' /proc/mounts; "
    "sed 's/^/cgroup: /' /proc/1/cgroup; true",
    parse_container,
)
AUTODL = Fact(
    "autodl",
    "cat /etc/profile.d/autodl.env.sh 2>/dev/null; env | grep '^AutoDLService'; true",
    parse_autodl_env,
)
PYTHON = Fact("python", "python3 -c 'import sys; print(sys.version.split()[0])'", parse_python_version)


def data_disk_fact(path: str = DEFAULT_DATA_DIR) -> Fact[DataDiskProbe]:
    """The filesystem that holds ``path``, plus its ext4 superblock size when readable."""
    p = shlex.quote(path)
    command = (
        f"df -B1 --output=source,fstype,size,used,avail,target -- {p} || exit 1; "
        f"src=$(df --output=source -- {p} | tail -n 1); "
        'dumpe2fs -h -- "$src" 2>/dev/null | grep -E "^Block (count|size):"; true'
    )
    return Fact("data_disk", command, parse_data_disk)


STATIC_FACTS: tuple[Fact[Any], ...] = (
    OS, CPU, MEMORY, CGROUP, GPUS, GPU_CAPS, NVIDIA_DRIVER, MOUNTS, BLOCK_DEVICES,
    DOCKER, COMPOSE, NVIDIA_TOOLKIT, CONTAINER, AUTODL, PYTHON,
)  # fmt: skip


# --------------------------------------------------------------------------- read by steps
# Facts a provisioning step reads when it runs (their command depends on the tier, the model
# or a path), one command each, parsed here like the static ones. A step never parses a
# remote command's output itself.


def _q(word: str) -> str:
    return shlex.quote(word)


def parse_ok(output: str, exit_code: int = 0) -> bool:
    """For test-style commands (test -f, grep -q, docker image inspect): exit 0 means yes."""
    return exit_code == 0


@dataclass(frozen=True)
class Space:
    """``df -B1 --output=size,avail PATH``: the filesystem's size and what is free, in bytes."""

    size_bytes: int
    avail_bytes: int


def parse_df_space(output: str, exit_code: int = 0) -> Space:
    for line in reversed(output.strip().splitlines()):
        parts = line.split()
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return Space(int(parts[0]), int(parts[1]))
    raise RentstackError(f"could not read free space from df (exit {exit_code}): {output.strip()[:120]!r}")


def parse_df_size(output: str, exit_code: int = 0) -> int:
    """``df -B1 --output=size PATH`` (a header, then bytes); 0 when unreadable."""
    for line in reversed(output.strip().splitlines()):
        if line.strip().isdigit():
            return int(line.strip())
    return 0


def parse_file_sizes(output: str, exit_code: int = 0) -> dict[str, int]:
    """``stat -c '%s %n' NAME...`` lines -> {name: bytes}; names stat could not see are absent."""
    sizes: dict[str, int] = {}
    for line in output.splitlines():
        size, _, name = line.partition(" ")
        if size.isdigit() and name:
            sizes[name] = int(size)
    return sizes


def parse_sha256sums(output: str, exit_code: int = 0) -> dict[str, str]:
    """``sha256sum PATH...`` lines ('<64 hex>  <path>') -> {path: digest}; missing files are absent."""
    sums: dict[str, str] = {}
    for line in output.splitlines():
        digest, _, path = line.partition("  ")
        if re.fullmatch(r"[0-9a-f]{64}", digest) and path:
            sums[path] = digest
    return sums


def parse_text(output: str, exit_code: int = 0) -> str | None:
    """A file's text (``cat``), or None when it is missing or unreadable."""
    return output if exit_code == 0 else None


def parse_venv_marker(output: str, exit_code: int = 0) -> str | None:
    """The wheel a complete venv was made from (its marker file), or None when incomplete."""
    text = output.strip()
    return text if exit_code == 0 and text else None


def parse_compose_state(output: str, exit_code: int = 0) -> str:
    """``docker compose ps -a --format '{{.State}} {{.Status}}' SERVICE``: 'running ...', 'exited ...' or ''."""
    lines = output.strip().splitlines()
    return lines[0].strip() if lines else ""


def df_space_fact(path: str) -> Fact[Space]:
    return Fact("df_space", f"df -B1 --output=size,avail -- {_q(path)}", parse_df_space)


def df_size_fact(path: str) -> Fact[int]:
    return Fact("df_size", f"df -B1 --output=size -- {_q(path)}", parse_df_size)


SHM = Fact("shm_size", "df -B1 --output=size /dev/shm 2>/dev/null | tail -n 1", parse_df_size)
"""/dev/shm's size (0: unknown); Docker gives a container 64 MiB unless told otherwise."""


def image_present_fact(image: str) -> Fact[bool]:
    return Fact("image_present", f"docker image inspect {_q(image)} >/dev/null 2>&1", parse_ok)


def parse_images(output: str, exit_code: int = 0) -> dict[str, bool]:
    """``images_fact``'s 'present IMAGE' / 'absent IMAGE' lines -> {image: present}."""
    found: dict[str, bool] = {}
    for line in output.splitlines():
        word, _, image = line.strip().partition(" ")
        if word in ("present", "absent") and image:
            found[image] = word == "present"
    return found


def images_fact(images: tuple[str, ...]) -> Fact[dict[str, bool]]:
    """Which of ``images`` the host's Docker holds, in one command (an image the output does
    not name counts as absent)."""
    command = "; ".join(f"if docker image inspect {_q(i)} >/dev/null 2>&1; then echo present {_q(i)}; "
                        f"else echo absent {_q(i)}; fi" for i in images)
    return Fact("images", command, parse_images)


def parse_compose_services(output: str, exit_code: int = 0) -> dict[str, str]:
    """``docker compose ps -a --format '{{.Service}} {{.State}} {{.Status}}'`` -> {service:
    'running Up 2 minutes (healthy)'}; services never created are absent."""
    states: dict[str, str] = {}
    for line in output.splitlines():
        service, _, state = line.strip().partition(" ")
        if service and state:
            states[service] = state.strip()
    return states


def file_exists_fact(path: str) -> Fact[bool]:
    return Fact("file_exists", f"test -f {_q(path)}", parse_ok)


def line_in_file_fact(line: str, path: str) -> Fact[bool]:
    """Is ``line`` a whole line of ``path`` (a ~-path is left for the shell to expand)."""
    target = path if path.startswith("~/") and re.fullmatch(r"~/[A-Za-z0-9._-]+", path) else _q(path)
    return Fact("line_in_file", f"grep -qxF {_q(line)} {target}", parse_ok)


def wheelhouse_fact(directory: str) -> Fact[bool]:
    """Does ``directory`` hold any wheel (the native runner then installs offline from it)."""
    return Fact("wheelhouse", f"ls {_q(directory)}/*.whl >/dev/null 2>&1", parse_ok)


def file_sizes_fact(directory: str, names: list[str]) -> Fact[dict[str, int]]:
    words = " ".join(_q(n) for n in names)
    return Fact("file_sizes", f"cd {_q(directory)} 2>/dev/null && stat -c '%s %n' -- {words} 2>/dev/null; true",
                parse_file_sizes)


def sha256_fact(paths: list[str]) -> Fact[dict[str, str]]:
    return Fact("sha256", "sha256sum -- " + " ".join(_q(p) for p in paths) + " 2>/dev/null; true", parse_sha256sums)


def file_text_fact(path: str) -> Fact[str | None]:
    return Fact("file_text", f"cat -- {_q(path)} 2>/dev/null", parse_text)


def parse_output(output: str, exit_code: int = 0) -> str:
    """A command's output as it is (a log tail: empty when there is no log yet)."""
    return output


def log_tail_fact(command: str) -> Fact[str]:
    return Fact("log_tail", command, parse_output)


def parse_manifest_fact(output: str, exit_code: int = 0):  # noqa: ANN201 - download.Manifest | None
    """The download manifest's headline (rentstack.remote.download.parse_manifest), None when absent."""
    from rentstack.remote.download import parse_manifest

    return parse_manifest(output)


def manifest_fact(directory: str) -> Fact[Any]:
    """What the downloader last verified in ``directory`` (its manifest, read with cat)."""
    from rentstack.remote.download import manifest_command

    return Fact("download_manifest", manifest_command(directory), parse_manifest_fact)


def command_fact(name: str, command: str, parse: Callable[[str, int], T]) -> Fact[T]:
    """A fact whose command is built elsewhere (rentstack.remote.runners: venv marker,
    server state, health probe); the parser still lives here."""
    return Fact(name, command, parse)


# --------------------------------------------------------------------------- the front door (native)


@dataclass(frozen=True)
class FrontFacts:
    nginx: str | None          # version, None when nginx is not installed
    njs: bool                  # the njs module is installed
    njs_packaged: bool         # apt can install it

    @property
    def njs_usable(self) -> bool:
        """After the install step the front can use njs."""
        return self.njs or self.njs_packaged

    @property
    def ready(self) -> bool:
        """Nothing to install: nginx is there, with njs when the distribution offers it."""
        return self.nginx is not None and (self.njs or not self.njs_packaged)


def parse_front(output: str, code: int = 0) -> FrontFacts:
    """FRONT_FACT_COMMAND's output (rentstack.remote.front): key=value lines."""
    values = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    return FrontFacts(nginx=values.get("nginx", "").strip() or None, njs=values.get("njs", "").strip() == "yes",
                      njs_packaged=values.get("njs_packaged", "").strip() == "yes")


FRONT = Fact("front", FRONT_FACT_COMMAND, parse_front)
"""nginx and njs on a native host, for the front door (read again after installing)."""


STEP_PARSERS: dict[str, Callable[[str, int], Any]] = {
    "df_space": parse_df_space, "df_size": parse_df_size, "shm_size": parse_df_size, "ok": parse_ok,
    "file_sizes": parse_file_sizes, "sha256": parse_sha256sums, "file_text": parse_text,
    "venv_marker": parse_venv_marker, "compose_state": parse_compose_state, "log_tail": parse_output,
    "download_manifest": parse_manifest_fact, "front": parse_front, "images": parse_images,
    "compose_services": parse_compose_services,
}
"""The parsers of the facts above, by the name their golden cases use."""


# --------------------------------------------------------------------------- aggregate

Runner = Literal["compose", "native"]


@dataclass(frozen=True)
class HostFacts:
    """Everything provisioning needs to know about a host, from one round trip."""

    os: OsRelease = field(default_factory=OsRelease)
    cpu: Cpu = field(default_factory=Cpu)
    memory: Memory = field(default_factory=Memory)
    cgroup: CgroupLimits = field(default_factory=CgroupLimits)
    gpus: tuple[Gpu, ...] = ()
    nvidia_driver: NvidiaDriver | None = None
    mounts: tuple[Mount, ...] = ()
    block_devices: tuple[BlockDevice, ...] = ()
    data_disk: DataDisk | None = None
    docker: Docker = field(default_factory=Docker)
    compose_version: str | None = None
    nvidia_toolkit: tuple[str, ...] = ()
    container: Container = field(default_factory=Container)
    autodl_urls: Mapping[int, str] = field(default_factory=dict)
    python_version: str | None = None

    @property
    def cpu_only(self) -> bool:
        """No usable GPU: AutoDL's no-GPU boot, or a CPU machine. Download yes, serve GPU tiers no."""
        return not self.gpus

    @property
    def effective_cpus(self) -> float:
        """CPUs actually available: nproc, capped by a cgroup CPU quota."""
        count = float(self.cpu.count or 1)
        return min(count, self.cgroup.cpus) if self.cgroup.cpus else count

    @property
    def effective_memory_bytes(self) -> int:
        """RAM actually available: MemTotal, capped by a cgroup memory limit (meminfo ignores it)."""
        total = self.memory.total_bytes
        return min(total, self.cgroup.memory_bytes) if self.cgroup.memory_bytes else total

    @property
    def docker_usable(self) -> bool:
        """An engine answers and Compose v2 is there: what the compose runner needs."""
        return self.docker.reachable and self.compose_version is not None

    @property
    def runner(self) -> Runner:
        """'compose' where Docker answers (or can be installed: a VM); 'native' in a container
        without Docker (AutoDL), where Docker cannot run."""
        if self.docker.reachable:
            return "compose"
        return "native" if self.container.is_container else "compose"

    @property
    def needs_docker_install(self) -> bool:
        """A VM (not a container) whose Docker engine or Compose plugin is missing."""
        return self.runner == "compose" and not self.docker_usable

    @property
    def nvidia_container_ready(self) -> bool:
        """Docker can hand GPUs to containers: the NVIDIA toolkit is installed or registered."""
        tools = {path.rsplit("/", 1)[-1] for path in self.nvidia_toolkit}
        return "nvidia" in self.docker.runtimes or bool(tools & {"nvidia-ctk", "nvidia-container-runtime-hook"})

    @property
    def autodl_service_url(self) -> str | None:
        """AutoDL's public URL for a server on container port 6006, if this host has one."""
        return self.autodl_urls.get(6006)


# --------------------------------------------------------------------------- one round trip

_SECTION = "@@rentstack-fact:"
_RC = "@@rentstack-rc:"


def facts_script(facts: tuple[Fact[Any], ...], timeout_s: int = COMMAND_TIMEOUT_S) -> str:
    """One POSIX sh script that runs every fact's command and prints delimited sections.

    Each command runs in its own ``sh -c`` with stdin closed, stderr dropped and a time
    limit, and its exit code printed after its output, so one failing probe (nvidia-smi on
    a no-GPU boot) does not disturb the others.
    """
    lines = [
        "#!/bin/sh",
        "# generated by rentstack.remote.facts — reads the host, changes nothing",
        f'if command -v timeout >/dev/null 2>&1; then _rs_t="timeout {int(timeout_s)}"; else _rs_t=""; fi',
        "export LC_ALL=C",
    ]
    for fact in facts:
        lines.append(f"printf '\\n%s\\n' '{_SECTION}{fact.name}'")
        lines.append(f"$_rs_t sh -c {shlex.quote(fact.command)} </dev/null 2>/dev/null")
        lines.append(f"printf '\\n{_RC}%s\\n' \"$?\"")
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def split_sections(output: str) -> dict[str, tuple[int, str]]:
    """Split the facts script's output into {fact name: (exit code, stdout)}."""
    sections: dict[str, tuple[int, str]] = {}
    name: str | None = None
    body: list[str] = []
    for line in output.split("\n"):
        if line.startswith(_SECTION):
            name, body = line[len(_SECTION) :].strip(), []
        elif line.startswith(_RC) and name is not None:
            code = line[len(_RC) :].strip()
            text = "\n".join(body)
            # printf put one newline before the marker; drop it, keep the command's own.
            if text.endswith("\n"):
                text = text[:-1]
            sections[name] = (int(code) if code.lstrip("-").isdigit() else 1, text)
            name = None
        elif name is not None:
            body.append(line)
    return sections


RunFn = Callable[[str], "tuple[int, str]"]


def facts_command(data_dir: str = DEFAULT_DATA_DIR) -> str:
    """The one command that reads every fact: the script handed to ``sh -c``, so it runs the
    same whatever the login shell is (bash, zsh, fish)."""
    return "sh -c " + shlex.quote(facts_script((*STATIC_FACTS, data_disk_fact(data_dir))))


def gather(run: RunFn, data_dir: str = DEFAULT_DATA_DIR) -> HostFacts:
    """Read every fact from a host in one round trip.

    ``run(command)`` runs a command line with the host user's shell and returns (exit code,
    stdout), e.g. with Fabric: ``r = c.run(cmd, hide=True, warn=True, in_stream=False);
    return r.exited, r.stdout``; locally: ``subprocess.run(cmd, shell=True, ...)``.
    """
    code, output = run(facts_command(data_dir))
    sections = split_sections(output)
    if code != 0 or not sections:
        first = output.strip().splitlines()[:1]
        raise RentstackError(
            f"could not read the host's facts: the facts script exited {code}"
            f"{' (' + first[0][:200] + ')' if first else ''}; check that the login shell is sh-compatible"
        )
    return facts_from_sections(sections, data_dir)


def _with_caps(gpus: tuple[Gpu, ...], caps: Mapping[int, str]) -> tuple[Gpu, ...]:
    return tuple(replace(g, compute_cap=caps.get(g.index, g.compute_cap)) for g in gpus)


def facts_from_sections(sections: Mapping[str, tuple[int, str]], data_dir: str = DEFAULT_DATA_DIR) -> HostFacts:
    """Parse already-split sections into HostFacts (pure; missing sections read as 'command failed')."""

    def get(fact: Fact[T]) -> T:
        code, out = sections.get(fact.name, (127, ""))
        return fact.parse(out, code)

    devices = get(BLOCK_DEVICES)
    probe = get(data_disk_fact(data_dir))
    data_disk = None
    if probe.mount is not None:
        data_disk = DataDisk(data_dir, probe.mount, find_device(probe.mount.source, devices), probe.fs_bytes)
    return HostFacts(
        os=get(OS),
        cpu=get(CPU),
        memory=get(MEMORY),
        cgroup=get(CGROUP),
        gpus=_with_caps(get(GPUS), get(GPU_CAPS)),
        nvidia_driver=get(NVIDIA_DRIVER),
        mounts=get(MOUNTS),
        block_devices=devices,
        data_disk=data_disk,
        docker=get(DOCKER),
        compose_version=get(COMPOSE),
        nvidia_toolkit=get(NVIDIA_TOOLKIT),
        container=get(CONTAINER),
        autodl_urls=get(AUTODL),
        python_version=get(PYTHON),
    )
