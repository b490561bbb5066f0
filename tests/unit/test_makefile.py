"""The Makefile is the front door: every target phony, every target documented in `make help`."""

from __future__ import annotations

import re
import subprocess

from rentstack.commands._common import REPO

TEXT = (REPO / "Makefile").read_text().replace("\\\n", " ")


def _targets() -> set[str]:
    return {m.group(1) for m in re.finditer(r"^([A-Za-z0-9_.-]+):(?!=)", TEXT, re.M)} - {".PHONY"}


def _phony() -> set[str]:
    return {name for line in re.findall(r"^\.PHONY:(.*)$", TEXT, re.M) for name in line.split()}


def test_every_target_is_phony_and_every_phony_exists():
    assert _targets() == _phony()


def test_required_targets_exist():
    assert {"up", "down", "status", "logs", "smoke", "help", "render", "test", "doctor", "bench-planner"} <= _targets()


def test_help_lists_every_target():
    out = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for target in _targets():
        assert f"make {target} " in out, target
    assert "TIER=cpu" in out


# Values that a shell or make would run, split or glob if the Makefile left them unquoted.
HOSTILE = ["cpu; touch /tmp/rentstack-make-pwned", "$(id)", "`id`", "a b", "it's", '"dq"', "*",
           "$(shell touch /tmp/rentstack-make-pwned)", "${HOME}", "x\\y"]


def _dry_run(target: str, env: dict[str, str] | None = None, **variables: str) -> list[list[str]]:
    """`make -n TARGET VAR=...`: the recipe lines, each split as the shell would split it."""
    import os
    import shlex
    argv = ["make", "-n", "-s", target, *(f"{k}={v}" for k, v in variables.items())]
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}).stdout
    return [shlex.split(line) for line in out.splitlines() if "rentstack" in line or "/fab " in line]


def _flag(words: list[str], flag: str) -> str:
    return words[words.index(flag) + 1]


import pytest  # noqa: E402


@pytest.mark.parametrize("value", HOSTILE)
def test_make_passes_each_variable_as_one_literal_word(value):
    (line,) = _dry_run("render", TIER=value, MODEL=value, PRESET=value, PORT=value)
    assert _flag(line, "--tier") == value and _flag(line, "--model") == value
    assert _flag(line, "--preset") == value and _flag(line, "--port") == value
    (line,) = [l for l in _dry_run("fab-status", HOST=value, TIER=value)]
    assert _flag(line, "--host") == value and _flag(line, "--tier") == value


@pytest.mark.parametrize("value", HOSTILE)
def test_make_variables_from_the_environment_are_not_expanded_by_make(value):
    (line,) = _dry_run("plan", env={"TIER": value, "MODEL": value})
    assert _flag(line, "--tier") == value and _flag(line, "--model") == value


def test_make_set_is_split_on_spaces_only_and_each_item_quoted():
    (line,) = _dry_run("render", SET="max-model-len=4096 a=$(id) b='x")
    assert [line[i + 1] for i, w in enumerate(line) if w == "--set"] == ["max-model-len=4096", "a=$(id)", "b='x"]


def test_make_doctor_log_is_quoted():
    lines = _dry_run("doctor", LOG='a b"$(id)')
    assert any(w == 'a b"$(id)' for line in lines for w in line)
    import os
    assert not os.path.exists("/tmp/rentstack-make-pwned")
