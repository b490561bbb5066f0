"""Replicas behind one endpoint: the same deployment on several hosts, vLLM's router in front.

`fab provision --host h1,h2 --replicas` provisions every host with one shared API key (kept
in a local 0600 file, uploaded as each host's secrets.env); `fab router --host h1,h2` then
opens an SSH tunnel to each host's front door and runs the router on this machine, bound
to 127.0.0.1, over the tunnels. No replica port is ever published: the router reaches them
only through SSH. The router forwards the client's Authorization header, so every replica's
front door checks the key and the router itself holds none.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from rentstack.errors import RentstackError
from rentstack.remote.connection import Remote, free_local_port
from rentstack.remote.hosts import Auth, HostSpec
from rentstack.remote.options import Options, write_local_secret
from rentstack.render.secrets import SECRETS_FILE, new_api_key, parse_api_key, secrets_env_text
from rentstack.scale.router import ROUTER_REQUIREMENT, RouterPlan
from rentstack.verify import ready_lines

ROUTER_START_S = 60.0


def replica_dir(opts: Options) -> Path:
    """Local state of a replica set: the shared key and the router's log."""
    return opts.local_state / f"replicas-{opts.tier}"


def shared_key_file(opts: Options) -> Path:
    """The replica set's secrets.env (0600), made on first use and kept after."""
    path = replica_dir(opts) / SECRETS_FILE
    if not path.is_file() or not parse_api_key(path.read_text()):
        write_local_secret(path, secrets_env_text(opts.tier, new_api_key()))
    os.chmod(path, 0o600)
    return path


def _router_python() -> str:
    try:
        import vllm_router  # noqa: F401
    except ImportError:
        raise RentstackError(f"the router is not installed here: pip install '{ROUTER_REQUIREMENT}' "
                             "(or `pip install -e .[router]`)") from None
    return sys.executable


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = [l for l in log.read_text(errors="replace").splitlines() if l.strip()][-1:]
            raise RentstackError(f"the router exited (code {proc.returncode}): {tail[0][:200] if tail else 'no output'}"
                                 f"; full log: {log}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RentstackError(f"the router did not answer /health within {timeout_s:.0f} s; see {log}")


def serve_router(specs: list[HostSpec], auth: Auth, opts: Options, *, port: int, policy: str = "cache_aware",
                 seconds: float | None = None, echo: Callable[[str], None] = print, model_name: str = "") -> None:
    """Tunnels to every replica's server port, the router on 127.0.0.1:port over them; until
    Ctrl-C (or `seconds`). The router is stopped and the tunnels closed on the way out."""
    python = _router_python()
    key_file = shared_key_file(opts)
    log = replica_dir(opts) / "router.log"
    with contextlib.ExitStack() as stack:
        urls = []
        for spec in specs:
            remote = stack.enter_context(Remote(spec, auth))
            url = stack.enter_context(remote.tunnel(free_local_port(), opts.port))
            echo(f"replica {spec.label}: its server 127.0.0.1:{opts.port} reached through SSH at {url}")
            urls.append(url)
        plan = RouterPlan(port=port, workers=tuple(urls), policy=policy, metrics_port=free_local_port())
        with open(log, "ab") as out:
            proc = subprocess.Popen(plan.argv(python), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        stack.callback(_stop, proc)
        # `kill` (SIGTERM) must stop the router too: it runs in its own session and would outlive us.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        stack.callback(signal.signal, signal.SIGTERM, previous)
        endpoint = f"http://127.0.0.1:{port}"
        _wait_healthy(endpoint, proc, log, ROUTER_START_S)
        echo(f"router: {len(urls)} replicas, policy {policy}, health checks every {plan.health_interval_s} s; "
             f"log {log}")
        for line in ready_lines(endpoint, model_name or "<model>", str(key_file), f" (router over {len(urls)} replicas)"):
            echo(line)
        try:
            if seconds is not None:
                time.sleep(seconds)
            else:
                while proc.poll() is None:
                    time.sleep(1)
                raise RentstackError(f"the router stopped (code {proc.returncode}); see {log}")
        except KeyboardInterrupt:
            echo("router: stopping")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
