"""The front door on the compose runner: real nginx (Debian's, with njs) in front of real vLLM CPU.

One `rentstack up` for the module. The route list is the running server's own /openapi.json,
read inside the vLLM container (the front never serves it); every route is called with no
key, a wrong key, the metrics token and the right key. The last test re-runs `up --tls` on the
same deployment: only the front is recreated, now serving HTTPS with a self-signed certificate.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from rentstack.cli import main
from rentstack.local.compose import Stack
from rentstack.local.deploy_dir import read_api_key, read_metrics_token
from rentstack.remote.connection import free_local_port
from rentstack.verify import chat

from integration.front_probe import FRONT_404, Client, probe_all

PROJECT = "rentstack-front"
MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def stack(smollm2, tmp_path_factory):
    state = tmp_path_factory.mktemp("front-state")
    port = free_local_port()
    common = ["--tier", "cpu", "--state-dir", str(state), "--project", PROJECT]
    assert main(["up", *common, "--port", str(port)]) == 0
    secrets = state / "cpu" / "secrets.env"
    compose = Stack(profile="cpu", env_file=state / "cpu" / "compose.env", project=PROJECT)
    yield {"url": f"http://127.0.0.1:{port}", "port": port, "common": common, "state": state, "compose": compose,
           "key": read_api_key(secrets), "metrics": read_metrics_token(secrets)}
    main(["down", *common])


def _compose(stack, *args: str) -> str:
    return subprocess.run(stack["compose"].cmd(*args), capture_output=True, text=True, check=True).stdout


def _openapi(stack) -> dict:
    """The schema straight from vLLM, inside its own container (not through the front)."""
    return json.loads(_compose(stack, "exec", "-T", "vllm-cpu", "curl", "-fsS", "http://127.0.0.1:8000/openapi.json"))


def test_every_served_route_needs_the_key(stack):
    openapi = _openapi(stack)
    assert "/invocations" in openapi["paths"] and "/v1/chat/completions" in openapi["paths"]
    bad = probe_all(Client(stack["url"]), openapi, stack["key"], stack["metrics"], MODEL)
    assert bad == []


def test_chat_and_streaming_pass_through_unbuffered(stack):
    client = Client(stack["url"])
    reply = chat(stack["url"], stack["key"], MODEL, "What is the capital of France?")
    assert reply.status == 200 and "paris" in reply.text.lower()
    events = client.stream_chat(stack["key"], MODEL, max_tokens=24)
    assert events[-1][1] == "[DONE]"
    contents = [json.loads(e)["choices"][0]["delta"].get("content") for _, e in events[:-1] if json.loads(e)["choices"]]
    assert sum(1 for c in contents if c) >= 10
    # unbuffered: the first token arrives well before the last (nginx did not hold the stream)
    first_token = next(t for (t, e) in events[:-1] if json.loads(e)["choices"] and
                       json.loads(e)["choices"][0]["delta"].get("content"))
    assert events[-1][0] - first_token > 0.2, events[:3]


def test_metrics_token_opens_only_metrics(stack):
    client = Client(stack["url"])
    metrics = client.request("GET", "/metrics", stack["metrics"])
    assert metrics.status == 200 and "vllm:num_requests_running" in metrics.body
    assert client.request("GET", "/v1/models", stack["metrics"]).status == 401
    assert client.request("GET", "/metrics", stack["key"]).status == 200


def test_only_the_front_publishes_and_vllm_sits_on_the_internal_network(stack):
    rows = [json.loads(line) for line in _compose(stack, "ps", "--format", "json").splitlines() if line.strip()]
    published = {(r["Service"], p["URL"], p["PublishedPort"]) for r in rows for p in r["Publishers"] if p["PublishedPort"]}
    assert published == {("front", "127.0.0.1", stack["port"])}
    vllm = json.loads(subprocess.run(["docker", "inspect", f"{PROJECT}-vllm-cpu-1"], capture_output=True, text=True,
                                     check=True).stdout)[0]
    networks = vllm["NetworkSettings"]["Networks"]
    assert list(networks) == [f"{PROJECT}_inside"]
    assert "vllm" in networks[f"{PROJECT}_inside"]["Aliases"]
    inside = json.loads(subprocess.run(["docker", "network", "inspect", f"{PROJECT}_inside"], capture_output=True,
                                       text=True, check=True).stdout)[0]
    assert inside["Internal"] is True
    # vLLM's port is bound to no host address (processes on the Docker host itself can still
    # reach a container's bridge address, as on any Docker network; nothing beyond it can)
    assert not vllm["HostConfig"]["PortBindings"]
    assert not any((vllm["NetworkSettings"]["Ports"] or {}).values())


def test_bounds_and_logs(stack):
    client = Client(stack["url"])
    big = b'{"model": "x", "prompt": "' + b"a" * (17 * 2**20) + b'"}'
    assert client.request("POST", "/v1/completions", stack["key"], body=big).status == 413
    # a 3 MiB prompt is buffered to disk by nginx's worker and reaches vLLM, which answers itself
    long = json.dumps({"model": MODEL, "prompt": "word " * (600 * 1024), "max_tokens": 1}).encode()
    answer = client.request("POST", "/v1/completions", stack["key"], body=long)
    assert answer.status == 400 and "length" in answer.body.lower(), answer
    client.request("GET", "/v1/models", stack["key"])
    client.request("GET", "/metrics", stack["metrics"])
    log = subprocess.run(["docker", "logs", f"{PROJECT}-front-1"], capture_output=True, text=True).stdout
    assert '"GET /v1/models" 200' in log
    assert stack["key"] not in log and stack["metrics"] not in log and "Bearer" not in log
    conf = (stack["state"] / "cpu" / "front" / "nginx.conf").read_text()
    assert stack["key"] not in conf and stack["metrics"] not in conf
    cmdline = subprocess.run(["docker", "inspect", "-f", "{{json .Config.Cmd}} {{json .Config.Entrypoint}}",
                              f"{PROJECT}-front-1"], capture_output=True, text=True, check=True).stdout
    assert stack["key"] not in cmdline


def test_tls_front_with_a_self_signed_certificate(stack, capsys):
    """Last: `up --tls` on the same deployment recreates only the front, now over HTTPS."""
    capsys.readouterr()
    assert main(["up", *stack["common"], "--port", str(stack["port"]), "--tls"]) == 0
    out = capsys.readouterr().out
    https = f"https://127.0.0.1:{stack['port']}"
    assert f"ready: {https}/v1" in out
    fingerprint = re.search(r"SHA-256 fingerprint ([0-9A-F:]{95})", out).group(1)
    cert = stack["state"] / "cpu" / "front" / "tls.crt"
    openssl = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(cert)],
                             capture_output=True, text=True, check=True).stdout
    assert openssl.strip().split("=", 1)[1] == fingerprint
    client = Client(https, cafile=str(cert))
    assert client.request("GET", "/health").status == 200
    assert client.request("POST", "/invocations", None).status == 401
    assert client.request("POST", "/tokenize", stack["key"]).status == 404
    reply = chat(https, stack["key"], MODEL, "What is the capital of France?", cafile=str(cert))
    assert reply.status == 200 and "paris" in reply.text.lower()
    # plain HTTP on the TLS port is refused by nginx, not forwarded
    plain = Client(f"http://127.0.0.1:{stack['port']}").request("GET", "/v1/models", stack["key"])
    assert plain.status == 400 and FRONT_404 not in plain.body
    assert main(["smoke", *stack["common"]]) == 0
