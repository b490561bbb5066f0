"""The parts around the server over fab (--profiles webui,monitoring): the options, the plan on a
Docker host and on a host without Docker, the image build on the host, the uploaded files and
the chat UI's admin file, against fake hosts that answer from captured facts and record writes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from rentstack.remote.hosts import HostSpec
from rentstack.remote.options import InputError, Options
from rentstack.remote.steps import PLANS, RunReport, run_steps
from rentstack.remote.steps import render as render_step
from rentstack.remote.steps import runtime
from rentstack.remote.steps.context import connect
from rentstack.render import around
from rentstack.versions import OPEN_WEBUI_IMAGE, OPEN_WEBUI_VERSION, PROMETHEUS_IMAGE

from captured_host import CapturedHost

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "facts"
DOCKER_VM = (GOLDEN / "debian12-vm-with-docker.gather.txt").read_text()
CONTAINER = (GOLDEN / "debian12-container-no-docker.gather.txt").read_text()
DATA = "/tmp/rsfake/root/autodl-tmp"
DEPLOY = f"{DATA}/.rentstack/deploy"
GIB = 1024**3


class FakeHost(CapturedHost):
    """Answers the facts from a capture; ``images`` are the images its Docker holds, ``files``
    the files on it. Writes and uploads are recorded (the files appear), commands too."""

    def __init__(self, gather: str = DOCKER_VM, data_dir: str = DATA, images: set[str] = frozenset(),
                 dry: bool = False) -> None:
        super().__init__(gather, data_dir, 50 * GIB, 49 * GIB, HostSpec("vm.example", "root", 22))
        self.dry = dry
        self.images = set(images)
        self.files: dict[str, tuple[str, int]] = {}
        self.uploads: list[tuple[str, str]] = []

    def answer(self, command: str) -> tuple[int, str] | None:
        known = super().answer(command)
        if known:
            return known
        if command.startswith("if docker image inspect"):
            names = re.findall(r"docker image inspect (\S+)", command)
            return 0, "".join(f"{'present' if n in self.images else 'absent'} {n}\n" for n in names)
        if command.startswith("docker image inspect"):
            return (0 if shlex.split(command)[3] in self.images else 1), ""
        if command.startswith("test -f "):
            return (0 if shlex.split(command)[2] in self.files else 1), ""
        if command.startswith("docker build"):
            self.images.add(shlex.split(command)[4])
            return 0, "sha256:feedface\n"
        return (0, "") if command.startswith("mkdir -p") else None

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        assert not self.dry, f"a dry run wrote {path}"
        self.files[path] = (text, mode)

    def put_file(self, local: str, path: str, mode: int = 0o644) -> None:
        assert not self.dry, f"a dry run uploaded {local}"
        self.uploads.append((local, path))
        self.files[path] = ("", mode)

    def read(self, path: str) -> str | None:
        return self.files.get(path, (None,))[0]


def _opts(**kw: object) -> Options:
    return Options(**{"model": "modelscope:Qwen/Qwen3-0.6B", "data_dir": DATA, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("value, line", [
    ("grafana", "--profiles 'grafana': unknown profile 'grafana'"),
    ("webiu", "(did you mean 'webui'?)"),
    ("idle-stop", "give --idle-stop WINDOW"),
])
def test_bad_profiles_are_input_errors(value: str, line: str) -> None:
    with pytest.raises(InputError) as exc:
        Options(profiles=value)
    assert line in str(exc.value)


def test_profiles_are_parsed_from_the_flag_and_refused_on_native() -> None:
    assert Options(profiles="webui,monitoring,webui").profiles == ("webui", "monitoring")
    assert Options(profiles="monitoring webui").profiles == ("monitoring", "webui")
    assert Options(profiles="").profiles == ()
    with pytest.raises(InputError, match="--profiles 'webui': webui needs Docker.*fab tunnel"):
        Options(profiles="webui", runner="native")


def test_a_host_without_docker_refuses_the_parts_before_any_step() -> None:
    host = FakeHost(gather=CONTAINER, data_dir="/root/autodl-tmp")
    ctx, _ = connect(host, _opts(data_dir="/root/autodl-tmp", profiles=("webui", "monitoring")))
    assert ctx.runner == "native"
    for plan in ("provision", "up"):
        with pytest.raises(Exception, match="webui and monitoring need Docker.*Use a host with Docker"):
            PLANS[plan](ctx)
    # without parts the same host plans as before
    ctx, _ = connect(host, _opts(data_dir="/root/autodl-tmp"))
    assert "runtime: parts" not in [s.name for s in PLANS["provision"](ctx)]


def test_dry_run_on_a_docker_host_plans_the_parts_images_and_writes_nothing() -> None:
    host = FakeHost(images={"rentstack/vllm-cpu:0.32.0", "rentstack/front:nginx-1.22.1"}, dry=True)
    ctx, io = connect(host, _opts(profiles=("webui", "monitoring")))
    report = run_steps(PLANS["provision"](ctx), RunReport("vm"), io, dry_run=True)
    got = {r.name: (r.status, r.detail) for r in report.results}
    assert report.ok, report.text()
    names = [r.name for r in report.results]
    assert names.index("runtime: image") + 1 == names.index("runtime: parts") < names.index("render")
    assert got["runtime: parts"] == ("would run", f"make sure {OPEN_WEBUI_IMAGE} (Open WebUI from PyPI, CPU torch), "
                                                 f"{PROMETHEUS_IMAGE} (Debian's prometheus package) are on the host: "
                                                 "built there from the Dockerfiles `make up` uses")
    assert got["render"][0] == "would run" and got["server"][0] == "would run"


def test_parts_images_present_on_the_host_are_skipped_by_a_fact() -> None:
    host = FakeHost(images={PROMETHEUS_IMAGE})
    ctx, io = connect(host, _opts(profiles=("monitoring",)))
    (step,) = runtime.parts(ctx)
    assert step.check(io.view()) == f"{PROMETHEUS_IMAGE} present — skipped"
    assert runtime.parts(connect(host, _opts())[0]) == []


def test_prometheus_is_built_on_the_host_from_the_same_dockerfile_and_context() -> None:
    host = FakeHost()
    ctx, io = connect(host, _opts(profiles=("monitoring",)))
    (step,) = runtime.parts(ctx)
    assert step.check(io.view()) is None
    assert step.act(io) == f"built {PROMETHEUS_IMAGE}"
    repo = runtime.REPO
    assert host.files[f"{DEPLOY}/scripts/prometheus.Dockerfile"][0] == (repo / "scripts/prometheus.Dockerfile").read_text()
    assert host.files[f"{DEPLOY}/scripts/prometheus/entrypoint.sh"][0] == \
        (repo / "scripts/prometheus/entrypoint.sh").read_text()
    build = [c for c in host.commands if c.startswith("docker build")]
    assert build == [f"docker build -q -t {PROMETHEUS_IMAGE} --build-arg BASE=debian:bookworm-slim "
                     f"-f {DEPLOY}/scripts/prometheus.Dockerfile {DEPLOY}/scripts/prometheus"]
    # The Debian slim base lacks the healthcheck's curl: the Dockerfile installs it.
    assert "prometheus curl" in (repo / "scripts/prometheus.Dockerfile").read_text()
    assert step.check(io.view()) == f"{PROMETHEUS_IMAGE} present — skipped"


def test_webui_is_built_on_the_host_from_this_machines_wheelhouse(tmp_path, monkeypatch) -> None:
    from rentstack.local import profile_images

    wheels = tmp_path / "webui-wheelhouse"
    wheels.mkdir()
    for name in ("constraints.txt", "open_webui-0.12.4-py3-none-any.whl", "torch-2.13.0+cpu-cp311-linux.whl"):
        (wheels / name).write_text(name)
    filled: list[bool] = []
    monkeypatch.setattr(profile_images, "WEBUI_WHEELHOUSE", wheels)
    monkeypatch.setattr(profile_images, "fill_webui_wheelhouse", lambda: filled.append(True))
    host = FakeHost(images={PROMETHEUS_IMAGE})
    ctx, io = connect(host, _opts(profiles=("webui", "monitoring")))
    (step,) = runtime.parts(ctx)
    assert step.act(io) == f"{PROMETHEUS_IMAGE} present; built {OPEN_WEBUI_IMAGE}"
    assert filled == [True]
    cache = f"{DATA}/.cache/webui-wheelhouse"
    assert sorted(p for _, p in host.uploads) == sorted(f"{cache}/{p.name}" for p in wheels.iterdir())
    assert [c for c in host.commands if c.startswith("docker build")] == [
        f"docker build -q -t {OPEN_WEBUI_IMAGE} --build-arg BASE=debian:bookworm-slim "
        f"--build-arg OPEN_WEBUI=open-webui=={OPEN_WEBUI_VERSION} -f {DEPLOY}/scripts/open-webui.Dockerfile {cache}"]
    dockerfile = host.files[f"{DEPLOY}/scripts/open-webui.Dockerfile"][0]
    assert "python3 python3-venv ca-certificates curl" in dockerfile     # what debian:bookworm-slim lacks


def test_local_builds_use_the_same_build_command(monkeypatch) -> None:
    from rentstack.local import image, profile_images

    ran: list[list[str]] = []
    # The parts' builds go through rentstack.local.image's image_present/docker_build, like the CPU image's.
    monkeypatch.setattr(image, "image_exists", lambda tag: tag == "rentstack/debian-base:bookworm")
    monkeypatch.setattr(image, "run", lambda argv, **kw: ran.append(argv))
    profile_images.build_prometheus_image()
    repo = str(profile_images.REPO)
    assert ran == [["docker", "build", "-q", "-t", PROMETHEUS_IMAGE, "--build-arg", "BASE=rentstack/debian-base:bookworm",
                    "-f", f"{repo}/scripts/prometheus.Dockerfile", f"{repo}/scripts/prometheus"]]


def test_render_uploads_what_the_parts_mount_and_names_them_in_compose_env(tmp_path) -> None:
    host = FakeHost()
    ctx, _ = connect(host, _opts(profiles=("monitoring",), idle_stop="30m", local_state=tmp_path))
    files = render_step.files(ctx, "rs-" + "k" * 43, "mt-" + "t" * 43)
    repo = runtime.REPO
    assert files[f"{DEPLOY}/scripts/prometheus/prometheus.yml"] == (
        (repo / around.PROMETHEUS_CONFIG).read_text(), 0o644)
    assert f"{DEPLOY}/{around.WATCHDOG_IN_PROJECT}" in files
    env = files[f"{DEPLOY}/cpu/compose.env"][0]
    assert "COMPOSE_PROFILES=cpu,monitoring,idle-stop" in env
    assert f"RENTSTACK_PROMETHEUS_DIR={DEPLOY}/prometheus" in env
    assert not any(p.endswith("admin.env") for p in files)
    # without parts: neither file, and the profiles line names the tier alone
    plain = render_step.files(connect(host, _opts(local_state=tmp_path))[0], "rs-" + "k" * 43, "mt-" + "t" * 43)
    assert not any("scripts/prometheus" in p or "idle" in p for p in plain)
    assert "COMPOSE_PROFILES=cpu\n" in plain[f"{DEPLOY}/cpu/compose.env"][0]


def test_render_makes_the_webui_admin_file_once_0600_and_never_on_a_command_line(tmp_path) -> None:
    host = FakeHost()
    ctx, io = connect(host, _opts(profiles=("webui",), local_state=tmp_path))
    step = render_step.step(ctx)
    detail = step.act(io)
    admin = f"{DEPLOY}/webui/admin.env"
    text, mode = host.files[admin]
    assert mode == 0o600 and "made webui/admin.env (0600)" in detail
    password = next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith("WEBUI_ADMIN_PASSWORD="))
    assert len(password) >= 20
    assert not any(password in c for c in host.commands) and password not in detail
    assert any(c.startswith("mkdir -p") and f"{DEPLOY}/webui/data" in c and "chmod 700" in c for c in host.commands)
    # a re-run keeps the password: the UI's users keep their login
    assert "admin.env" not in step.act(io)
    assert host.files[admin] == (text, 0o600)


def test_server_step_passes_the_parts_to_compose_and_down_stops_them() -> None:
    from rentstack.remote import runners

    host = FakeHost()
    ctx, _ = connect(host, _opts(profiles=("webui", "monitoring")))
    parts = around.active_parts(ctx.opts.profiles, ctx.opts.idle_stop)
    up = runners.compose_up(ctx.layout, ctx.tier, ctx.opts.project, 300, parts)
    assert "--profile cpu --profile webui --profile monitoring up -d --wait" in up
    down = runners.compose_down(ctx.layout, ctx.tier, ctx.opts.project)
    assert "--profile webui --profile monitoring --profile idle-stop down --remove-orphans" in down
    state = runners.compose_parts_state(ctx.layout, ctx.tier, ctx.opts.project)
    assert state.endswith("ps -a --format '{{.Service}} {{.State}} {{.Status}}' webui prometheus idle-stop")


def test_disk_check_counts_the_parts_images_still_to_build() -> None:
    """Open WebUI's image (3 GB) and its uploaded wheelhouse land on the host too: the space
    check counts the parts that are missing, and only those."""
    base = {"rentstack/vllm-cpu:0.32.0", "rentstack/front:nginx-1.22.1"}
    for images, parts in ((base, 3.6 + 0.5), (base | {PROMETHEUS_IMAGE}, 3.6),
                          (base | {PROMETHEUS_IMAGE, OPEN_WEBUI_IMAGE}, 0.0)):
        host = FakeHost(images=images, dry=True)
        ctx, io = connect(host, _opts(profiles=("webui", "monitoring")))
        report = run_steps(PLANS["provision"](ctx), RunReport("vm"), io, dry_run=True)
        detail = {r.name: r.detail for r in report.results}["disk: space"]
        assert (f" + parts {parts:.2f} + " in detail) == bool(parts), detail
    # without --profiles nothing is added
    ctx, io = connect(FakeHost(images=base, dry=True), _opts())
    report = run_steps(PLANS["provision"](ctx), RunReport("vm"), io, dry_run=True)
    assert "parts" not in {r.name: r.detail for r in report.results}["disk: space"]


def test_disk_check_refuses_a_disk_too_small_for_the_ui() -> None:
    from rentstack.errors import RentstackError
    from rentstack.remote.layout import check_space, space_need

    need = space_need(0.26, accelerator="cpu", runner="compose", weights_present=False, runtime_present=True,
                      parts_gib=3.6)
    with pytest.raises(RentstackError, match=r"needs weights 0\.26 \+ image 0\.00 \+ parts 3\.60 \+ caches 1\.00 "
                                             r"\+ margin 1\.00 = 5\.86 GiB"):
        check_space(need, 5 * GIB, DATA)


def test_a_rented_docker_host_pulls_a_python_image_for_the_idle_watchdog() -> None:
    """The debootstrap'ed base exists only where `make image` ran; on a Docker host compose.env
    names python's slim image (pull_policy: missing), here the local base."""
    from rentstack.remote.steps import render as render_step

    ctx, _ = connect(FakeHost(), _opts(idle_stop="30m"))
    files = render_step.files(ctx, "rs-" + "k" * 43, "mt-" + "t" * 43)
    env = files[f"{DEPLOY}/cpu/compose.env"][0]
    assert "\nRENTSTACK_IDLE_IMAGE=python:3.11-slim\n" in env and "RENTSTACK_IDLE_STOP=30m" in env


def test_a_wheelhouse_is_downloaded_once_and_an_interrupted_one_again(tmp_path, monkeypatch) -> None:
    from rentstack.local import image

    ran: list[list[str]] = []
    monkeypatch.setattr(image, "run", lambda argv, **kw: ran.append(argv))
    image.download_once(tmp_path, "k1", "two wheels", ["a==1"], ["--no-deps", "b==2"], constraints="torch==2\n")
    pip = ran[0][:ran[0].index("-d") + 2]
    assert ran == [[*pip, "-c", str(tmp_path / "constraints.txt"), "a==1"],
                   [*pip, "-c", str(tmp_path / "constraints.txt"), "--no-deps", "b==2"]]
    assert (tmp_path / "constraints.txt").read_text() == "torch==2\n"
    image.download_once(tmp_path, "k1", "two wheels", ["a==1"])      # stamped: nothing runs
    assert len(ran) == 2
    image.download_once(tmp_path, "k2", "another version", ["a==2"])  # another key: downloads again
    assert ran[-1][-1] == "a==2" and "-c" not in ran[-1]
