"""rentstack on rented GPU hosts, over SSH (Fabric). Thin: each task names the options it
takes and calls rentstack.remote; the logic, plans and parsers live in the package.

  fab provision --host "ssh -p 12345 root@region-1.autodl.com" --tier cpu
  fab provision --host root@h1:22,root@h2:22 --tier 4090x1 --model qwen3-14b-awq   (parallel)
  fab provision --host root@HOST:PORT --dry-run        (print the plan, change nothing)
  fab provision --host root@HOST:PORT --profiles webui,monitoring   (Docker hosts: chat UI, Prometheus)
  fab download / up / down / status / logs / tunnel / doctor / top --host ...
  fab provision --host h1,h2 --replicas, then fab router --host h1,h2 [--on h1]   (one endpoint, router here or on h1)
  fab -H h1,h2 TASK runs the task on each host in turn (Fabric's way; stops at the first failure).

Password: $RENTSTACK_SSH_PASSWORD, else a prompt with --password; never a flag value.

Exit codes: 0 done (server up, weights ready, or the plan printed); 1 a host failed;
2 bad input, found before connecting; 3 `status`: not healthy; 4 `provision` stopped
on purpose before the server was up (e.g. a GPU tier on a host booted without its GPU:
the weights are there, boot with the GPU and run `fab up`).
"""

from __future__ import annotations

import getpass
import inspect
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from fabric import Task, task
from invoke.exceptions import Exit, ParseError
from invoke.parser import Argument, Parser

from rentstack.errors import RentstackError
from rentstack.remote import tasks
from rentstack.remote.hosts import PASSWORD_ENV, Auth, HostSpec, parse_hosts
from rentstack.remote.options import MAX_SECONDS, InputError, Options, check_int
from rentstack.remote.provision import resolve_inputs

EXIT_FAILED, EXIT_INPUT, EXIT_UNHEALTHY, EXIT_STOPPED = 1, 2, 3, 4

_HELP = {
    **Options.flag_help(),
    "host": "USER@HOST:PORT, several separated by commas (run in parallel), or AutoDL's 'ssh -p PORT root@HOST' line",
    "password": f"log in with a password: ${PASSWORD_ENV} or a prompt (never on the command line)",
    "key": "private key file to log in with",
    "dry_run": "print the steps and what each would do; change nothing",
    "auto_fix": "on a failed start, apply the doctor's first fix and retry, at most N times (0-5)",
    "set": "vLLM setting KEY=VALUE (repeatable)",
    "tail": "lines to show (1-100000, default 200)",
    "local_port": "port on this machine (default 0: the same as --port; for `router --on`, as --router-port)",
    "head_ip": "the head's private IP address; the other hosts must reach it directly",
    "seconds": f"close after N seconds (default 0: until Ctrl-C; at most {MAX_SECONDS})",
    "concurrency": "concurrency levels, comma-separated (default 1,2,4,8)",
    "input_len": "prompt tokens per request (1-131072, default 128)",
    "output_len": "generated tokens per request (1-32768, default 32)",
    "out": "output directory (default .rentstack/hosts/<host>/bench/<tier>-<time>)",
    "interval": "seconds between reads of /metrics (1-3600, default 2)",
    "once": "print one frame (two reads --interval apart) and exit",
    "replicas": "the same deployment on every --host, with one shared API key (then `fab router`)",
    "policy": "router policy: cache_aware (prefix affinity, default), round_robin, power_of_two, consistent_hash",
    "on": "run the router on this one of --host, as a supervised service behind its own front door",
    "router_port": "with --on: the router's front door port on that host (default: --port + 1)",
    "peer_ssh": "with --on: how that host reaches the others' SSH, USER@HOST:PORT in --host order without it "
                "(default: their --host addresses; give private addresses to keep the forwards on the provider's network)",
    "stop": "with --on: stop the router there and take its key off the other hosts",
}


_BOUNDS = {**Options.flag_bounds(), "auto_fix": (0, 5), "tail": (1, 100_000), "local_port": (0, 65535),
           "router_port": (0, 65535),
           "seconds": (0, MAX_SECONDS), "interval": (1, 3600),
           "input_len": (1, 131072), "output_len": (1, 32768)}
"""Every integer flag's range: Options' fields, then the tasks' own flags."""


class _Checked(Argument):
    """A flag whose value invoke casts (int flags): a bad value is one line and exit 2,
    not a ValueError traceback."""

    def set_value(self, value, cast=True):  # noqa: ANN001 - invoke's signature
        try:
            super().set_value(value, cast)
        except ValueError:
            lo, hi = _BOUNDS.get(self.name, (0, None))
            span = f"from {lo} to {hi}" if hi is not None else "(see fab --help TASK)"
            raise Exit(f"error: --{self.name.replace('_', '-')} {value!r} is not a whole number: give one {span}",
                       code=EXIT_INPUT) from None


def _parse_errors_are_bad_input() -> None:
    """An unknown flag or task is bad input: one line with where to look, exit 2. invoke prints
    "No idea what '--bogus' is!" and exits 1, and has no hook for it, so its parser's one entry
    point is wrapped here (only ever loaded by the fab process)."""
    original = Parser.parse_argv
    if getattr(original, "rentstack", False):
        return

    @wraps(original)
    def parse_argv(self, argv):  # noqa: ANN001, ANN202 - invoke's signature
        try:
            return original(self, argv)
        except ParseError as exc:
            raise Exit(f"error: {str(exc).rstrip('!')}: see `fab --list` for the tasks and `fab --help TASK` "
                       "for a task's flags", code=EXIT_INPUT) from None

    parse_argv.rentstack = True
    Parser.parse_argv = parse_argv


_parse_errors_are_bad_input()


class _RTask(Task):
    def get_arguments(self, ignore_unknown_help=None):  # noqa: ANN001
        args = super().get_arguments(ignore_unknown_help)
        for arg in args:
            arg.__class__ = _Checked
        return args


@dataclass(frozen=True)
class Call:
    """What every host task gets: the hosts, how to log in, and the validated options."""

    hosts: list[HostSpec]
    auth: Auth
    opts: Options


def host_task(*option_names: str) -> Callable:
    """@task for ``fn(c, call, **own_flags)``: adds --host/--password/--key and the named
    Options fields as flags (help from Options), validates everything before connecting
    (exit 2), and turns a RentstackError into one line, exit 1."""

    def deco(fn: Callable) -> Task:
        own = list(inspect.signature(fn).parameters.values())[2:]
        P = inspect.Parameter
        params = [P("c", P.POSITIONAL_OR_KEYWORD), P("host", P.POSITIONAL_OR_KEYWORD, default=None),
                  P("password", P.POSITIONAL_OR_KEYWORD, default=False),
                  P("key", P.POSITIONAL_OR_KEYWORD, default=None)]
        for name in option_names:
            flag = "set" if name == "sets" else name
            # --set repeats; --profiles is one comma-separated word that Options splits and checks
            default = {"sets": None, "profiles": ""}.get(name, Options.flag_default(name))
            params.append(P(flag, P.POSITIONAL_OR_KEYWORD, default=default))
        params += own

        @wraps(fn)
        def body(c, host=None, password=False, key=None, **flags):  # noqa: ANN001
            try:
                opts = _options({n: flags.pop("set" if n == "sets" else n) for n in option_names})
                if "tier" in option_names:
                    resolve_inputs(opts)    # a typo in --tier/--model: one line, before connecting
                call = Call(_hosts(c, host), _auth(password, key), opts)
                return fn(c, call, **flags)
            except InputError as exc:
                raise Exit(f"error: {exc}", code=EXIT_INPUT) from None
            except RentstackError as exc:
                raise Exit(f"error: {exc}", code=exc.exit_code if exc.exit_code != 2 else EXIT_FAILED) from None

        body.__signature__ = inspect.Signature(params)
        names = {p.name for p in params}
        return task(klass=_RTask, auto_shortflags=False, help={k: v for k, v in _HELP.items() if k in names},
                    iterable=["set"] if "set" in names else None)(body)

    return deco


def _options(values: dict[str, object]) -> Options:
    from rentstack.config.vllm_args import parse_set

    if "sets" in values:
        try:
            values["sets"] = dict(parse_set(item) for item in (values["sets"] or ()))
        except RentstackError as exc:
            raise InputError(str(exc)) from None
    for name in ("model", "runner", "wheels", "endpoint", "hf_endpoint", "vllm_version"):
        if name in values and values[name] == "":
            values[name] = None
    return Options(**values)


def _auth(password: bool, key: str | None) -> Auth:
    if key and not os.path.isfile(os.path.expanduser(key)):
        raise InputError(f"--key {key!r} does not exist: give the private key file's path")
    secret = os.environ.get(PASSWORD_ENV)
    if secret is None and password:
        secret = getpass.getpass("SSH password: ")
    return Auth(password=secret, key_filename=os.path.expanduser(key) if key else None)


def _hosts(c, host: str | None) -> list[HostSpec]:  # noqa: ANN001
    """--host (one, or several at once), else the one host Fabric's -H hands this call."""
    try:
        if host:
            return parse_hosts(host)
        if getattr(c, "host", None):
            if c.host.startswith("["):      # Fabric leaves '[::1]:2222' whole; our parser reads it
                return parse_hosts(f"{c.user}@{c.host}")
            address = f"[{c.host}]" if ":" in c.host else c.host
            return parse_hosts(f"{c.user}@{address}:{c.port}")
    except RentstackError as exc:
        raise InputError(str(exc)) from None
    raise InputError("no host: pass --host root@HOST:PORT (or the console's 'ssh -p PORT root@HOST'), "
                     "several as h1,h2")


def _one(call: Call, task_name: str) -> HostSpec:
    if len(call.hosts) != 1:
        raise InputError(f"`fab {task_name}` works on one host at a time; got {len(call.hosts)}")
    return call.hosts[0]


def _run(action: str, call: Call, dry_run: bool, auto_fix: object) -> None:
    fixes = check_int("auto_fix", auto_fix, *_BOUNDS["auto_fix"])
    reports = tasks.run_hosts(action, call.hosts, call.auth, call.opts, dry_run=dry_run, auto_fix=fixes)
    message = tasks.failures(reports)
    if message:
        raise Exit(f"error: {message}", code=EXIT_FAILED)
    if any(r.stopped for r in reports):
        raise Exit(code=EXIT_STOPPED)


_SERVE = ("tier", "model", "data_dir", "port", "bind", "runner", "project", "wheels", "health_timeout", "sets",
          "force", "plain_http", "vllm_version", "idle_stop", "idle_action", "profiles")


@host_task(*_SERVE, "endpoint", "hf_endpoint")
def provision(c, call: Call, dry_run=False, auto_fix=0, replicas=False):
    """Full flow: data disk, caches, weights, runtime, render, server, health, smoke, tunnel line.

    Exits 0 with the server up, 1 when a host failed, 2 on bad input (nothing touched),
    4 when it stopped on purpose before serving (GPU tier, host booted without its GPU).
    With --replicas, every host gets the same deployment and one shared key; serve them
    behind one endpoint with `fab router`."""
    if replicas:
        call = _as_replicas(call)
    _run("provision", call, dry_run, auto_fix)
    if replicas and not dry_run:
        hosts = ",".join(s.label for s in call.hosts)
        print(f"replicas ready; one endpoint for all of them: fab router --host {shlex.quote(hosts)} "
              f"--tier {call.opts.tier}")


def _as_replicas(call: Call) -> Call:
    from dataclasses import replace

    from rentstack.remote.replicas import shared_key_file

    if len(call.hosts) < 2:
        raise InputError(f"--replicas needs at least 2 hosts, got {len(call.hosts)}: give them as --host h1,h2")
    return replace(call, opts=replace(call.opts, key_file=shared_key_file(call.opts)))


@host_task("tier", "model", "port", "data_dir", "bind", "wheels", "plain_http")
def router(c, call: Call, local_port=0, policy="cache_aware", seconds=0, on="", router_port=0, peer_ssh="",
           stop=False, dry_run=False):
    """Replicas behind one endpoint: vLLM's router here, or with --on on one of the hosts.

    The hosts were provisioned with `fab provision --host h1,h2 --replicas`. The router
    checks every replica's /health, takes a failed one out and back in when it answers,
    and forwards the client's key to the replicas' front doors.
    Here (default): on 127.0.0.1 over SSH tunnels to each host, until Ctrl-C.
    --on h1: a supervised service on h1 (its own front door asks for the key; the other
    replicas are reached over SSH forwards that can do nothing else); --stop removes it."""
    from rentstack.config import resolve_model, load_tier
    from rentstack.scale.router import POLICIES

    local = check_int("local_port", local_port, *_BOUNDS["local_port"])
    wait = check_int("seconds", seconds, *_BOUNDS["seconds"])
    own_port = check_int("router_port", router_port, *_BOUNDS["router_port"])
    if policy not in POLICIES:
        raise InputError(f"--policy {policy!r} is unknown: use one of {', '.join(POLICIES)}")
    if on:
        if wait:
            raise InputError("--seconds is for the router here; with --on it runs on the host until --stop")
    else:
        for flag, given in (("--router-port", own_port), ("--peer-ssh", peer_ssh), ("--stop", stop),
                            ("--dry-run", dry_run), ("--wheels", call.opts.wheels),
                            ("--bind", call.opts.bind != "127.0.0.1"), ("--plain-http", call.opts.plain_http)):
            if given:
                raise InputError(f"{flag} is for a router on one of the hosts: add --on HOST (one of --host)")
    model = resolve_model(call.opts.model or load_tier(call.opts.tier).model).name
    if on:
        from rentstack.remote import router_host

        # Every check of the input before _as_replicas writes the set's key file: a refused
        # input leaves nothing behind.
        req = router_host.resolve(call.hosts, on, call.opts, router_port=own_port, peer_ssh=peer_ssh, policy=policy)
    call = _as_replicas(call)
    if on:
        router_host.run(call.hosts, call.auth, call.opts, req, key_file=call.opts.key_file, model_name=model,
                        dry_run=dry_run, stop=stop, local_port=local)
        return
    from rentstack.remote.replicas import serve_router

    serve_router(call.hosts, call.auth, call.opts, port=local or call.opts.port, policy=policy,
                 seconds=float(wait) or None, model_name=model)


@host_task("tier", "model", "data_dir", "endpoint", "hf_endpoint")
def download(c, call: Call, dry_run=False):
    """Weights only, onto the data disk (works on a host booted without GPU)."""
    _run("download", call, dry_run, 0)


@host_task(*_SERVE)
def up(c, call: Call, dry_run=False, auto_fix=0):
    """Start (or keep) the server with the weights already on the host; health, smoke, tunnel line."""
    _run("up", call, dry_run, auto_fix)


@host_task("tier", "data_dir", "runner", "project")
def down(c, call: Call):
    """Stop the tier's server on the host (weights and venv stay)."""
    for spec in call.hosts:
        print(tasks.down(spec, call.auth, call.opts))


@host_task("tier", "data_dir", "port", "runner", "project")
def status(c, call: Call):
    """Is the server running and healthy; which steps are finished (exit 3 when not healthy)."""
    bad = 0
    for spec in call.hosts:
        healthy, text = tasks.status(spec, call.auth, call.opts)
        print(text)
        bad += not healthy
    if bad:
        raise Exit(code=EXIT_UNHEALTHY)


@host_task("tier", "data_dir", "runner", "project")
def logs(c, call: Call, tail=200):
    """Print the server's log from the host."""
    lines = check_int("tail", tail, *_BOUNDS["tail"])
    sys.stdout.write(tasks.logs(_one(call, "logs"), call.auth, call.opts, lines))


@host_task("port")
def tunnel(c, call: Call, local_port=0, seconds=0):
    """Forward a local port to the server on the host and print the equivalent ssh -CNg -L line."""
    local = check_int("local_port", local_port, *_BOUNDS["local_port"]) or call.opts.port
    wait = check_int("seconds", seconds, *_BOUNDS["seconds"])
    tasks.tunnel(_one(call, "tunnel"), call.auth, call.opts, local, float(wait) or None)


@host_task("tier", "data_dir")
def ray(c, call: Call, head_ip=""):
    """Form the Ray cluster of a tier that spans hosts (head first) and check every host and GPU.

    Installs the pinned Ray where missing, shares one auth token (0600), keeps Ray's ports
    on the private interface, and fails in one line, with Ray stopped everywhere, when a
    host does not join or GPUs are missing. Then prints the vLLM command for the head."""
    from rentstack.remote.cluster import form_for_tier

    if not head_ip:
        raise InputError("--head-ip is required: the head's private address (`ip -4 addr` on the head)")
    form_for_tier(call.hosts, call.auth, call.opts, head_ip)


@host_task("tier", "data_dir", "runner", "project")
def doctor(c, call: Call):
    """Read the server's log on the host and explain why it fails, with fixes."""
    print(tasks.doctor(_one(call, "doctor"), call.auth, call.opts))


@host_task("tier", "data_dir", "port")
def top(c, call: Call, interval=2, once=False, local_port=0):
    """Live view of the server on the host through a tunnel: KV cache, requests, tokens/s, TTFT/ITL, GPUs."""
    from rentstack.top.over_ssh import watch

    every = check_int("interval", interval, *_BOUNDS["interval"])
    local = check_int("local_port", local_port, *_BOUNDS["local_port"]) or call.opts.port
    watch(_one(call, "top"), call.auth, call.opts, interval=float(every), once=once, local_port=local)


@host_task("tier", "data_dir", "port")
def bench(c, call: Call, concurrency="1,2,4,8", input_len=128, output_len=32, out=""):
    """Load-test the host's server through an SSH tunnel: vLLM's benchmark per concurrency level (table, JSON, PNG)."""
    from pathlib import Path

    from rentstack.bench.remote import bench_host
    from rentstack.bench.sweep import BenchSettings, parse_levels

    try:
        settings = BenchSettings(concurrency=parse_levels(str(concurrency)),
                                 input_len=check_int("input_len", input_len, *_BOUNDS["input_len"]),
                                 output_len=check_int("output_len", output_len, *_BOUNDS["output_len"]))
    except ValueError as exc:
        raise Exit(f"error: --concurrency: {exc}", code=EXIT_INPUT) from None
    print(bench_host(_one(call, "bench"), call.auth, call.opts, settings, Path(out) if out else None))
