"""`fab download` on a real SSH host through a local hub that speaks ModelScope's API: the
real fetch_weights.py runs on the host (the Docker one: the native host's disk is left
pristine for the provisioning tests, which check its growth), resumes after a cut and after a killed run, refuses
a corrupted file, and a re-run transfers nothing. Also: provision of a GPU tier on a host
without GPU stops after the download and says what to do."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from hubserver import HubServer
from hubserver import pseudo_random_bytes as _bytes

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[3]
BIG = "model.safetensors"






@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    for name, seed in (("rstest/Tiny-A", 1), ("rstest/Tiny-B", 2), ("rstest/Tiny-C", 3)):
        repo = root / name
        repo.mkdir(parents=True)
        (repo / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
        (repo / "tokenizer.json").write_bytes(_bytes(seed, 50_000))
        (repo / BIG).write_bytes(_bytes(seed + 10, 6_000_000))
        (repo / "skipped.pth").write_bytes(_bytes(seed + 20, 10_000))
    with HubServer(root) as server:
        server.root = root
        yield server


def _download(fab, host, hub, model, *extra):
    return fab("download", "--host", host.address, "--data-dir", host.data_dir, "--model", f"modelscope:{model}",
               "--endpoint", hub.endpoint, *extra)


def _sha(host, path) -> str:
    return host.exec(f"sha256sum {path}").split()[0]


def test_download_resumes_after_a_cut_and_rerun_transfers_nothing(hosts, fab, hub) -> None:
    host = hosts["docker"]
    hub.knobs.cut_after[BIG] = 2_500_000        # the connection drops once, mid-file
    r = _download(fab, host, hub, "rstest/Tiny-A")
    hub.knobs.cut_after.clear()
    assert r.code == 0, r.text
    assert re.search(r"weights downloaded: 3 files, .* resumed", r.out), r.out
    dest = f"{host.data_dir}/models/tiny-a"
    assert _sha(host, f"{dest}/{BIG}") == hashlib.sha256((hub.root / "rstest/Tiny-A" / BIG).read_bytes()).hexdigest()
    assert "skipped.pth" not in host.exec(f"ls {dest}")        # the catalog's default excludes
    hub.hub.reset_counters()
    again = _download(fab, host, hub, "rstest/Tiny-A")
    assert again.code == 0, again.text
    assert "[skip] weights: weights present, sha256 ok — skipped (3 files" in again.out
    assert hub.hub.total_sent() == 0


def test_killed_download_resumes_in_a_later_run(hosts, fab, hub) -> None:
    """The laptop's fab dies mid-download and the host's fetch is killed: no half file in the
    model directory, and the next run continues from the partial file."""
    host = hosts["docker"]
    dest = f"{host.data_dir}/models/tiny-b"
    hub.knobs.delay_per_chunk_s = 0.3
    env = {**os.environ, "RENTSTACK_SSH_PASSWORD": os.environ.get("RS_TEST_PASSWORD", "")}
    proc = subprocess.Popen([str(REPO / ".venv/bin/fab"), "download", "--host", host.address,
                             "--data-dir", host.data_dir, "--model",
                             "modelscope:rstest/Tiny-B", "--endpoint", hub.endpoint], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        part = ""
        while time.monotonic() < deadline:
            part = host.exec(f"find {dest}/.rentstack-partial -name '*.part' -size +100k 2>/dev/null", check=False).strip()
            if part:
                break
            time.sleep(0.5)
        assert part, "the download never started"
    finally:
        proc.kill()
        proc.wait()
    pids = host.exec("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^python3 .*fetch_weights.py' "
                     "&& echo ${p#/proc/}; done", check=False).split()
    if pids:
        host.exec(f"kill -9 {' '.join(pids)}")
    hub.knobs.delay_per_chunk_s = 0
    assert BIG not in host.exec(f"ls {dest} 2>/dev/null", check=False)   # never a half file in place
    r = _download(fab, host, hub, "rstest/Tiny-B")
    assert r.code == 0, r.text
    assert re.search(r"resumed \d", r.out), r.out
    assert _sha(host, f"{dest}/{BIG}") == hashlib.sha256((hub.root / "rstest/Tiny-B" / BIG).read_bytes()).hexdigest()


def test_corrupted_file_is_refused(hosts, fab, hub) -> None:
    host = hosts["docker"]
    hub.knobs.corrupt.add(BIG)
    try:
        r = _download(fab, host, hub, "rstest/Tiny-C")
    finally:
        hub.knobs.corrupt.clear()
    assert r.code == 1
    assert "a downloaded file failed its checksum" in r.err, r.text
    assert BIG not in host.exec(f"ls {host.data_dir}/models/tiny-c", check=False)


def test_gpu_tier_on_a_no_gpu_host_stops_after_the_download(hosts, fab, hub) -> None:
    host = hosts["docker"]
    r = fab("provision", "--host", host.address, "--data-dir", host.data_dir, "--tier", "4090x1", "--model", "modelscope:rstest/Tiny-A",
            "--endpoint", hub.endpoint, "--force")
    assert r.code == 4, r.text          # stopped before serving: a script can tell it from "server up"
    assert "boot the instance with its GPU, then run `fab up`" in r.out
    assert "[skip] weights: weights present, sha256 ok" in r.out
    assert "runtime" not in r.out.split("boot the instance")[0].split("[ok  ] gpu")[-1]
