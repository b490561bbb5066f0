#!/usr/bin/env python3
"""Idle-stop watchdog: reads vLLM's /metrics; after WINDOW with no request running, waiting
or finished, it warns in its log, stops the server and, with action `poweroff`, powers the
instance off by the provider's own means.

Standard library only (runs with the host's or the base image's python3). Configured by
environment variables, never by secrets on the command line:
  RENTSTACK_IDLE_STOP        the window: 30m, 1h, 90s (required; 0 or off = do nothing)
  RENTSTACK_IDLE_ACTION      stop (default) | poweroff
  RENTSTACK_IDLE_METRICS_URL e.g. http://front:8081/metrics
  RENTSTACK_METRICS_TOKEN    bearer token for /metrics (else VLLM_API_KEY; from secrets.env)
  RENTSTACK_IDLE_INTERVAL    seconds between reads (default 15)
  RENTSTACK_IDLE_TARGET      compose:<project> (stops its vllm-* containers via the Docker socket)
                             | native:<pidfile> (kills the supervisor's process group)
  RENTSTACK_IDLE_POWEROFF_CMD  a JSON list replacing the provider's power-off command
                             (tests use a recording command; nobody else needs it)
  RENTSTACK_IDLE_DRY_RUN     1: log what would be done, do nothing

Rules (the pure core, `step`): the timer arms on the first /metrics answer (a server still
loading is never idle); any running or waiting request, or any change of the finished,
prompt or generated token counters, is activity; a counter that goes down means the server
restarted, which also counts as activity (the timer starts again). While /metrics does not
answer nothing happens: the watchdog never acts on a server it cannot see.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace

# --------------------------------------------------------------------------- pure core

ACTIVITY_COUNTERS = ("vllm:request_success_total", "vllm:prompt_tokens_total", "vllm:generation_tokens_total")
"""Counters whose change means a request was served between two reads (vLLM 0.32,
vllm/v1/metrics/loggers.py; request_success counts every finished_reason, aborts included)."""
GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting")

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Sum each wanted series over its labels: {name: value} for GAUGES and ACTIVITY_COUNTERS.

    Raises ValueError when the gauges are absent (not a vLLM /metrics page)."""
    wanted = set(GAUGES) | set(ACTIVITY_COUNTERS)
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _LINE.match(line)
        if m and m.group(1) in wanted:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    missing = [g for g in GAUGES if g not in out]
    if missing:
        raise ValueError(f"not a vLLM /metrics page: {missing[0]} is missing")
    return out


@dataclass(frozen=True)
class Sample:
    """One read of /metrics at time t (seconds, monotonic); up=False when it did not answer."""

    t: float
    up: bool
    running: float = 0.0
    waiting: float = 0.0
    counters: tuple[float, ...] = ()

    @classmethod
    def from_metrics(cls, t: float, values: dict[str, float]) -> "Sample":
        return cls(t=t, up=True, running=values["vllm:num_requests_running"],
                   waiting=values["vllm:num_requests_waiting"],
                   counters=tuple(values.get(c, 0.0) for c in ACTIVITY_COUNTERS))


@dataclass(frozen=True)
class State:
    last_activity: float | None = None    # None: not armed yet (no /metrics answer so far)
    counters: tuple[float, ...] = ()
    warned: bool = False
    done: bool = False                    # acted; nothing more to do


@dataclass(frozen=True)
class Action:
    kind: str        # wait | arm | busy | idle | warn | stop | hold | done
    message: str = ""


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def warn_lead(window: float) -> float:
    """How long before stopping the warning comes: a minute, or half of a short window."""
    return min(60.0, window / 2)


def step(state: State, sample: Sample, window: float) -> tuple[State, Action]:
    """The decision for one read: the new state and what to do now."""
    if state.done:
        return state, Action("done")
    if not sample.up:
        if state.last_activity is None:
            return state, Action("wait", "waiting for the server's /metrics")
        return state, Action("hold", "/metrics does not answer; not acting on a server it cannot see")
    if state.last_activity is None:
        return (State(last_activity=sample.t, counters=sample.counters),
                Action("arm", f"server is up; stopping it after {_fmt(window)} without requests"))
    restarted = len(state.counters) == len(sample.counters) and any(
        new < old for new, old in zip(sample.counters, state.counters))
    changed = sample.counters != state.counters
    if sample.running > 0 or sample.waiting > 0 or changed:
        why = ("server restarted (counters reset)" if restarted else
               f"{int(sample.running)} running, {int(sample.waiting)} waiting" if sample.running or sample.waiting
               else "requests finished since the last read")
        return State(last_activity=sample.t, counters=sample.counters), Action("busy", why)
    idle = sample.t - state.last_activity
    if idle >= window:
        return (replace(state, done=True),
                Action("stop", f"idle for {_fmt(idle)} (window {_fmt(window)}): no request running, waiting "
                               "or finished; stopping the server"))
    if not state.warned and idle >= window - warn_lead(window):
        return (replace(state, warned=True),
                Action("warn", f"idle for {_fmt(idle)}: the server stops in {_fmt(window - idle)} "
                               "unless a request arrives"))
    return state, Action("idle", f"idle for {_fmt(idle)}")


_DURATION = re.compile(r"^(\d+)(s|m|h)?$")


def parse_window(text: str) -> float:
    """'30m' / '1h' / '90s' / '90' (seconds) -> seconds; '0', 'off' or '' -> 0 (disabled)."""
    text = text.strip().lower()
    if text in ("", "0", "off", "no", "false"):
        return 0.0
    m = _DURATION.match(text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"idle window {text!r} is not a duration: write e.g. 30m, 1h or 90s")
    return float(int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)])


def poweroff_command(env: dict[str, str], have: "callable") -> tuple[list[str], str]:
    """The provider's documented power-off from inside the instance, and which provider it is.

    RunPod: `runpodctl stop pod $RUNPOD_POD_ID` (runpodctl and a pod-scoped key are in every pod).
    Vast:   `vastai stop instance $CONTAINER_ID` (the instance's key is preinstalled).
    AutoDL: its images ship their own /usr/bin/shutdown that powers the instance off (billing
            stops, disks are kept); community idle tools call it bare. No official page found.
    Plain hosts: `shutdown -h now`."""
    if env.get("RENTSTACK_IDLE_POWEROFF_CMD"):
        return list(json.loads(env["RENTSTACK_IDLE_POWEROFF_CMD"])), "configured"
    if env.get("RUNPOD_POD_ID"):
        return ["runpodctl", "stop", "pod", env["RUNPOD_POD_ID"]], "runpod"
    if env.get("CONTAINER_ID") and (have("vastai") or env.get("VAST_CONTAINERLABEL")):
        return ["vastai", "stop", "instance", env["CONTAINER_ID"]], "vast"
    if any(k.startswith("AutoDL") for k in env) or os.path.isdir("/root/autodl-tmp"):
        return ["shutdown"], "autodl"
    return ["shutdown", "-h", "now"], "host"


# --------------------------------------------------------------------------- the edges


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} idle-stop: {message}", flush=True)


def read_sample(url: str, token: str | None, timeout: float = 5.0) -> Sample:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    now = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Sample.from_metrics(now, parse_metrics(resp.read().decode("utf-8", "replace")))
    except (urllib.error.URLError, OSError, ValueError):
        return Sample(t=now, up=False)


class _DockerSocket(http.client.HTTPConnection):
    """The Docker Engine API over /var/run/docker.sock (no docker CLI in the image)."""

    def __init__(self, path: str = "/var/run/docker.sock"):
        super().__init__("localhost", timeout=120)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(120)
        self.sock.connect(self._path)


def _docker(method: str, path: str) -> tuple[int, bytes]:
    conn = _DockerSocket()
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def stop_compose(project: str) -> list[str]:
    """Stop the project's vLLM containers (services vllm-*); `restart: unless-stopped` keeps them down."""
    filters = json.dumps({"label": [f"com.docker.compose.project={project}"], "status": ["running"]})
    status, body = _docker("GET", "/containers/json?filters=" + urllib.request.quote(filters))
    if status != 200:
        raise RuntimeError(f"Docker API answered {status} listing containers")
    stopped = []
    for c in json.loads(body):
        service = c.get("Labels", {}).get("com.docker.compose.service", "")
        if service.startswith("vllm-"):
            code, _ = _docker("POST", f"/containers/{c['Id']}/stop?t=30")
            if code not in (204, 304):
                raise RuntimeError(f"Docker API answered {code} stopping {service}")
            stopped.append(service)
    return stopped


def stop_native(pidfile: str) -> list[str]:
    """TERM the supervisor's process group (supervisor + vLLM), KILL after 30 s."""
    try:
        pid = int(open(pidfile).read().strip())
    except (OSError, ValueError):
        return []
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return []
    for _ in range(30):
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(1)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.unlink(pidfile)
    except OSError:
        pass
    return [f"supervisor {pid}"]


def act(env: dict[str, str], target: str, action: str, dry_run: bool) -> int:
    kind, _, where = target.partition(":")
    if dry_run:
        log(f"dry run: would stop the server ({target}){' and power off' if action == 'poweroff' else ''}")
        return 0
    stopped = stop_compose(where) if kind == "compose" else stop_native(where)
    log(f"stopped {', '.join(stopped) if stopped else 'nothing (the server was not running)'}")
    if action != "poweroff":
        return 0
    cmd, provider = poweroff_command(env, lambda name: subprocess.run(
        ["sh", "-c", f"command -v {name}"], capture_output=True).returncode == 0)
    log(f"powering off ({provider}): {' '.join(cmd)}")
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        log(f"power-off command exited with {proc.returncode}; the server is stopped, the instance is not")
        return 1
    return 0


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    try:
        window = parse_window(env.get("RENTSTACK_IDLE_STOP", ""))
    except ValueError as exc:
        log(f"error: RENTSTACK_IDLE_STOP: {exc}")
        return 2
    action = env.get("RENTSTACK_IDLE_ACTION", "stop")
    target = env.get("RENTSTACK_IDLE_TARGET", "")
    url = env.get("RENTSTACK_IDLE_METRICS_URL", "")
    if window == 0:
        log("disabled (RENTSTACK_IDLE_STOP is off); exiting")
        return 0
    if action not in ("stop", "poweroff"):
        log(f"error: RENTSTACK_IDLE_ACTION {action!r}: use stop or poweroff")
        return 2
    if not url or target.partition(":")[0] not in ("compose", "native") or not target.partition(":")[2]:
        log("error: set RENTSTACK_IDLE_METRICS_URL and RENTSTACK_IDLE_TARGET=compose:<project>|native:<pidfile>")
        return 2
    interval = float(env.get("RENTSTACK_IDLE_INTERVAL", "15"))
    token = env.get("RENTSTACK_METRICS_TOKEN") or env.get("VLLM_API_KEY") or None
    log(f"watching {url} every {interval:g} s; window {_fmt(window)}, action {action}")
    state = State()
    last_kind = ""
    while True:
        sample = read_sample(url, token)
        state, decision = step(state, sample, window)
        # Log changes of kind (and every warning/stop), not every quiet read.
        if decision.kind != last_kind or decision.kind in ("warn", "stop"):
            log(decision.message)
        last_kind = decision.kind
        if decision.kind == "stop":
            return act(env, target, action, env.get("RENTSTACK_IDLE_DRY_RUN") == "1")
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())
