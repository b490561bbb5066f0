"""Every tier's compose service passes the real `docker compose config`, with the values that matter."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from rentstack.local.compose import Stack
from rentstack.local.deploy_dir import write_deployment
from rentstack.render import build_deployment
from rentstack.config import custom_tier, list_tiers, load_tier

# A tier spanning hosts is a Ray cluster brought up over SSH, not a compose service.
CASES = [(name, None) for name in list_tiers() if load_tier(name).hosts == 1] + [("gpu", "custom")]


def _tier(name, kind):
    return custom_tier(2, 24.0) if kind == "custom" else load_tier(name)


@pytest.mark.parametrize(("name", "kind"), CASES, ids=[c[0] for c in CASES])
def test_compose_config_passes_for_every_tier(name, kind, tmp_path):
    tier = _tier(name, kind)
    dep = build_deployment(tier, None if kind != "custom" else "qwen3-8b", models_dir="/data/models")
    out = write_deployment(dep, tmp_path / "state", tmp_path / "cache")
    stack = Stack(profile=name, env_file=out.compose_env, project="rentstack-config-test")
    proc = subprocess.run(stack.cmd("config", "--format", "json"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    assert sorted(config["services"]) == ["front", f"vllm-{name}"], "only this tier's service and the front"
    svc = config["services"][f"vllm-{name}"]
    front = config["services"]["front"]
    assert "ports" not in svc and list(svc["networks"]) == ["inside"]   # vLLM: internal network only
    port = front["ports"][0]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "8000", 8080)
    assert front["depends_on"][f"vllm-{name}"]["condition"] == "service_healthy"
    assert front["environment"]["VLLM_API_KEY"] == svc["environment"]["VLLM_API_KEY"]
    assert front["environment"]["RENTSTACK_METRICS_TOKEN"].startswith("rsm-")
    assert {v["target"]: v["source"] for v in front["volumes"]} == {"/etc/rentstack/front": str(out.front_dir)}
    assert svc["environment"]["VLLM_API_KEY"].startswith("rs-")        # from the 0600 env file
    assert "rs-" not in " ".join(svc["command"])
    mounts = {v["target"]: v for v in svc["volumes"]}
    assert mounts["/models"]["source"] == "/data/models" and mounts["/models"]["read_only"] is True
    assert mounts["/etc/rentstack/vllm.yaml"]["source"] == str(out.vllm_yaml)
    assert svc["healthcheck"]["start_period"]
    assert svc["restart"] == "unless-stopped"
    if tier.accelerator == "cpu":
        assert svc["shm_size"] == "2147483648"
        assert svc["environment"]["VLLM_CPU_KVCACHE_SPACE"] == "1"
    else:
        assert svc["ipc"] == "host"
        device = svc["deploy"]["resources"]["reservations"]["devices"][0]
        assert device["count"] == tier.gpu.count and device["capabilities"] == ["gpu"]
        if not tier.gpu.p2p:
            assert svc["environment"]["NCCL_P2P_DISABLE"] == "1"


def test_public_bind_reaches_compose(tmp_path):
    dep = build_deployment(load_tier("cpu"), bind="0.0.0.0", port=6006, models_dir="/data/models")
    out = write_deployment(dep, tmp_path / "state", tmp_path / "cache")
    stack = Stack(profile="cpu", env_file=out.compose_env, project="rentstack-config-test")
    config = json.loads(subprocess.run(stack.cmd("config", "--format", "json"), capture_output=True,
                                       text=True, check=True).stdout)
    port = config["services"]["front"]["ports"][0]
    assert (port["host_ip"], port["published"]) == ("0.0.0.0", "6006")
    assert "ports" not in config["services"]["vllm-cpu"]
    assert (out.front_dir / "tls.crt").is_file() and out.tls_fingerprint     # --public: HTTPS
    assert "listen 8080 ssl;" in (out.front_dir / "nginx.conf").read_text()


@pytest.mark.parametrize("runner", ["compose", "compose-tls", "native-tls", "native-map", "no-key"])
def test_real_nginx_accepts_the_rendered_front_conf(runner, tmp_path):
    """`nginx -t` of Debian's nginx + njs (the front image) on each shape of the template."""
    from rentstack.local.image import build_front_image
    from rentstack.local.tls import self_signed
    from rentstack.render.front import AUTH_JS, compose_front_values, key_map_text, native_front_values
    from rentstack.render.templates import render_front_conf
    from rentstack.versions import FRONT_IMAGE

    build_front_image()
    tls = "tls" in runner
    if runner.startswith("native"):
        values = native_front_values(bind="0.0.0.0", port=6006, vllm_port=18000, front_dir=str(tmp_path),
                                     log_dir=str(tmp_path), tls=tls, require_key=True, njs=runner != "native-map")
        (tmp_path / "key.map.conf").write_text(key_map_text("rs-" + "k" * 43, "rsm-" + "m" * 43))
        mount = f"{tmp_path}:{tmp_path}"              # native nginx writes its pid and logs there
    else:
        values = compose_front_values(tls=tls, require_key=runner != "no-key")
        mount = f"{tmp_path}:/etc/rentstack/front:ro"
    (tmp_path / "nginx.conf").write_text(render_front_conf("cpu", values))
    (tmp_path / "auth.js").write_bytes(AUTH_JS.read_bytes())
    if tls:
        pair = self_signed(["localhost"])
        (tmp_path / "tls.crt").write_bytes(pair.cert_pem)
        (tmp_path / "tls.key").write_bytes(pair.key_pem)
    conf = f"{tmp_path}/nginx.conf" if runner.startswith("native") else "/etc/rentstack/front/nginx.conf"
    # `vllm` only resolves on the compose network; nginx -t resolves nothing because the upstream is a variable
    proc = subprocess.run(["docker", "run", "--rm", "-v", mount, "--entrypoint", "nginx",
                           FRONT_IMAGE, "-t", "-c", conf], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "syntax is ok" in proc.stderr


@pytest.mark.parametrize("njs", [True, False], ids=["njs", "map"])
def test_both_key_checks_answer_alike(njs, tmp_path):
    """Real nginx in the front image, in front of a stand-in upstream (python's http.server on the
    base image): the njs check and the map check (hosts without njs) give the same answers."""
    from rentstack.local.image import build_front_image
    from rentstack.render.front import AUTH_JS, key_map_text, native_front_values
    from rentstack.render.templates import render_front_conf
    from rentstack.versions import BASE_IMAGE, FRONT_IMAGE

    build_front_image()
    key, token = "rs-" + "k" * 43, "rsm-" + "m" * 43
    values = native_front_values(bind="127.0.0.1", port=18181, vllm_port=18182, front_dir=str(tmp_path),
                                 log_dir=str(tmp_path), tls=False, require_key=True, njs=njs)
    (tmp_path / "nginx.conf").write_text(render_front_conf("cpu", values))
    (tmp_path / "auth.js").write_bytes(AUTH_JS.read_bytes())
    (tmp_path / "key.map.conf").write_text(key_map_text(key, token))
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "models").write_text("models")
    (tmp_path / "health").write_text("ok")
    (tmp_path / "metrics").write_text("vllm:x 1")
    (tmp_path / "tokenize").write_text("must never be served")
    os.chmod(tmp_path, 0o755)
    net = f"rs-front-test-{'njs' if njs else 'map'}"
    names = [f"{net}-up", f"{net}-front"]
    try:
        subprocess.run(["docker", "run", "-d", "--name", names[0], "--network", "host", "-v", f"{tmp_path}:/srv:ro",
                        "-w", "/srv", BASE_IMAGE, "python3", "-m", "http.server", "--bind", "127.0.0.1", "18182"],
                       check=True, capture_output=True)
        subprocess.run(["docker", "run", "-d", "--name", names[1], "--network", "host", "-v", f"{tmp_path}:{tmp_path}",
                        "-e", f"VLLM_API_KEY={key}", "-e", f"RENTSTACK_METRICS_TOKEN={token}", "--entrypoint", "nginx",
                        FRONT_IMAGE, "-g", "daemon off;", "-c", f"{tmp_path}/nginx.conf"], check=True, capture_output=True)
        answers = {}
        for path in ("/health", "/v1/models", "/metrics", "/tokenize"):
            for label, given in (("none", None), ("wrong", "rs-" + "x" * 43), ("metrics", token), ("key", key),
                                 ("key, other case", key.upper()), ("token, other case", token.upper())):
                answers[(path, label)] = _get(f"http://127.0.0.1:18181{path}", given)
    finally:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
    assert answers == {
        ("/health", "none"): 200, ("/health", "wrong"): 200, ("/health", "metrics"): 200, ("/health", "key"): 200,
        ("/v1/models", "none"): 401, ("/v1/models", "wrong"): 401, ("/v1/models", "metrics"): 401,
        ("/v1/models", "key"): 200,
        ("/metrics", "none"): 401, ("/metrics", "wrong"): 401, ("/metrics", "metrics"): 200, ("/metrics", "key"): 200,
        ("/tokenize", "none"): 401, ("/tokenize", "wrong"): 401, ("/tokenize", "metrics"): 401, ("/tokenize", "key"): 404,
        # nginx lowercases a map's plain string keys and the value looked up: the key must not
        # match in another case (one bit of the key's entropy lost per letter).
        **{(path, f"{which}, other case"): 200 if path == "/health" else 401
           for path in ("/health", "/v1/models", "/metrics", "/tokenize") for which in ("key", "token")},
    }


def _get(url: str, key: str | None) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    for _ in range(50):
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            import time
            time.sleep(0.1)        # nginx or the stand-in still starting
    raise AssertionError(f"no answer from {url}")
