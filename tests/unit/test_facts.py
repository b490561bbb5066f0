"""Host-fact parsers on captured output (tests/golden/facts), and the one-round-trip gather."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rentstack.errors import RentstackError
from rentstack.remote import facts as F

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "facts"
CASES = sorted((GOLDEN / "cases").glob("*.json"))
FACT_CASES = [p for p in CASES if not p.name.startswith(("host-", "step-"))]
STEP_CASES = [p for p in CASES if p.name.startswith("step-")]
HOST_CASES = [p for p in CASES if p.name.startswith("host-")]

FACTS_BY_NAME = {f.name: f for f in F.STATIC_FACTS}


def jsonable(value: Any) -> Any:
    """Dataclasses, tuples and int-keyed maps as the JSON the cases are written in."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def assert_matches(actual: Any, expected: Any, where: str = "") -> None:
    """Every key the case names must match; lists must match in length and order."""
    if isinstance(expected, dict) and isinstance(actual, dict) and expected:
        for key, want in expected.items():
            assert key in actual, f"{where}.{key} missing from {actual!r}"
            assert_matches(actual[key], want, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_matches(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def load_input(case: dict[str, Any]) -> tuple[str, int]:
    text = (GOLDEN / case["input"]).read_text()
    if "section" in case:
        code, out = F.split_sections(text)[case["section"]]
        return out, case.get("exit_code", code)
    return text, case.get("exit_code", 0)


@pytest.mark.parametrize("path", FACT_CASES, ids=[p.stem for p in FACT_CASES])
def test_fact_parser_on_captured_output(path: Path) -> None:
    case = json.loads(path.read_text())
    fact = F.data_disk_fact(case.get("data_dir", F.DEFAULT_DATA_DIR)) if case["fact"] == "data_disk" else FACTS_BY_NAME[case["fact"]]
    output, code = load_input(case)
    assert_matches(jsonable(fact.parse(output, code)), case["expected"], case["fact"])


def prop(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("path", HOST_CASES, ids=[p.stem for p in HOST_CASES])
def test_host_facts_from_whole_capture(path: Path) -> None:
    case = json.loads(path.read_text())
    text = (GOLDEN / case["gather"]).read_text()
    host = F.gather(lambda script: (0, text), data_dir=case["data_dir"])
    for dotted, want in case["expected"].items():
        assert prop(host, dotted) == want, dotted


def test_every_fact_has_a_captured_case() -> None:
    covered = {json.loads(p.read_text())["fact"] for p in FACT_CASES}
    assert covered >= set(FACTS_BY_NAME) | {"data_disk"}, set(FACTS_BY_NAME) - covered
    parsers = {json.loads(p.read_text())["parser"] for p in STEP_CASES}
    assert parsers >= set(F.STEP_PARSERS), set(F.STEP_PARSERS) - parsers


@pytest.mark.parametrize("path", STEP_CASES, ids=[p.stem for p in STEP_CASES])
def test_step_fact_parser_on_captured_output(path: Path) -> None:
    case = json.loads(path.read_text())
    output, code = load_input(case)
    assert jsonable(F.STEP_PARSERS[case["parser"]](output, code)) == case["expected"]


def sections_of(capture: str) -> dict[str, tuple[int, str]]:
    return F.split_sections((GOLDEN / capture).read_text())


def test_autodl_gpu_boot_is_native_with_gpus_and_service_url() -> None:
    """An AutoDL-shaped host booted with its GPU: container, no Docker, nvidia-smi answers."""
    sections = sections_of("debian12-container-no-docker.gather.txt")
    sections["gpus"] = (0, (GOLDEN / "nvidia-smi-query.rtx4090x1.documented-format.txt").read_text())
    sections["nvidia_driver"] = (0, (GOLDEN / "nvidia-smi-table.rtx4090.documented-format.txt").read_text())
    sections["autodl"] = (0, (GOLDEN / "autodl.env.community-format.txt").read_text())
    host = F.facts_from_sections(sections, "/root/autodl-tmp")
    assert host.runner == "native"
    assert not host.cpu_only
    assert host.gpus[0].memory_free_bytes == 24080 * 1024 * 1024
    assert host.nvidia_driver == F.NvidiaDriver("550.54.14", "12.4")
    assert host.autodl_service_url == "https://u123456-a1b2-c3d4e5f6.bjb1.seetacloud.com:8443"


def test_vm_without_docker_needs_install() -> None:
    sections = sections_of("debian12-vm-with-docker.gather.txt")
    sections["docker"] = (127, "")
    sections["compose"] = (127, "")
    sections["container"] = (0, "rootfs: ext4\ncgroup: 0::/init.scope")
    host = F.facts_from_sections(sections, "/tmp/rsfake/root/autodl-tmp")
    assert host.runner == "compose"
    assert host.needs_docker_install


def test_nvidia_runtime_registered_in_docker() -> None:
    info = json.dumps({"ServerVersion": "27.1.1", "Runtimes": {"nvidia": {"path": "nvidia-container-runtime"}, "runc": {}}})
    host = F.HostFacts(docker=F.parse_docker_info(info, 0), compose_version="2.29.1")
    assert host.nvidia_container_ready and host.docker_usable


def test_data_disk_without_superblock_uses_ratio() -> None:
    mount = F.Mount("/dev/vdb", "ext4", 49_000_000_000, 0, 49_000_000_000, "/root/autodl-tmp")
    same = F.DataDisk("/root/autodl-tmp", mount, F.BlockDevice("vdb", "/dev/vdb", 50 * 1024**3, "disk"), None)
    grown = F.DataDisk("/root/autodl-tmp", mount, F.BlockDevice("vdb", "/dev/vdb", 100 * 1024**3, "disk"), None)
    hidden = F.DataDisk("/root/autodl-tmp", mount, None, None)
    assert (same.needs_grow, grown.needs_grow, hidden.needs_grow) == (False, True, None)


def test_split_sections_keeps_exit_codes_and_text() -> None:
    out = "\n@@rentstack-fact:a\nline1\nline2\n\n@@rentstack-rc:0\n\n@@rentstack-fact:b\n\n@@rentstack-rc:127\n"
    assert F.split_sections(out) == {"a": (0, "line1\nline2"), "b": (127, "")}


def test_gather_script_runs_in_real_sh_one_round_trip(tmp_path: Path) -> None:
    """The generated script runs under sh here and every fact gets a section."""
    calls: list[str] = []

    def run(script: str) -> tuple[int, str]:
        calls.append(script)
        p = subprocess.run(script, shell=True, capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout

    host = F.gather(run, data_dir=str(tmp_path))
    assert len(calls) == 1
    assert host.os.id and host.cpu.count >= 1 and host.memory.total_bytes > 0
    assert host.data_disk is not None and host.data_disk.avail_bytes > 0
    sections = F.split_sections(run(calls[0])[1])
    assert set(sections) == {f.name for f in F.STATIC_FACTS} | {"data_disk"}


def test_gather_refuses_garbage_with_one_line() -> None:
    with pytest.raises(RentstackError, match="exited 127"):
        F.gather(lambda script: (127, "sh: not found\n"))


def test_compute_capability_joins_each_gpu_by_index() -> None:
    sections = sections_of("debian12-container-no-docker.gather.txt")
    sections["gpus"] = (0, (GOLDEN / "nvidia-smi-query.rtx3080x2.documented-format.txt").read_text())
    sections["gpu_caps"] = (0, (GOLDEN / "nvidia-smi-caps.rtx3080x2.documented-format.txt").read_text())
    host = F.facts_from_sections(sections, "/root/autodl-tmp")
    assert [(g.index, g.compute_cap) for g in host.gpus] == [(0, "8.6"), (1, "8.6")]
    # A driver that does not know the field leaves the cards in place, capability unknown.
    sections["gpu_caps"] = (2, (GOLDEN / "nvidia-smi-caps.driver470-unknown-field.documented-format.txt").read_text())
    host = F.facts_from_sections(sections, "/root/autodl-tmp")
    assert [g.compute_cap for g in host.gpus] == ["", ""] and len(host.gpus) == 2
