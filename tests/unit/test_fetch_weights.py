"""scripts/fetch_weights.py, run for real (a subprocess, no site-packages) against tests/hubserver.py."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rentstack.errors import RentstackError
from rentstack.remote import download

from hubserver import HubServer
from hubserver import pseudo_random_bytes as _bytes

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fetch_weights.py"
MODEL = "testorg/Tiny-Model-0.1B"
BIG = "model-00001-of-00002.safetensors"




@pytest.fixture(scope="module")
def hub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~3.5 MB model: two LFS shards, small git files, a .pth the seed skipped, a subfolder."""
    root = tmp_path_factory.mktemp("hub")
    repo = root / MODEL
    (repo / "sub").mkdir(parents=True)
    (repo / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    (repo / "tokenizer.json").write_bytes(_bytes(1, 120_000))
    (repo / "README.md").write_text("# tiny\n")
    (repo / BIG).write_bytes(_bytes(2, 1_600_000))
    (repo / "model-00002-of-00002.safetensors").write_bytes(_bytes(3, 1_400_000))
    (repo / "sub" / "extra.pth").write_bytes(_bytes(4, 200_000))
    return root


@pytest.fixture()
def hub(hub_root: Path):
    with HubServer(hub_root) as server:
        yield server


def fetch(hub: HubServer, dest: Path, *extra: str, model: str = MODEL, env: dict | None = None,
          endpoint: str | None = None) -> tuple[int, dict, str]:
    """Run the script like the host would: its own interpreter, no site-packages (-S -I)."""
    argv = [sys.executable, "-I", "-S", str(SCRIPT), "--model", model, "--dest", str(dest),
            "--endpoint", endpoint or hub.endpoint, "--json", "--backoff", "0.01", "--timeout", "10", *extra]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                       env={"PATH": os.environ.get("PATH", ""), **(env or {})})
    lines = p.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines else {}
    return p.returncode, summary, p.stderr


def repo_files(hub_root: Path) -> dict[str, bytes]:
    base = hub_root / MODEL
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def model_files(dest: Path) -> dict[str, bytes]:
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*")
            if p.is_file() and not p.relative_to(dest).as_posix().startswith(".rentstack")}


def test_full_download_then_rerun_transfers_nothing(hub: HubServer, hub_root: Path, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    code, summary, err = fetch(hub, dest, "--exclude", "*.pth")
    want = {k: v for k, v in repo_files(hub_root).items() if not k.endswith(".pth")}
    assert code == 0, err
    assert model_files(dest) == want
    assert summary["bytes_transferred"] == sum(len(v) for v in want.values()) == hub.hub.total_sent()
    assert summary["files_downloaded"] == len(want) and summary["complete"] is True
    assert not list((dest / ".rentstack-partial").rglob("*.part"))
    manifest = json.loads((dest / ".rentstack-manifest.json").read_text())
    assert manifest["files"][BIG]["hash"] == hashlib.sha256(want[BIG]).hexdigest()

    hub.hub.reset_counters()
    code, again, err = fetch(hub, dest, "--exclude", "*.pth")
    assert code == 0, err
    assert again["bytes_transferred"] == 0 and hub.hub.total_sent() == 0
    assert again["files_skipped"] == len(want) and again["bytes_skipped"] == summary["bytes_transferred"]
    assert "nothing to transfer" in err
    assert download.parse_summary(json.dumps(again)).describe().startswith("weights present, sha256 ok")


def test_resume_after_cut_in_a_later_run(hub: HubServer, hub_root: Path, tmp_path: Path) -> None:
    """The SSH session drops mid-file: the .part stays, the next run asks only for the rest."""
    dest = tmp_path / "m"
    size = (hub_root / MODEL / BIG).stat().st_size
    hub.knobs.cut_after[BIG] = 600_000
    code, first, err = fetch(hub, dest, "--retries", "0", "--include", "*.safetensors")
    assert code == 4, err
    assert "re-run to resume" in first["error"]
    assert not (dest / BIG).exists(), "a half file must never be in the model directory"
    assert (dest / ".rentstack-partial" / f"{BIG}.part").stat().st_size == 600_000

    hub.hub.reset_counters()
    code, second, err = fetch(hub, dest, "--include", "*.safetensors")
    assert code == 0, err
    assert hub.hub.bytes_sent == {BIG: size - 600_000}
    assert second["bytes_transferred"] == size - 600_000 and second["bytes_resumed"] == 600_000
    assert hashlib.sha256((dest / BIG).read_bytes()).hexdigest() == hashlib.sha256((hub_root / MODEL / BIG).read_bytes()).hexdigest()


def test_cut_is_retried_within_the_run_by_range(hub: HubServer, hub_root: Path, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    size = (hub_root / MODEL / BIG).stat().st_size
    hub.knobs.cut_after[BIG] = 300_000
    code, summary, err = fetch(hub, dest, "--include", BIG)
    assert code == 0, err
    assert hub.hub.bytes_sent[BIG] == size  # 300 000 + the rest, nothing sent twice
    assert summary["bytes_resumed"] == 300_000
    assert "resuming at" in err and "retry 1/" in err
    assert (dest / BIG).read_bytes() == (hub_root / MODEL / BIG).read_bytes()


def test_killed_process_resumes(hub: HubServer, hub_root: Path, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    hub.knobs.delay_per_chunk_s = 0.4
    argv = [sys.executable, "-I", "-S", str(SCRIPT), "--model", MODEL, "--dest", str(dest), "--endpoint",
            hub.endpoint, "--include", BIG, "--json"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = dest / ".rentstack-partial" / f"{BIG}.part"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size >= 1024 * 1024):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    have = part.stat().st_size
    assert have >= 1024 * 1024 and not (dest / BIG).exists()
    hub.knobs.delay_per_chunk_s = 0
    code, summary, err = fetch(hub, dest, "--include", BIG)
    assert code == 0, err
    assert summary["bytes_transferred"] == (hub_root / MODEL / BIG).stat().st_size - have
    assert (dest / BIG).read_bytes() == (hub_root / MODEL / BIG).read_bytes()


def test_corrupted_file_is_refused(hub: HubServer, hub_root: Path, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    hub.knobs.corrupt.add(BIG)
    code, summary, err = fetch(hub, dest, "--retries", "1")
    assert code == 5, err
    assert "sha256 mismatch" in summary["error"] and BIG in summary["error"]
    assert err.strip().splitlines()[-1].startswith("fetch_weights: error: ")
    assert not (dest / BIG).exists() and not (dest / ".rentstack-partial" / f"{BIG}.part").exists()
    # every file that did land is the real one
    real = repo_files(hub_root)
    assert all(real[name] == data for name, data in model_files(dest).items())
    manifest = json.loads((dest / ".rentstack-manifest.json").read_text())
    assert manifest["complete"] is False and BIG not in manifest["files"]
    with pytest.raises(RentstackError, match="failed its checksum"):
        download.parse_summary(json.dumps(summary)).raise_for_error()

    hub.knobs.corrupt.clear()
    code, summary, err = fetch(hub, dest)
    assert code == 0, err
    assert summary["files_downloaded"] == 1 and model_files(dest) == real


def test_include_and_exclude(hub: HubServer, tmp_path: Path) -> None:
    code, _, err = fetch(hub, tmp_path / "a", "--include", "*.json")
    assert code == 0, err
    assert set(model_files(tmp_path / "a")) == {"config.json", "tokenizer.json"}
    code, _, err = fetch(hub, tmp_path / "b", "--exclude", "*.pth", "--exclude", "README.md")
    assert code == 0, err
    assert set(model_files(tmp_path / "b")) == {"config.json", "tokenizer.json", BIG, "model-00002-of-00002.safetensors"}
    code, summary, _ = fetch(hub, tmp_path / "c", "--include", "*.gguf")
    assert code == 2 and "no file" in summary["error"]


def test_hugging_face_mirror_endpoint(hub: HubServer, hub_root: Path, tmp_path: Path) -> None:
    """HF tree listing (paginated), git-sha1 checks for small files, LFS redirect to the CDN."""
    hub.knobs.hf_page_size = 2
    dest = tmp_path / "m"
    code, summary, err = fetch(hub, dest, "--source", "hf", env={"HF_TOKEN": "hf_secret"})
    assert code == 0, err
    assert model_files(dest) == repo_files(hub_root)
    assert summary["revision"] == "main"
    assert any("/tree/main?recursive=true&cursor=" in r for r in hub.hub.requests), "pagination followed"
    assert any(r.startswith("GET /cdn-lfs/") for r in hub.hub.requests), "LFS redirect followed"
    assert hub.hub.unknown == [], hub.hub.unknown  # includes 'token sent to CDN'
    manifest = json.loads((dest / ".rentstack-manifest.json").read_text())
    assert manifest["files"]["config.json"]["hash_kind"] == "git-sha1"
    assert manifest["files"][BIG]["hash_kind"] == "sha256"


def test_hf_endpoint_from_environment(hub: HubServer, tmp_path: Path) -> None:
    argv = [sys.executable, "-I", "-S", str(SCRIPT), "--source", "hf", "--model", MODEL, "--dest",
            str(tmp_path / "m"), "--include", "config.json", "--json"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={"HF_ENDPOINT": hub.endpoint})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.splitlines()[-1])["endpoint"] == hub.endpoint


@pytest.mark.parametrize("source", ["modelscope", "hf"])
def test_unknown_model_is_the_hubs_404(hub: HubServer, tmp_path: Path, source: str) -> None:
    code, summary, err = fetch(hub, tmp_path / "m", "--source", source, model="testorg/no-such-model")
    assert code == 3
    assert "HTTP 404" in summary["error"] and "testorg/no-such-model" in summary["error"]
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_unreachable_hub(hub: HubServer, tmp_path: Path) -> None:
    code, summary, err = fetch(hub, tmp_path / "m", "--retries", "1", endpoint="http://127.0.0.1:9")
    assert code == 4
    assert "cannot reach http://127.0.0.1:9" in summary["error"]


def test_check_space_reports_what_is_still_needed(hub: HubServer, hub_root: Path, tmp_path: Path) -> None:
    code, summary, err = fetch(hub, tmp_path / "m", "--check-space", "--exclude", "*.pth")
    assert code == 0, err
    total = sum(len(v) for k, v in repo_files(hub_root).items() if not k.endswith(".pth"))
    assert summary["bytes_needed"] == total and summary["fits"] is True and summary["free_bytes"] > total
    assert hub.hub.total_sent() == 0 and model_files(tmp_path / "m") == {}


@pytest.mark.parametrize("mode", [(), ("--check-space",)], ids=["download", "check-space"])
def test_disk_too_small_is_refused_before_any_transfer(hub: HubServer, tmp_path: Path, mode: tuple) -> None:
    hub.knobs.listed_size[BIG] = 1 << 60  # the hub says 1 EiB: no disk here holds that
    code, summary, err = fetch(hub, tmp_path / "m", *mode)
    assert code == 6
    assert "needed on" in summary["error"] and "free" in summary["error"] and "grow the data disk" in summary["error"]
    assert summary["bytes_needed"] >= 1 << 60 and 0 < summary["free_bytes"] < 1 << 60
    assert hub.hub.total_sent() == 0 and model_files(tmp_path / "m") == {}
    assert len(err.strip().splitlines()) == 2  # the plan line, then the one error line


def test_tampered_file_is_replaced_when_verifying(hub: HubServer, hub_root: Path, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    assert fetch(hub, dest, "--include", "*.json")[0] == 0
    (dest / "tokenizer.json").write_bytes(b"x" * 120_000)  # same size, other bytes
    code, summary, err = fetch(hub, dest, "--include", "*.json", "--verify")
    assert code == 0, err
    assert summary["files_downloaded"] == 1
    assert (dest / "tokenizer.json").read_bytes() == (hub_root / MODEL / "tokenizer.json").read_bytes()


def test_token_is_sent_but_never_in_argv(hub: HubServer, tmp_path: Path) -> None:
    cmd = download.fetch_command("modelscope:Qwen/Qwen2.5-7B-Instruct", token_file="/root/.rentstack/ms_token")
    assert cmd is not None
    assert not any("token" in a.lower() and a != "/root/.rentstack/ms_token" for a in cmd.argv)
    assert cmd.command.startswith('MODELSCOPE_API_TOKEN="$(cat /root/.rentstack/ms_token)" python3 ')
    code, _, err = fetch(hub, tmp_path / "m", "--include", "config.json", env={"MODELSCOPE_API_TOKEN": "ms-secret"})
    assert code == 0, err


# ---------------------------------------------------------------- laptop side (rentstack.remote.download)


def test_fetch_command_for_each_source() -> None:
    ms = download.fetch_command("modelscope:Qwen/Qwen2.5-7B-Instruct")
    assert ms is not None and ms.model_dir == "/root/autodl-tmp/models/qwen2.5-7b-instruct"
    assert ms.argv[:4] == ("python3", "/root/autodl-tmp/.rentstack/fetch_weights.py", "--source", "modelscope")
    assert ("--exclude", "*.pth") == ms.argv[-2:] and "--endpoint" not in ms.argv
    hf = download.fetch_command("hf:Qwen/Qwen3-8B", data_dir="/data", workers=8)
    assert hf is not None and hf.argv[hf.argv.index("--endpoint") + 1] == "https://hf-mirror.com"
    assert hf.model_dir == "/data/models/qwen3-8b" and hf.token_env == "HF_TOKEN"
    assert hf.check_space_command.endswith("--check-space")
    assert download.fetch_command("local:/root/autodl-tmp/my-model") is None
    assert download.model_dir("local:/root/autodl-tmp/my-model") == "/root/autodl-tmp/my-model"
    with pytest.raises(RentstackError, match="no scheme"):
        download.fetch_command("Qwen/Qwen3-8B")
    with pytest.raises(RentstackError, match="workers 0"):
        download.fetch_command("hf:Qwen/Qwen3-8B", workers=0)


def test_command_built_here_runs_there(hub: HubServer, hub_root: Path, tmp_path: Path) -> None:
    """download.fetch_command's line, run by sh, fills model_dir; its output parses."""
    cmd = download.fetch_command(f"hf:{MODEL}", data_dir=str(tmp_path), script=str(SCRIPT),
                                 python=sys.executable, hf_endpoint=hub.endpoint)
    assert cmd is not None
    p = subprocess.run(["sh", "-c", cmd.command], capture_output=True, text=True, timeout=60)
    summary = download.parse_summary(p.stdout, p.returncode).raise_for_error()
    assert summary.complete and summary.files == 5 and summary.bytes_transferred > 0
    assert Path(cmd.model_dir).is_dir() and "weights downloaded: 5 files" in summary.describe()
    manifest = download.parse_manifest((Path(cmd.model_dir) / download.MANIFEST_NAME).read_text())
    assert manifest is not None and manifest.complete and manifest.files == 5 and manifest.exclude == ("*.pth",)


def test_parse_summary_without_json_is_one_clear_line() -> None:
    with pytest.raises(RentstackError, match="python3 installed"):
        download.parse_summary("sh: 1: python3: not found\n", 127)
    assert download.parse_manifest("") is None and download.parse_manifest("{not json") is None
