"""The front door: the nginx config that stands between the network and vLLM (pure).

vLLM's own `--api-key` guards only `/v1` and a few other prefixes; `/invocations`, `/tokenize`,
`/metrics`, `/docs`, `/scale_elastic_ep` and more answer without it. So nothing publishes
vLLM's port: nginx does, and it
  - answers 401 to every request without `Authorization: Bearer <VLLM_API_KEY>`, except
    `GET /health` (and `/metrics`, which also takes RENTSTACK_METRICS_TOKEN);
  - forwards only `/v1/*`, `/health` and `/metrics`; anything else is 404 and never reaches vLLM;
  - bounds request bodies and timeouts, and streams responses unbuffered (SSE).
The key is compared in scripts/front/auth.js (njs), which reads it from the environment: it is
never in nginx.conf or on a command line.

Both runners use the same template: compose (nginx in its own container, vLLM reachable as
`vllm` on an internal network) and native (nginx and vLLM as host processes, vLLM on loopback).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from rentstack.errors import RentstackError
from rentstack.render.deployment import CONTAINER_PORT

AUTH_JS = Path(__file__).resolve().parents[2] / "scripts" / "front" / "auth.js"
"""The njs module that checks the key; copied next to the rendered nginx.conf."""

FRONT_PORT = 8080
"""The front's published listener inside compose (HTTPS when the tier serves TLS)."""

FRONT_INTERNAL_PORT = 8081
"""The front's second listener inside compose, never published and always plain HTTP, with the
same key rules: the parts on the compose network (webui, monitoring, idle-stop) reach vLLM at
`http://front:8081`, so a --public/--tls front's certificate is no concern of theirs."""

VLLM_INTERNAL_PORT = CONTAINER_PORT
"""Where vLLM listens behind the front in compose: `vllm:8000` on the internal network."""

FRONT_DIR = "front"
"""Subdirectory of a tier's deployment directory with nginx.conf, auth.js and TLS files."""

CONTAINER_FRONT_DIR = "/etc/rentstack/front"
"""Where compose mounts that directory in the front container."""

DOCKER_DNS = "127.0.0.11"
"""Docker's embedded DNS on user-defined networks: nginx re-resolves `vllm` through it, so a
recreated vLLM container (new address) is found without restarting the front."""


class FrontLimits(BaseModel):
    """Bounds the front puts on every request (nginx directives named in each field)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_body_mib: int = Field(16, ge=1, le=1024, description="client_max_body_size: largest request body (MiB); "
                                                             "bigger is 413, never read by vLLM.")
    header_timeout_s: int = Field(15, ge=1, le=300, description="client_header_timeout: time to send the headers.")
    body_timeout_s: int = Field(30, ge=1, le=600, description="client_body_timeout: longest pause while sending the body.")
    read_timeout_s: int = Field(900, ge=10, le=7200, description="proxy_read_timeout: longest silence from vLLM "
                                                                 "(a long non-streamed completion sends nothing until done).")
    connect_timeout_s: int = Field(5, ge=1, le=60, description="proxy_connect_timeout: reaching vLLM.")


@dataclass(frozen=True)
class FrontPaths:
    """Where nginx finds its files and writes its pid and logs on one runner."""

    front_dir: str            # nginx.conf, auth.js, tls.crt/tls.key
    pid: str
    access_log: str
    error_log: str


COMPOSE_PATHS = FrontPaths(front_dir=CONTAINER_FRONT_DIR, pid="/run/nginx.pid",
                           access_log="/dev/stdout", error_log="/dev/stderr")


def native_paths(front_dir: str, log_dir: str, tier: str = "") -> FrontPaths:
    """nginx's errors go to stderr, which the supervisor appends to the front's log."""
    suffix = f"-{tier}" if tier else ""
    return FrontPaths(front_dir=front_dir, pid=f"{front_dir}/nginx.pid",
                      access_log=f"{log_dir}/front-access{suffix}.log", error_log="stderr")


AUTH_MODES = ("njs", "map", "open")
"""How the front checks the key: njs (auth.js, key from the environment, digests compared in
fixed time); map (an nginx map in the 0600 key.map.conf, for hosts whose distribution packages
no njs module, such as Ubuntu 22.04); open (--no-api-key on loopback: allowlist only)."""

_MAP_SAFE = re.compile(r"[A-Za-z0-9._~+/=-]{16,128}")


def key_map_text(key: str, metrics_token: str) -> str:
    """key.map.conf for `map` mode (to be written 0600): nginx maps from the Authorization header."""
    for field, value in (("VLLM_API_KEY", key), ("RENTSTACK_METRICS_TOKEN", metrics_token)):
        if not _MAP_SAFE.fullmatch(value or ""):
            raise RentstackError(f"{field} has characters (or a length) an nginx map cannot hold safely: "
                                 "use 16-128 characters of A-Z a-z 0-9 . _ ~ + / = - (delete it from secrets.env "
                                 "to have a new one generated)")
    # nginx lowercases a map's plain string keys and the value it looks up, so "Bearer KEY" would
    # also accept the key in any other case. A "~" regular expression is matched case-sensitively;
    # of the characters allowed above only "." and "+" mean something in one, and are escaped.
    def exact(value: str) -> str:
        return '"~^Bearer ' + re.sub(r"([.+])", r"\\\1", value) + '$"'

    return ("# generated by rentstack — do not edit; secrets, keep this file 0600\n"
            f"map $http_authorization $rs_key {{ default 0; {exact(key)} 1; }}\n"
            f"map $http_authorization $rs_metrics {{ default 0; {exact(key)} 1; {exact(metrics_token)} 1; }}\n")


def front_values(*, upstream: str, listen: str, paths: FrontPaths, tls: bool, resolver: str | None,
                 require_key: bool, limits: FrontLimits = FrontLimits(), njs: bool = True,
                 internal_listen: str | None = None) -> dict[str, object]:
    """Every value templates/nginx.conf.j2 substitutes, computed here. ``internal_listen``: a
    second, plain listener with the same rules (compose: for the services beside the server)."""
    return {
        "auth": ("njs" if njs else "map") if require_key else "open",
        "key_map": f"{paths.front_dir}/key.map.conf",
        "listen": f"{listen} ssl" if tls else listen,
        "internal_listen": internal_listen,
        "upstream": upstream,
        "resolver": resolver,
        "auth_js": f"{paths.front_dir}/auth.js",
        "tls_cert": f"{paths.front_dir}/tls.crt" if tls else None,
        "tls_key": f"{paths.front_dir}/tls.key" if tls else None,
        "pid": paths.pid,
        "access_log": paths.access_log,
        "error_log": paths.error_log,
        "max_body": f"{limits.max_body_mib}m",
        "header_timeout": f"{limits.header_timeout_s}s",
        "body_timeout": f"{limits.body_timeout_s}s",
        "read_timeout": f"{limits.read_timeout_s}s",
        "connect_timeout": f"{limits.connect_timeout_s}s",
    }


def compose_front_values(*, tls: bool, require_key: bool) -> dict[str, object]:
    """The compose runner: vLLM is `vllm:8000` on the internal network; the front listens on 8080
    (published) and 8081 (plain, for the services beside the server)."""
    return front_values(upstream=f"http://vllm:{VLLM_INTERNAL_PORT}", listen=str(FRONT_PORT), paths=COMPOSE_PATHS,
                        tls=tls, resolver=DOCKER_DNS, require_key=require_key,
                        internal_listen=str(FRONT_INTERNAL_PORT))


def native_front_values(*, bind: str, port: int, vllm_port: int, front_dir: str, log_dir: str, tls: bool,
                        require_key: bool, njs: bool = True, tier: str = "") -> dict[str, object]:
    """The native runner: vLLM on 127.0.0.1:vllm_port, nginx on bind:port."""
    for field, path in (("front directory", front_dir), ("log directory", log_dir)):
        if not _NGINX_PATH.fullmatch(path):
            raise RentstackError(f"{field} {path!r} has characters nginx.conf cannot hold unquoted: use a data "
                                 "directory made of letters, digits and . _ - / only")
    host = f"[{bind}]" if ":" in bind else bind
    return front_values(upstream=f"http://127.0.0.1:{vllm_port}", listen=f"{host}:{port}",
                        paths=native_paths(front_dir, log_dir, tier), tls=tls, resolver=None, require_key=require_key,
                        njs=njs)


_NGINX_PATH = re.compile(r"/[A-Za-z0-9._/-]*")


def front_files(tier_name: str, values: dict[str, object], *, tls: tuple[str, str] | None = None,
                key_map: str | None = None) -> dict[str, tuple[str, int]]:
    """front/<name> -> (text, mode): nginx.conf from `values` (compose_ or native_front_values),
    auth.js, and the TLS pair (cert, key PEM) and key.map.conf when they apply. Secrets are 0600."""
    from rentstack.render.templates import render_front_conf

    files = {"nginx.conf": (render_front_conf(tier_name, values), 0o644), "auth.js": (AUTH_JS.read_text(), 0o644)}
    if tls is not None:
        files["tls.crt"] = (tls[0], 0o644)
        files["tls.key"] = (tls[1], 0o600)
    if key_map is not None:
        files["key.map.conf"] = (key_map, 0o600)
    return files
