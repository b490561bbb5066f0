"""rentstack on rented GPU hosts, over SSH (Fabric). Thin: each task parses its flags and
calls rentstack.remote; the logic, plans and parsers live in the package.

  fab provision --host "ssh -p 12345 root@region-1.autodl.com" --tier cpu
  fab -H root@h1:22,root@h2:22 provision --tier 4090x1 --model qwen3-14b-awq   (parallel)
  fab provision --host root@HOST:PORT --dry-run        (print the plan, change nothing)
  fab download / up / down / status / logs / tunnel / doctor --host ...

Password: $RENTSTACK_SSH_PASSWORD, else a prompt with --password; never a flag value.
"""

from __future__ import annotations

import getpass
import inspect
import os
import sys

from fabric import task
from invoke.exceptions import Exit

from rentstack.errors import RentstackError
from rentstack.remote import tasks
from rentstack.remote.hosts import PASSWORD_ENV, Auth, HostSpec, hosts_from_argv, parse_hosts
from rentstack.remote.provision import Options

_HOST_HELP = "USER@HOST:PORT, several separated by commas, or AutoDL's 'ssh -p PORT root@HOST' line"
_COMMON_HELP = {
    "host": _HOST_HELP,
    "password": f"log in with a password: ${PASSWORD_ENV} or a prompt (never on the command line)",
    "key": "private key file to log in with",
    "tier": "hardware tier (stacks/<tier>.yaml), default cpu",
    "model": "catalog name, or modelscope:ORG/NAME, hf:ORG/NAME, local:/path (default: the tier's)",
    "data_dir": "the host's data disk (default /root/autodl-tmp)",
    "port": "port the server listens on, on the host (default 8000; AutoDL's custom service is 6006)",
    "bind": "address on the host (default 127.0.0.1: reach it through the tunnel)",
    "runner": "compose or native (default: from the host's facts)",
    "project": "docker compose project name on Docker hosts (default rentstack)",
    "wheels": "wheelhouse directory on the host for the native venv (default /root/autodl-pub/wheels if present)",
    "endpoint": "ModelScope endpoint (default www.modelscope.cn)",
    "hf_endpoint": "Hugging Face endpoint (default https://hf-mirror.com)",
    "health_timeout": "seconds to wait for /health (default: the tier's start period + 120)",
}
_done_batches: set[str] = set()


def _options(tier, model, data_dir, port, bind, runner, project, wheels, endpoint, hf_endpoint,
             health_timeout, sets=(), force=False) -> Options:
    from rentstack.config.vllm_args import parse_set

    try:
        parsed = dict(parse_set(item) for item in (sets or ()))
    except RentstackError as exc:
        raise Exit(f"error: {exc}", code=2) from None
    return Options(tier=tier, model=model or None, data_dir=data_dir, port=int(port), bind=bind,
                   runner=runner or None, project=project, wheels=wheels or None, endpoint=endpoint or None,
                   hf_endpoint=hf_endpoint or None, sets=parsed, force=force,
                   health_timeout=int(health_timeout) if health_timeout else None)


def _auth(password: bool, key: str | None) -> Auth:
    secret = os.environ.get(PASSWORD_ENV)
    if secret is None and password:
        secret = getpass.getpass("SSH password: ")
    if key and not os.path.isfile(os.path.expanduser(key)):
        raise Exit(f"error: key file {key} does not exist", code=2)
    return Auth(password=secret, key_filename=os.path.expanduser(key) if key else None)


def _hosts(c, host: str | None) -> list[HostSpec] | None:
    """The hosts of this invocation, or None when this call is a repeat under -H.

    Fabric calls a task once per -H host, in turn. The first call takes the whole -H list
    and runs every host in parallel; the later calls for the same list do nothing.
    """
    try:
        if host:
            return parse_hosts(host)
        batch = hosts_from_argv(sys.argv[1:])
        if batch:
            if batch in _done_batches:
                return None
            _done_batches.add(batch)
            return parse_hosts(batch)
    except RentstackError as exc:
        raise Exit(f"error: {exc}", code=2) from None
    raise Exit("error: no host: pass --host root@HOST:PORT (or the console's 'ssh -p PORT root@HOST'), "
               "or fab -H h1,h2 TASK", code=2)


def _one(specs: list[HostSpec], task_name: str) -> HostSpec:
    if len(specs) != 1:
        raise Exit(f"error: `fab {task_name}` works on one host at a time; got {len(specs)}", code=2)
    return specs[0]


def _guard(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except RentstackError as exc:
        raise Exit(f"error: {exc}", code=1) from None


def _run(c, action, host, password, key, dry_run, auto_fix, opts) -> None:
    specs = _hosts(c, host)
    if specs is None:
        return
    reports = _guard(tasks.run_hosts, action, specs, _auth(password, key), opts, dry_run=dry_run, auto_fix=auto_fix)
    message = tasks.failures(reports)
    if message:
        raise Exit(f"error: {message}", code=1)


_HELP = {**_COMMON_HELP, "dry_run": "print the steps and what each would do; change nothing",
         "auto_fix": "on a failed start, apply the doctor's first fix and retry, at most N times",
         "set": "vLLM setting KEY=VALUE (repeatable)", "force": "start even when the planner predicts failure",
         "tail": "lines to show (default 200)", "local_port": "port on this machine (default: the same)",
         "seconds": "close after N seconds (default: until Ctrl-C)"}


def rtask(fn):
    """@task with --help text for each of the function's own flags, and no short flags
    (-h, -H and friends belong to fab itself)."""
    names = inspect.signature(fn).parameters
    return task(auto_shortflags=False, help={k: v for k, v in _HELP.items() if k in names},
                iterable=["set"] if "set" in names else None)(fn)


@rtask
def provision(c, host=None, password=False, key=None, tier="cpu", model=None, data_dir="/root/autodl-tmp",
              port=8000, bind="127.0.0.1", runner=None, project="rentstack", wheels=None, endpoint=None,
              hf_endpoint="https://hf-mirror.com", health_timeout=0, set=None, force=False, dry_run=False,
              auto_fix=0):
    """Full flow: data disk, caches, weights, runtime, render, server, health, smoke, tunnel line."""
    opts = _options(tier, model, data_dir, port, bind, runner, project, wheels, endpoint, hf_endpoint,
                    health_timeout, set, force)
    _run(c, "provision", host, password, key, dry_run, int(auto_fix), opts)


@rtask
def download(c, host=None, password=False, key=None, tier="cpu", model=None, data_dir="/root/autodl-tmp",
             endpoint=None, hf_endpoint="https://hf-mirror.com", dry_run=False):
    """Weights only, onto the data disk (works on a host booted without GPU)."""
    opts = _options(tier, model, data_dir, 8000, "127.0.0.1", None, "rentstack", None, endpoint, hf_endpoint, 0)
    _run(c, "download", host, password, key, dry_run, 0, opts)


@rtask
def up(c, host=None, password=False, key=None, tier="cpu", model=None, data_dir="/root/autodl-tmp", port=8000,
       bind="127.0.0.1", runner=None, project="rentstack", wheels=None, health_timeout=0, set=None, force=False,
       dry_run=False, auto_fix=0):
    """Start (or keep) the server with the weights already on the host; health, smoke, tunnel line."""
    opts = _options(tier, model, data_dir, port, bind, runner, project, wheels, None, None, health_timeout, set, force)
    _run(c, "up", host, password, key, dry_run, int(auto_fix), opts)


@rtask
def down(c, host=None, password=False, key=None, tier="cpu", data_dir="/root/autodl-tmp", runner=None,
         project="rentstack"):
    """Stop the tier's server on the host (weights and venv stay)."""
    specs = _hosts(c, host)
    if specs is None:
        return
    opts = _options(tier, None, data_dir, 8000, "127.0.0.1", runner, project, None, None, None, 0)
    for spec in specs:
        print(_guard(tasks.down, spec, _auth(password, key), opts))


@rtask
def status(c, host=None, password=False, key=None, tier="cpu", data_dir="/root/autodl-tmp", port=8000,
           runner=None, project="rentstack"):
    """Is the server running and healthy; which steps are finished."""
    specs = _hosts(c, host)
    if specs is None:
        return
    opts = _options(tier, None, data_dir, port, "127.0.0.1", runner, project, None, None, None, 0)
    bad = 0
    for spec in specs:
        healthy, text = _guard(tasks.status, spec, _auth(password, key), opts)
        print(text)
        bad += not healthy
    if bad:
        raise Exit(code=3)


@rtask
def logs(c, host=None, password=False, key=None, tier="cpu", data_dir="/root/autodl-tmp", runner=None,
         project="rentstack", tail=200):
    """Print the server's log from the host."""
    specs = _hosts(c, host)
    if specs is None:
        return
    spec = _one(specs, "logs")
    opts = _options(tier, None, data_dir, 8000, "127.0.0.1", runner, project, None, None, None, 0)
    sys.stdout.write(_guard(tasks.logs, spec, _auth(password, key), opts, int(tail)))


@rtask
def tunnel(c, host=None, password=False, key=None, port=8000, local_port=0, seconds=0):
    """Forward a local port to the server on the host and print the equivalent ssh -CNg -L line."""
    specs = _hosts(c, host)
    if specs is None:
        return
    spec = _one(specs, "tunnel")
    opts = Options(port=int(port))
    _guard(tasks.tunnel, spec, _auth(password, key), opts, int(local_port) or int(port), float(seconds) or None)


@rtask
def doctor(c, host=None, password=False, key=None, tier="cpu", data_dir="/root/autodl-tmp", runner=None,
           project="rentstack"):
    """Read the server's log on the host and explain why it fails, with fixes."""
    specs = _hosts(c, host)
    if specs is None:
        return
    opts = _options(tier, None, data_dir, 8000, "127.0.0.1", runner, project, None, None, None, 0)
    print(_guard(tasks.doctor, _one(specs, "doctor"), _auth(password, key), opts))
