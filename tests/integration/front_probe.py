"""Probing a front door: every route vLLM serves, with no key, a wrong key and the right key.

Shared by the compose test (tests/integration/test_front_door.py) and the native-runner test
over SSH. The route list comes from the running server's own /openapi.json (read behind the
front, never through it), plus FastAPI's pages that the schema does not list.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

# FastAPI serves these without listing them in the schema; the schema itself too.
UNLISTED = [("/openapi.json", "get"), ("/docs", "get"), ("/redoc", "get"), ("/docs/oauth2-redirect", "get")]
# Routes the issue names as open without a key on vLLM 0.32; all must be in the probe.
MUST_PROBE = {"/invocations", "/tokenize", "/detokenize", "/metrics", "/docs", "/scale_elastic_ep", "/load",
              "/version", "/ping", "/openapi.json"}
FRONT_404 = "not served here"
# Path tricks that must not reach a route outside the allowlist.
TRICKS = ["/v1/../invocations", "/v1/%2e%2e/invocations", "/v1/..%2Finvocations", "//invocations",
          "/v1/%2E%2E/tokenize", "/V1/../metrics/../tokenize", "/v1%2F..%2Finvocations", "/health/../tokenize",
          "/metrics/../invocations", "/v1/models/../../scale_elastic_ep"]


@dataclass(frozen=True)
class Answer:
    status: int
    body: str


def routes(openapi: dict) -> list[tuple[str, str]]:
    """(path, method) for every operation in the schema, path parameters filled in."""
    out = []
    for path, ops in openapi["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "probe", path)
        out += [(concrete, method) for method in ops if method in ("get", "post", "put", "delete", "patch")]
    return sorted(set(out + UNLISTED))


def allowed(path: str) -> bool:
    return path.startswith("/v1/") or path in ("/health", "/metrics")


class Client:
    """Raw HTTP(S) to the front, sending the path exactly as given (no client-side normalising)."""

    def __init__(self, base_url: str, cafile: str | None = None):
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.context = ssl.create_default_context(cafile=cafile) if self.https else None

    def _conn(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, key: str | None = None, body: bytes | None = None,
                timeout: float = 60) -> Answer:
        conn = self._conn(timeout)
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if method.upper() in ("POST", "PUT", "PATCH") and body is None:
            body = b"{}"
        try:
            conn.request(method.upper(), path, body=body, headers=headers)
            resp = conn.getresponse()
            return Answer(resp.status, resp.read().decode(errors="replace"))
        finally:
            conn.close()

    def stream_chat(self, key: str, model: str, max_tokens: int = 24) -> list[tuple[float, str]]:
        """(seconds since the request, event) for each SSE event of a streamed chat completion."""
        conn = self._conn(120)
        body = json.dumps({"model": model, "stream": True, "max_tokens": max_tokens, "temperature": 0,
                           "messages": [{"role": "user", "content": "Count from one to twenty."}]})
        start = time.monotonic()
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()[:300]
        events = []
        while True:
            line = resp.fp.readline()
            if not line:
                break
            line = line.decode().strip()
            if line.startswith("data:"):
                events.append((time.monotonic() - start, line[5:].strip()))
        conn.close()
        return events


def probe_all(client: Client, openapi: dict, key: str, metrics_token: str, model: str) -> list[str]:
    """Every route x {no key, wrong key, metrics token, right key}; the list of violations (empty = good)."""
    bad: list[str] = []
    table = routes(openapi)
    missing = MUST_PROBE - {path for path, _ in table}
    if missing:
        bad.append(f"routes the probe must cover are absent from the schema: {sorted(missing)}")
    for path, method in table:
        open_health = path == "/health" and method == "get"
        for label, given in (("no key", None), ("wrong key", "rs-wrong-" + key[-6:]), ("metrics token", metrics_token)):
            ans = client.request(method, path, given)
            if open_health:
                if ans.status != 200:
                    bad.append(f"{method.upper()} {path} with {label}: {ans.status}, expected 200")
            elif label == "metrics token" and path == "/metrics" and method == "get":
                if ans.status != 200 or "vllm:" not in ans.body:
                    bad.append(f"GET /metrics with the metrics token: {ans.status}")
            elif ans.status != 401:
                bad.append(f"{method.upper()} {path} with {label}: {ans.status} {ans.body[:80]!r}, expected 401")
        ans = client.request(method, path, key)
        if allowed(path):
            if ans.status == 401 or FRONT_404 in ans.body:
                bad.append(f"{method.upper()} {path} with the key did not reach vLLM: {ans.status} {ans.body[:80]!r}")
        elif ans.status != 404 or FRONT_404 not in ans.body:
            bad.append(f"{method.upper()} {path} with the key: {ans.status} {ans.body[:80]!r}, expected the front's 404")
    # A body /tokenize and /invocations both answer 200 to: any 2xx below means a trick got through.
    body = json.dumps({"model": model, "prompt": "hi", "max_tokens": 1}).encode()
    for path in TRICKS:
        for label, given in (("no key", None), ("the key", key)):
            ans = client.request("POST", path, given, body=body)
            expected = (400, 404) if given else (400, 401)
            if ans.status not in expected:
                bad.append(f"POST {path} with {label}: {ans.status} {ans.body[:80]!r}, expected one of {expected}")
    return bad
