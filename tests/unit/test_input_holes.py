"""Issue 8's input holes, one reproduction each: every test here failed before its fix.

Each runs the real CLI entry point (rentstack.cli.main) against a temporary state directory
and asserts what the issue promises: exit 2, one line naming the field and the fix, and
nothing written (or the previous render intact).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

from rentstack.cli import main


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    if root.exists():
        for p in sorted(root.rglob("*")):
            h.update(str(p.relative_to(root)).encode())
            if p.is_file():
                h.update(p.read_bytes())
    return h.hexdigest()


def _refused(capsys, argv: list[str], field: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert field in lines[0], lines[0]
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


def _render(tmp_path, *extra: str) -> list[str]:
    return ["render", "--tier", "cpu", "--state-dir", str(tmp_path / "state"),
            "--models-dir", str(tmp_path / "models"), *extra]


# --- item 1: a newline in --bind / --models-dir injected lines into compose.env ---------------
@pytest.mark.parametrize("bind", ["127.0.0.1\nRENTSTACK_BIND=0.0.0.0", "127.0.0.1\rRENTSTACK_BIND=0.0.0.0",
                                  "127.evil.example", "127.0.0.1 ", "0.0.0.0#", "localhost\n"])
def test_bind_cannot_get_round_the_no_api_key_refusal(tmp_path, capsys, bind):
    line = _refused(capsys, _render(tmp_path, "--no-api-key", "--bind", bind), "bind")
    assert any(w in line for w in ("use ", "remove it")), line
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


def test_models_dir_newline_is_refused(tmp_path, capsys):
    _refused(capsys, ["render", "--tier", "cpu", "--state-dir", str(tmp_path / "state"),
                      "--models-dir", "/data\nRENTSTACK_BIND=0.0.0.0"], "--models-dir")
    assert not (tmp_path / "state" / "cpu").exists()


def test_compose_env_values_are_quoted_not_injected(tmp_path, capsys):
    models = tmp_path / "my models #1"
    assert main(["render", "--tier", "cpu", "--state-dir", str(tmp_path / "state"), "--models-dir", str(models)]) == 0
    text = (tmp_path / "state" / "cpu" / "compose.env").read_text()
    lines = [l for l in text.splitlines() if l and not l.startswith("#")]
    keys = [l.split("=", 1)[0] for l in lines]
    assert len(keys) == len(set(keys)), "no variable twice"
    assert f"RENTSTACK_MODELS_DIR='{models}'" in lines
