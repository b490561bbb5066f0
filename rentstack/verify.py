"""Verification: is the server healthy, and does it answer a chat request with the key?

Shared by the local and the remote executors (the remote one through an SSH tunnel).
Standard library only.
"""

from __future__ import annotations

import json
import shlex
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from rentstack.errors import RentstackError

SMOKE_PROMPT = "What is the capital of France? Answer in one sentence."
"""The smoke request's question: short, with one obvious answer to eyeball."""


def health(base_url: str, timeout: float = 5.0, cafile: str | None = None) -> bool:
    """True when GET /health answers 200 (``cafile``: the certificate of an HTTPS front)."""
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=timeout, context=context) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_healthy(base_url: str, timeout: float, interval: float = 2.0, alive=None, cafile: str | None = None) -> bool:
    """Poll /health until 200 or `timeout` seconds; stop early when alive() says the server died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health(base_url, cafile=cafile):
            return True
        if alive is not None and not alive():
            return False
        time.sleep(interval)
    return False


@dataclass(frozen=True)
class ChatResult:
    status: int
    text: str
    completion_tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


def chat(base_url: str, api_key: str | None, model: str, prompt: str, max_tokens: int = 64,
         timeout: float = 120.0, cafile: str | None = None) -> ChatResult:
    """One non-streaming /v1/chat/completions request; returns the HTTP status on 4xx/5xx.

    cafile: the certificate to trust for an HTTPS front (a self-signed one included)."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}],
                       "max_tokens": max_tokens, "temperature": 0}).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    req = urllib.request.Request(f"{base_url}/v1/chat/completions", data=body, headers=headers)
    start = time.monotonic()
    try:
        context = ssl.create_default_context(cafile=cafile) if cafile else None
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            data = json.load(resp)
            status = resp.status
    except urllib.error.HTTPError as exc:
        return ChatResult(status=exc.code, text=exc.read().decode(errors="replace")[:200], completion_tokens=0,
                          seconds=time.monotonic() - start)
    except (urllib.error.URLError, OSError) as exc:
        raise RentstackError(f"no answer from {base_url}: {getattr(exc, 'reason', exc)}") from None
    elapsed = time.monotonic() - start
    text = data["choices"][0]["message"]["content"] or ""
    return ChatResult(status=status, text=text.strip(), completion_tokens=int(data["usage"]["completion_tokens"]),
                      seconds=elapsed)


def smoke(base_url: str, api_key: str | None, model: str, prompt: str = SMOKE_PROMPT,
          max_tokens: int = 32, cafile: str | None = None) -> ChatResult:
    """The smoke request: one chat completion with the key; anything but 200 is an error."""
    result = chat(base_url, api_key, model, prompt, max_tokens=max_tokens, cafile=cafile)
    if result.status != 200:
        raise RentstackError(f"smoke request to {base_url} failed with HTTP {result.status}: {result.text}")
    return result


def smoke_line(result: ChatResult, via: str = "") -> str:
    """One line for a report: the reply, tokens and time (``via`` says how it got there)."""
    return f"smoke: {result.text!r} ({result.completion_tokens} tokens in {result.seconds:.2f} s{via})"


def ready_lines(base_url: str, model: str, key_file: str, where: str = "", cert: str | None = None,
                fingerprint: str | None = None) -> list[str]:
    """Where the server answers, where its key is, and a curl line to try it (the key is read
    from its file by the shell, never printed). ``cert``: the HTTPS front's certificate."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 32})
    key = f"$(sed -n 's/^VLLM_API_KEY=//p' {shlex.quote(key_file)})"
    lines = [
        f"ready: {base_url}/v1{where}  (OpenAI-compatible; model {json.dumps(model)})",
        f"API key: stored in {key_file} (mode 0600), variable VLLM_API_KEY; every route needs it except GET /health",
        f"metrics: {base_url}/metrics with the key or RENTSTACK_METRICS_TOKEN (same file)",
    ]
    if cert:
        lines.append(f"TLS certificate: {cert}" + (f", SHA-256 fingerprint {fingerprint}" if fingerprint else ""))
    cacert = f"--cacert {shlex.quote(cert)} " if cert else ""
    return lines + [
        "try it:",
        f"  curl -s {cacert}{base_url}/v1/chat/completions -H \"Authorization: Bearer {key}\" \\",
        f"    -H 'Content-Type: application/json' -d {shlex.quote(body)}",
    ]
