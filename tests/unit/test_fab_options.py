"""fab's flags through the real `fab` CLI: every value is typed and range-checked before any
connection (issue 8 item 9): one line naming the flag and the fix, exit 2, no traceback.
The host is unreachable on purpose: a check that ran too late would say "cannot reach"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rentstack.remote.connection import tunnel_line
from rentstack.remote.hosts import HostSpec
from rentstack.remote.options import InputError, Options

REPO = Path(__file__).resolve().parents[2]
FAB = str(Path(sys.executable).parent / "fab")
NOWHERE = "root@127.0.0.1:1"


def _fab(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RENTSTACK_SSH_PASSWORD"}
    return subprocess.run([FAB, *args], cwd=REPO, capture_output=True, text=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args, line", [
    (["provision", "--port", "abc"], "error: --port 'abc' is not a whole number: give one from 1 to 65535"),
    (["provision", "--port", "0"], "error: --port 0 is out of range: give one from 1 to 65535"),
    (["up", "--port", "70000"], "error: --port 70000 is out of range: give one from 1 to 65535"),
    (["provision", "--auto-fix", "x"], "error: --auto-fix 'x' is not a whole number: give one from 0 to 5"),
    (["provision", "--auto-fix", "99"], "error: --auto-fix 99 is out of range: give one from 0 to 5"),
    (["provision", "--health-timeout", "-5"], "error: --health-timeout -5 is out of range: give one from 0 to 604800"),
    (["logs", "--tail", "0"], "error: --tail 0 is out of range: give one from 1 to 100000"),
    (["tunnel", "--local-port", "99999"], "error: --local-port 99999 is out of range: give one from 0 to 65535"),
    (["top", "--interval", "abc"], "error: --interval 'abc' is not a whole number: give one from 1 to 3600"),
    (["top", "--interval", "0"], "error: --interval 0 is out of range: give one from 1 to 3600"),
    (["provision", "--data-dir", "autodl-tmp"], "must be an absolute path"),
    (["provision", "--data-dir", "/root/$(id)\nx"], "contains a control character"),
    (["provision", "--bind", "0.0.0.0\nRENTSTACK_BIND=x"], "contains a control character"),
    (["provision", "--bind", "example.com"], "error: --bind 'example.com' is not an IP address"),
    (["provision", "--runner", "k8s"], "error: --runner 'k8s' is unknown"),
    (["down", "--project", "Bad Name"], "error: --project 'Bad Name' is not a compose project name"),
    (["provision", "--tier", "4090x9"], "unknown tier '4090x9'"),
    (["provision", "--set", "max-model-len"], "max-model-len"),
    (["provision", "--key", "/no/such/key"], "error: --key '/no/such/key' does not exist"),
    (["provision", "--profiles", "webui,grafana"], "error: --profiles 'webui,grafana': unknown profile 'grafana'"),
    (["up", "--runner", "native", "--profiles", "monitoring"], "error: --profiles 'monitoring': monitoring needs Docker"),
])
def test_bad_flag_is_one_line_exit_2_before_connecting(args: list[str], line: str) -> None:
    r = _fab(args[0], "--host", NOWHERE, *args[1:])
    assert r.returncode == 2, r.stdout + r.stderr
    assert line in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr and "cannot reach" not in r.stderr


@pytest.mark.parametrize("host", ["$(id)@example.com:22", "ssh -p 22 -l '$(id)' example.com", "`x`@h", "-oProxyCommand=x@h"])
def test_hostile_ssh_user_is_refused(host: str) -> None:
    r = _fab("status", "--host", host)
    assert r.returncode == 2 and "is not a login name" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_fab_help_documents_the_exit_codes() -> None:
    r = _fab("--help", "provision")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "Exits 0 with the server up, 1 when a host failed, 2 on bad input" in text
    assert "4 when it stopped on purpose before serving" in text
    assert "--port=INT" in r.stdout and "--auto-fix=INT" in r.stdout


def test_options_are_keyword_only_and_checked() -> None:
    with pytest.raises(TypeError):
        Options("cpu")  # type: ignore[misc]
    assert Options(port="8080").port == 8080          # a flag's text becomes the number
    with pytest.raises(InputError, match="--health-timeout 10000000 is out of range"):
        Options(health_timeout=10**7)


def test_tunnel_line_is_shell_quoted() -> None:
    line = tunnel_line(HostSpec("::1", "root", 2222), 8000, 8000)
    assert line == "ssh -CNg -L 8000:127.0.0.1:8000 -p 2222 root@::1"
    odd = tunnel_line(HostSpec("h", "we ird", 22), 1, 2)      # a name the parser would refuse
    assert odd.endswith("'we ird@h'")
