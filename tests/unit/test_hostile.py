"""The hostile-input suite: every CLI and fab entry point against the tables in tests/hostile/.

For each case the promise is the same (issue 8): exit code 2 and one line naming the field
and the fix; no traceback, no "internal error", no raw terminal escape echoed; nothing
written, or the previous render intact (the scratch tree is hashed before and after); no
secret in any output. Cases marked `safe` must instead be accepted with every artifact
carrying the value literally: the env files parse to exactly the variables a plain render
writes, and vllm.yaml to exactly its keys.

The `rentstack` cases run in-process through rentstack.cli.main, with a stand-in `docker`
first on PATH that answers `docker info` / `docker compose version` and refuses everything
else, so an input that slipped through could not start anything. The fab cases run the real
`fab` as subprocesses against 127.0.0.1:1 (refused), so nothing real is reached either.

tests/hostile/pending.yaml names the cases of holes other helpers are closing; they run as
non-strict xfail until the fix lands on main and their ids leave that list.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rentstack.cli import main

HERE = Path(__file__).resolve().parents[1] / "hostile"
REPO = Path(__file__).resolve().parents[2]
VALUES: dict[str, list[str]] = yaml.safe_load((HERE / "values.yaml").read_text())

FIX_WORDS = re.compile(
    r"\b(use|remove|choose|write|set|give|pass|drop|lower|raise|rename|check|fix|copy|run|see|add|put|describe|"
    r"export|leave|make|keep|omit|try|pick|install|move|create|edit|unset|did you mean|one of|must|needs?|"
    r"expected|at least|at most|between|only|allowed|valid|should)\b|\bfrom [0-9.,]+ to [0-9.,]+", re.I)
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]")


# --- the tables ----------------------------------------------------------------------------------
def _flatten(argv: list) -> list[str]:
    out: list[str] = []
    for item in argv:
        out.extend(_flatten(item) if isinstance(item, list) else [str(item)])
    return out


def _expand(table: dict, source: str, extra: dict | None = None, prefix: str = "") -> list[dict]:
    """Matrix rows and single cases of one table file as a flat list of case dicts."""
    cases = []
    for row in table.get("matrix", []) or []:
        for expect, kinds in (("refuse", row.get("refuse", [])), ("safe", row.get("safe", []))):
            for kind in kinds:
                for i, value in enumerate(VALUES[kind]):
                    argv = _flatten(row["argv"])
                    value = row.get("prefix", "") + value
                    if row.get("replace") and row["flag"] in argv:
                        at = argv.index(row["flag"])
                        argv = argv[:at] + argv[at + 2:]
                    cases.append({**(extra or {}), **{k: v for k, v in row.items() if k in ("owner", "item", "host")},
                                  "id": f"{prefix}{row.get('name', argv[0])}{row['flag']}:{kind}{i}",
                                  "argv": [*argv, row["flag"], value], "field": row.get("field", row["flag"]),
                                  "expect": expect, "source": source})
    for case in table.get("cases", []) or []:
        cases.append({**(extra or {}), "expect": "refuse", **case, "argv": _flatten(case["argv"]), "source": source})
    return cases


def _load(name: str) -> list[dict]:
    path = HERE / name
    prefix = "fab:" if name.startswith("fab") else ""
    return _expand(yaml.safe_load(path.read_text()), name, prefix=prefix) if path.is_file() else []


def _pending() -> dict[str, tuple[str, object]]:
    """Case id -> (owner, issue item) for the holes other helpers are closing."""
    data = yaml.safe_load((HERE / "pending.yaml").read_text()) or {}
    return {cid: (group["owner"], group.get("item")) for group in data.get("pending", []) or []
            for cid in group.get("cases", []) or []}


PENDING = _pending()


def _left_out() -> set[str]:
    """Case ids whose fix did not reach main by this suite's last landing: not run, and named
    in the hostile helper's report (a hole stays open until its owner's fix lands)."""
    data = yaml.safe_load((HERE / "pending.yaml").read_text()) or {}
    return {cid for group in data.get("left_out", []) or [] for cid in group.get("cases", []) or []}


LEFT_OUT = _left_out()


def _params(cases: list[dict]) -> list:
    params = []
    for c in cases:
        if c["id"] in LEFT_OUT:
            continue
        marks = ()
        if c["id"] in PENDING:
            owner, item = PENDING[c["id"]]
            marks = (pytest.mark.xfail(reason=f"pending: {owner} closes issue 8 item {item}", strict=False),)
        params.append(pytest.param(c, id=c["id"], marks=marks))
    return params


CLI_CASES = _load("cli.yaml")
FAB_CASES = _load("fab.yaml")


def test_suite_size_and_ids():
    """The issue's bar: at least 300 cases besides the pending ones; ids unique; every
    pending id names a real case."""
    ids = [c["id"] for c in CLI_CASES + FAB_CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert len(set(ids) - set(PENDING) - LEFT_OUT) >= 300, len(set(ids) - set(PENDING) - LEFT_OUT)
    assert set(PENDING) | LEFT_OUT <= set(ids), sorted((set(PENDING) | LEFT_OUT) - set(ids))


# --- fixtures --------------------------------------------------------------------------------------
FAKE_DOCKER = """#!/bin/sh
# Stand-in docker for the hostile suite: answers the preflight, refuses everything else.
echo "$*" >> "$HOSTILE_DOCKER_LOG"
case "$1 $2" in
  "info --format") echo 27.0.0; exit 0 ;;
  "compose version") echo 2.30.0; exit 0 ;;
esac
echo "docker refused by the hostile suite: $*" >&2
exit 1
"""

TIER_YAML = (REPO / "stacks" / "cpu.yaml").read_text()
BOMB = "".join(f"{c}: &{c} [{','.join(['*' + p] * 9) if p else '1,2,3,4,5,6,7,8,9'}]\n"
               for p, c in zip([None, *"abcdefgh"], "abcdefghi"))


@pytest.fixture(scope="session")
def hostile_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    bindir = root / "bin"
    bindir.mkdir()
    (bindir / "docker").write_text(FAKE_DOCKER)
    (bindir / "docker").chmod(0o755)
    files = root / "files"
    files.mkdir()
    data = yaml.safe_load(TIER_YAML)
    data["name"] = str(files / "evil")
    (files / "evil.yaml").write_text(yaml.safe_dump(data))
    (files / "evil").mkdir()
    (files / "evil" / "precious.txt").write_text("keep me")
    (files / "bomb.yaml").write_text(BOMB)
    (files / "unrelated" / "cpu").mkdir(parents=True)
    (files / "unrelated" / "cpu" / "precious.txt").write_text("keep me")
    for name, text in (yaml.safe_load((HERE / "files.yaml").read_text()) or {}).items():
        if isinstance(text, dict) and "repeat" in text:
            text = text["repeat"] * int(text["times"])
        (files / name).write_text(text)
    # one real render, the "previous state" every case starts from
    baseline = root / "baseline"
    models = root / "models-baseline"
    models.mkdir()
    assert main(["render", "--tier", "cpu", "--state-dir", str(baseline / "state"), "--models-dir", str(models)]) == 0
    key = (baseline / "state" / "cpu" / "secrets.env").read_text().split("VLLM_API_KEY=", 1)[1].split()[0]
    assert key.startswith("rs-")
    return {"bin": bindir, "files": files, "baseline": baseline / "state", "key": key, "root": root}


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        if p.is_symlink():
            h.update(b"L" + os.readlink(p).encode())
        elif p.is_file():
            h.update(p.read_bytes())
            h.update(oct(p.stat().st_mode & 0o777).encode())
    return h.hexdigest()


def _subst(text: str, where: dict[str, str]) -> str:
    for key, value in where.items():
        text = text.replace("{" + key + "}", value)
    return text


def _check_output(case: dict, out: str, err: str, key: str) -> None:
    both = out + err
    assert "Traceback" not in both, f"traceback:\n{both[-2000:]}"
    assert "internal error" not in both, err
    assert key not in both, "the API key was printed"
    if case.get("secret"):
        assert case["secret"] not in both, "a secret from the input was printed"
    assert not RAW_CONTROL.search(err), f"raw control character echoed: {err!r}"


def _check_refusal(case: dict, code: int, err: str, field: str) -> None:
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert code == 2, f"exit {code}, expected 2; stderr: {err[-1500:]!r}"
    assert len(lines) == 1, f"expected one line, got {len(lines)}: {err!r}"
    # a vLLM flag may be named as the flag (max-num-seqs) or as the planner's field (max_num_seqs)
    named = lines[0].lower()
    assert field.lower() in named or field.lower().replace("-", "_").strip("_") in named, \
        f"{field!r} not named in: {lines[0]!r}"
    assert FIX_WORDS.search(lines[0]), f"no fix in: {lines[0]!r}"


CASE_SECONDS = 20
"""A case that runs longer hangs on its input (a config with 10^30 layers once never finished)."""


class CaseTimeout(BaseException):
    """Not an Exception: the CLI's last-resort handler must not turn it into a verdict."""


def _with_deadline(fn, seconds: int):
    import signal

    def alarm(signum, frame):
        raise CaseTimeout(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --- rentstack CLI -----------------------------------------------------------------------------------
def _env_lines(path: Path) -> dict[str, str]:
    """compose.env / secrets.env: every line a comment or KEY=bare / KEY='quoted', keys unique."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=([A-Za-z0-9_./:@%+,-]*|'[^'\n]*')", line)
        assert m, f"{path.name}: line not written by env_line: {line!r}"
        assert m.group(1) not in out, f"{path.name}: {m.group(1)} twice"
        out[m.group(1)] = m.group(2)
    return out


def _check_safe(case: dict, argv: list[str], baseline: Path) -> None:
    state = Path(argv[argv.index("--state-dir") + 1]) if "--state-dir" in argv else None
    tier = argv[argv.index("--tier") + 1] if "--tier" in argv else "cpu"
    assert state is not None
    rendered = state / tier
    want_env = set(_env_lines(baseline / "cpu" / "compose.env"))
    assert set(_env_lines(rendered / "compose.env")) == want_env
    assert set(_env_lines(rendered / "secrets.env")) <= {"VLLM_API_KEY", "RENTSTACK_METRICS_TOKEN", "HF_TOKEN"}
    vllm = yaml.safe_load((rendered / "vllm.yaml").read_text())
    assert set(vllm) == set(yaml.safe_load((baseline / "cpu" / "vllm.yaml").read_text()))
    if "--models-dir" in argv:
        from rentstack.safe import read_env_value
        models = _env_lines(rendered / "compose.env")["RENTSTACK_MODELS_DIR"]
        assert read_env_value(models) == str(Path(argv[argv.index("--models-dir") + 1]).resolve())
    if case.get("secret"):
        for name in ("vllm.yaml", "compose.env"):
            assert case["secret"] not in (rendered / name).read_text()


def _run_cli(case: dict, hostile_env, tmp_path, capfd, monkeypatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    shutil.copytree(hostile_env["baseline"], scratch / "state", symlinks=True)
    (scratch / "models").mkdir()
    log = tmp_path / "docker.log"
    monkeypatch.setenv("PATH", f"{hostile_env['bin']}:{os.environ['PATH']}")
    monkeypatch.setenv("HOSTILE_DOCKER_LOG", str(log))
    where = {"state": str(scratch / "state"), "models": str(scratch / "models"), "tmp": str(scratch),
             "files": str(hostile_env["files"])}
    argv = [_subst(a, where) for a in case["argv"]]
    field = _subst(case.get("field", ""), where)
    before, files_before = _tree_hash(scratch), _tree_hash(hostile_env["files"])
    capfd.readouterr()
    code = _with_deadline(lambda: main(argv), CASE_SECONDS)
    out, err = capfd.readouterr()
    _check_output(case, out, err, hostile_env["key"])
    assert _tree_hash(hostile_env["files"]) == files_before, "a fixture file was changed"
    docker_calls = log.read_text().splitlines() if log.exists() else []
    assert all(c.startswith(("info", "compose version")) for c in docker_calls), docker_calls
    if case["expect"] == "safe":
        assert code == 0, f"exit {code}: {err[-1500:]}"
        _check_safe(case, argv, hostile_env["baseline"])
        return
    if case["expect"] == "clean":   # any verdict, but printed cleanly (a log with terminal escapes)
        assert code in (0, 1, 2, 3), f"exit {code}: {err[-1500:]}"   # doctor: 1 = the log shows a failure
        assert not RAW_CONTROL.search(out), f"raw control character printed: {out!r}"
        assert _tree_hash(scratch) == before
        return
    _check_refusal(case, code, err, field)
    assert _tree_hash(scratch) == before, "state changed on a refused input"


@pytest.mark.parametrize("case", _params(CLI_CASES))
def test_cli(case, hostile_env, tmp_path, capfd, monkeypatch):
    _run_cli(case, hostile_env, tmp_path, capfd, monkeypatch)


# --- fab -------------------------------------------------------------------------------------------
def _fab(argv: list[str]) -> tuple[int, str, str]:
    """The `fab` console script's own entry point (fabric.main:program.run), in-process: the
    same parsing and tasks as the installed command, ~10 ms a case instead of ~300."""
    import contextlib
    import io

    from fabric.main import program

    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = ["fab", "-r", str(REPO), *argv]   # the fabfile reads sys.argv for -H batches
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                program.run(sys.argv, exit=True)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:   # noqa: BLE001 - a traceback is what the suite looks for
                import traceback
                traceback.print_exc(file=err)
                code = -1
    finally:
        sys.argv = saved
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def fab_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fab")
    (tmp / "home").mkdir()
    return tmp


@pytest.mark.parametrize("case", _params(FAB_CASES))
def test_fab(case, fab_env, monkeypatch):
    import time
    monkeypatch.setenv("HOME", str(fab_env / "home"))
    monkeypatch.delenv("RENTSTACK_SSH_PASSWORD", raising=False)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    state = REPO / ".rentstack"
    before = _tree_hash(state) if state.exists() else None
    argv = [_subst(a, {"tmp": str(fab_env), "host": "127.0.0.1:1"}) for a in case["argv"]]
    start = time.monotonic()
    code, out, err = _fab(argv)
    assert time.monotonic() - start < 10, "validation should not wait on the network"
    _check_output(case, out, err, key="\0never")
    _check_refusal(case, code, err, _subst(case.get("field", ""), {"tmp": str(fab_env)}))
    assert (_tree_hash(state) if state.exists() else None) == before, "fab wrote local state on a refused input"


def test_the_installed_fab_command_behaves_the_same():
    """One case through the real console script, so the in-process runner cannot drift from it."""
    proc = subprocess.run([str(Path(sys.executable).with_name("fab")), "-r", str(REPO), "provision", "--host",
                           "127.0.0.1:1", "--port", "abc"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert (proc.returncode, proc.stderr.count("\n")) == (2, 1) and "--port" in proc.stderr
    assert (proc.returncode, proc.stderr) == _fab(["provision", "--host", "127.0.0.1:1", "--port", "abc"])[::2]


# --- concurrency -------------------------------------------------------------------------------
CONCURRENT = yaml.safe_load((HERE / "cli.yaml").read_text()).get("concurrent", [])


@pytest.mark.parametrize("case", CONCURRENT, ids=[c["id"] for c in CONCURRENT])
def test_concurrent(case, hostile_env, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    shutil.copytree(hostile_env["baseline"], scratch / "state", symlinks=True)
    (scratch / "models").mkdir()
    where = {"state": str(scratch / "state"), "models": str(scratch / "models"), "tmp": str(scratch)}
    jobs = [(run["expect"], [_subst(a, where) for a in _flatten(run["argv"])])
            for _ in range(case["n"]) for run in case["runs"]]
    procs = [(expect, subprocess.Popen([sys.executable, "-m", "rentstack", *argv], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, cwd=scratch)) for expect, argv in jobs]
    for expect, proc in procs:
        out, err = proc.communicate(timeout=300)
        _check_output(case, out, err, hostile_env["key"])
        assert proc.returncode == expect, err
    state = scratch / "state"
    for tier_dir in [p for p in state.iterdir() if p.is_dir() and not p.name.startswith(".")]:
        assert sorted(p.name for p in tier_dir.iterdir()) == sorted(p.name for p in (hostile_env["baseline"] / "cpu").iterdir())
    assert f"VLLM_API_KEY={hostile_env['key']}" in (state / "cpu" / "secrets.env").read_text().splitlines(), \
        "the earlier key was lost"
    leftovers = [p.name for p in state.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"staging or backup left behind: {leftovers}"
