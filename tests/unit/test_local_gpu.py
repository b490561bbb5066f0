"""This machine's GPU read through the facts' own commands (nvidia-smi on PATH answers with a capture)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rentstack.errors import RentstackError
from rentstack.local.gpu import local_choice, local_gpu_host

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "facts"


def fake_nvidia_smi(bin_dir: Path, driver: str, cuda: str, cap: str) -> None:
    """An nvidia-smi that prints what a real one prints for the three queries the facts make."""
    query = (GOLDEN / "nvidia-smi-query.rtx4090x1.documented-format.txt").read_text().replace("550.54.14", driver)
    table = (GOLDEN / "nvidia-smi-table.rtx4090.documented-format.txt").read_text()
    table = table.replace("550.54.14", driver).replace("CUDA Version: 12.4", f"CUDA Version: {cuda}")
    script = bin_dir / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f"  *compute_cap*) echo '0, {cap}' ;;\n"
        f"  *--query-gpu*) cat <<'EOF'\n{query}EOF\n ;;\n"
        f"  *) cat <<'EOF'\n{table}EOF\n ;;\n"
        "esac\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_no_nvidia_smi_means_no_gpu_and_the_newest_release(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert local_gpu_host() is None
    assert "not checked against a driver" in local_choice().reason


def test_local_driver_and_card_choose_the_release(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_nvidia_smi(tmp_path, "570.133.07", "12.8", "8.9")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    host = local_gpu_host()
    assert host is not None and host.driver == "570.133.07" and host.cuda == "12.8" and host.caps == ("8.9",)
    assert local_choice().release.name == "0.11.0+cu128"
    with pytest.raises(RentstackError, match="needs CUDA 13.0"):
        local_choice("0.32.0")


def test_make_plan_shows_the_choice_and_plans_that_release(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from rentstack.cli import main

    fake_nvidia_smi(tmp_path, "570.133.07", "12.8", "8.9")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    main(["plan", "--tier", "4090x1", "--fit"])
    out = capsys.readouterr().out
    assert out.startswith("vLLM 0.11.0+cu128 — newest release that runs on driver 570.133.07 (CUDA 12.8)")
    assert "vLLM 0.11.0 ·" in out
