"""The release matrix and the choice per host (rentstack.releases), from host facts as nvidia-smi prints them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rentstack import releases as R
from rentstack.errors import RentstackError
from rentstack.remote import facts as F

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "releases"
TABLE = yaml.safe_load((GOLDEN / "host-choices.yaml").read_text())
CASES = [(d, c) for d in TABLE["drivers"] for c in TABLE["cards"]]


def host_facts(driver: str, cuda: str, cards: list[tuple[str, str]]) -> F.HostFacts:
    """HostFacts parsed from nvidia-smi output in its own formats (query CSV, caps CSV, table header)."""
    query = "".join(f"{i}, {name}, 24564, 24000, {driver}\n" for i, (name, _) in enumerate(cards))
    caps = "".join(f"{i}, {cap}\n" for i, (_, cap) in enumerate(cards))
    header = f"| NVIDIA-SMI {driver}              Driver Version: {driver}      CUDA Version: {cuda}     |\n"
    sections = {"gpus": (0, query), "gpu_caps": (0, caps), "nvidia_driver": (0, header)}
    return F.facts_from_sections(sections)


@pytest.mark.parametrize("driver,card", CASES, ids=[f"{d}-{c}" for d, c in CASES])
def test_host_gets_newest_release_its_driver_and_card_run(driver: str, card: str) -> None:
    d, c = TABLE["drivers"][driver], TABLE["cards"][card]
    facts = host_facts(d["driver"], d["cuda"], [(c["name"], c["cap"])])
    host = R.GpuHost.from_facts(facts)
    assert host is not None and host.caps == (c["cap"],)
    expected: str = TABLE["expected"][driver][card]
    if expected.startswith("refuse:"):
        with pytest.raises(RentstackError) as err:
            R.choose(host)
        message = str(err.value)
        assert expected.removeprefix("refuse:").strip() in message, message
        assert "RunPod allowedCudaVersions" in message and "cuda_max_good>=" in message and "AutoDL" in message
    else:
        choice = R.choose(host)
        assert choice.release.name == expected, choice.line
        # Never a release the driver cannot run or the card has no kernels for.
        assert R.driver_key(d["driver"]) >= R.driver_key(R.driver_for(choice.release))
        assert c["cap"] in choice.release.compute_caps


def test_every_driver_and_card_has_an_expected_release() -> None:
    assert set(TABLE["expected"]) == set(TABLE["drivers"])
    for driver, row in TABLE["expected"].items():
        assert set(row) == set(TABLE["cards"]), driver


def test_matrix_rows_have_sources_args_lists_and_the_required_lines() -> None:
    m = R.load_matrix()
    versions = {r.version for r in m.releases}
    assert {"0.8.5.post1", "0.9.2", "0.10.1.1", "0.10.2", "0.11.0", "0.13.0", "0.32.0"} <= versions
    assert "0.32.0+cu129" in {r.name for r in m.releases}
    args_dir = Path(R.__file__).parent / "config" / "vllm_args"
    for r in m.releases:
        assert (args_dir / f"{r.args}.json").is_file(), r.name
        assert r.verified == r.source.startswith("pypi:"), f"{r.name}: a verified row cites the wheel metadata"
        assert r.cuda in m.cuda_drivers
        assert r.image is None or r.image.startswith("vllm/vllm-openai:v" + r.version)
        assert r.pip.startswith(f"vllm=={r.version}")


def test_mixed_cards_need_a_release_for_every_card() -> None:
    host = R.GpuHost("580.95.05", "13.0", (("NVIDIA H100 80GB HBM3", "9.0"), ("Tesla V100-SXM2-32GB", "7.0")))
    assert R.choose(host).release.name == "0.13.0+cu129"


def test_pip_runner_excludes_sm120_where_pypi_torch_lacks_it() -> None:
    """0.9.2's image runs an RTX 5090, its pip install (PyPI torch cu126) does not."""
    host = R.GpuHost("570.133.07", "12.8", (("NVIDIA GeForce RTX 5090", "12.0"),))
    assert R.choose(host, runner="compose", requested="0.9.2").release.name == "0.9.2+cu128"
    with pytest.raises(RentstackError, match=r"no kernels from pip for sm_120"):
        R.choose(host, runner="native", requested="0.9.2")


def test_requested_version_is_checked_the_same_way() -> None:
    host = R.GpuHost("570.133.07", "12.8", (("NVIDIA GeForce RTX 4090", "8.9"),))
    with pytest.raises(RentstackError) as err:
        R.choose(host, requested="0.32.0")
    assert "needs CUDA 13.0 (driver ≥ 580.65.06)" in str(err.value)
    assert "this host runs up to vLLM 0.11.0+cu128" in str(err.value)
    older = R.choose(host, requested="0.10.2")
    assert older.release.name == "0.10.2+cu128" and older.how == "requested"
    with pytest.raises(RentstackError, match=r"did you mean '0.10.2'"):
        R.choose(host, requested="0.10.3")


def test_unverified_variant_only_on_request() -> None:
    host = R.GpuHost("575.57.08", "12.9", (("NVIDIA GeForce RTX 4090", "8.9"),))
    assert R.choose(host).release.name == "0.13.0+cu129"
    variant = R.choose(host, requested="0.32.0+cu129")
    assert variant.release.build == "cu129" and "not verified" in variant.reason
    assert variant.release.pip_args() == ("--extra-index-url", "https://wheels.vllm.ai/0.32.0/cu129",
                                          "--extra-index-url", "https://download.pytorch.org/whl/cu129",
                                          "vllm==0.32.0", "torch==2.13.0+cu129")


def test_recorded_choice_is_kept_while_it_runs() -> None:
    host = R.GpuHost("595.58.03", "13.2", (("NVIDIA GeForce RTX 4090", "8.9"),))
    kept = R.choose(host, recorded="0.11.0+cu128")
    assert (kept.release.name, kept.how) == ("0.11.0+cu128", "recorded")
    old = R.GpuHost("550.127.05", "12.4", (("NVIDIA GeForce RTX 4090", "8.9"),))
    moved = R.choose(old, recorded="0.11.0+cu128")
    assert moved.release.name == "0.8.5.post1+cu124" and "no longer runs here" in moved.reason


def test_driver_without_cuda_header_is_placed_by_the_driver_table() -> None:
    host = R.GpuHost("570.86.10", "", (("NVIDIA GeForce RTX 4090", "8.9"),))
    assert R.choose(host).release.name == "0.11.0+cu128"


def test_unknown_compute_cap_is_not_a_refusal() -> None:
    """Drivers before ~510 cannot report compute_cap; the driver check still decides."""
    host = R.GpuHost("580.95.05", "13.0", (("NVIDIA GeForce RTX 4090", ""),))
    assert R.choose(host).release.name == "0.32.0+cu130"


def test_choice_line_says_why() -> None:
    host = R.GpuHost("570.133.07", "12.8", (("NVIDIA GeForce RTX 4090", "8.9"),) * 2)
    line = R.choose(host).line
    assert line.startswith("vLLM 0.11.0+cu128 — newest release that runs on driver 570.133.07 (CUDA 12.8), 2 x NVIDIA GeForce RTX 4090 (sm_89)")
    assert "0.32.0+cu130 needs CUDA 13.0 (driver ≥ 580.65.06)" in line


def test_version_keys_order_releases() -> None:
    assert R.version_key("0.10.1.1") > R.version_key("0.10.1") > R.version_key("0.9.2")
    assert R.version_key("0.8.5.post1") > R.version_key("0.8.5")
    assert R.driver_key("570.26") < R.driver_key("570.124.06")


def test_newest_release_for_a_drivers_cuda_version() -> None:
    """What the doctor suggests from 'found version 12080' and the like."""
    assert R.cuda_of_code(12080) == "12.8" and R.cuda_of_code(13000) == "13.0"
    assert R.newest_for_cuda("12.8").name == "0.11.0+cu128"
    assert R.newest_for_cuda("12.6").name == "0.8.5.post1+cu124"
    assert R.newest_for_cuda("13.2").name == "0.32.0+cu130"
    assert R.newest_for_cuda("12.2") is None


def test_no_gpu_here_falls_back_to_the_newest_release_unchecked() -> None:
    choice = R.choose_or_default(None)
    assert choice.release == R.default_release() and "not checked against a driver" in choice.reason
    assert R.choose_or_default(None, requested="0.11.0").release.name == "0.11.0+cu128"


def test_each_release_carries_its_memory_accounting_era() -> None:
    """The planner's rules for the chosen release (rules_for, the one home of version rules)."""
    m = R.load_matrix()
    assert m.find("0.32.0").rules.budgets_cuda_graphs and m.find("0.32.0").rules.tokens_from_concurrency
    assert not m.find("0.13.0").rules.budgets_cuda_graphs
    assert m.find("0.8.5.post1").rules.caps_whole_gpu and not m.find("0.9.2").rules.caps_whole_gpu
    assert m.find("0.10.1.1").rules.sampler_bytes < m.find("0.10.2").rules.sampler_bytes
