"""Plan-then-act: checks decide, dry runs only plan, failures stop the run with one line."""

from __future__ import annotations

import pytest

from rentstack.errors import RentstackError
from rentstack.remote.facts import Gpu, HostFacts
from rentstack.remote.layout import Layout, SpaceNeed, check_space, env_sh_text, space_need
from rentstack.remote.options import InputError
from rentstack.remote.provision import Options, host_tier, resolve_inputs
from rentstack.remote.steps import RunReport, Step, StopRun, plan_lines, run_steps
from rentstack.config import load_tier


class _Host:
    """Just enough host for run_steps: a view for the checks."""

    def view(self) -> object:
        return object()


H = _Host()


def _steps(log: list[str]) -> list[Step]:
    def act(name: str):
        def inner(host) -> str:
            log.append(name)
            return f"{name} done"
        return inner

    return [
        Step("disk", "grow the disk", act("disk"), lambda view: "filesystem fills /dev/vdb — skipped"),
        Step("weights", "download the weights", act("weights")),
        Step("server", "start the server", act("server"), lambda view: None),
    ]


def test_dry_run_runs_checks_but_no_act() -> None:
    log: list[str] = []
    report = run_steps(_steps(log), RunReport("h"), H, dry_run=True)
    assert log == []
    assert [(r.name, r.status) for r in report.results] == [
        ("disk", "skipped"), ("weights", "would run"), ("server", "would run")]
    assert "[plan] weights: download the weights" in report.text()
    assert "[skip] disk: filesystem fills /dev/vdb — skipped" in report.text()
    assert not report.changed


def test_run_acts_in_order_and_reports_changes() -> None:
    log: list[str] = []
    report = run_steps(_steps(log), RunReport("h"), H)
    assert log == ["weights", "server"]
    assert report.changed and report.ok


def test_failure_stops_the_run_and_names_the_step() -> None:
    def boom(host) -> str:
        raise RentstackError("the hub could not be reached: timed out — a re-run resumes where it stopped")

    log: list[str] = []
    steps = [Step("weights", "download", boom), *_steps(log)[2:]]
    report = run_steps(steps, RunReport("h"), H)
    assert log == []
    assert report.error == "weights: the hub could not be reached: timed out — a re-run resumes where it stopped"
    assert [r.status for r in report.results] == ["failed", "not reached"]


def test_stop_run_ends_early_without_error() -> None:
    def stop(host) -> str:
        raise StopRun("boot the instance with its GPU, then run `fab up`")

    log: list[str] = []
    report = run_steps([Step("gpu", "gate", stop), *_steps(log)[2:]], RunReport("h"), H)
    assert report.ok and report.stopped.startswith("boot the instance")
    assert log == []


def test_plan_lines_are_numbered() -> None:
    assert plan_lines(_steps([]))[1] == "2. weights: download the weights"


def test_space_need_counts_only_what_is_missing_and_refuses_with_numbers() -> None:
    need = space_need(15.3, accelerator="cpu", runner="native", weights_present=False, runtime_present=False)
    assert need.total_gib == pytest.approx(15.3 + 4 + 1 + 1)
    with pytest.raises(RentstackError) as exc:
        check_space(need, int(9.5 * 1024**3), "/root/autodl-tmp")
    msg = str(exc.value)
    assert "9.50 GiB free" in msg and "weights 15.30 + venv 4.00" in msg and "= 21.30 GiB" in msg
    done = space_need(15.3, accelerator="gpu", runner="compose", weights_present=True, runtime_present=True)
    assert done == SpaceNeed(weights=0.0, runtime=0.0, runtime_label="image")
    assert check_space(done, 3 * 1024**3, "/d").startswith("3.00 GiB free, 2.00 GiB needed")


def test_cache_env_points_at_the_data_disk() -> None:
    text = env_sh_text(Layout("/root/autodl-tmp"))
    assert "export HF_HOME=/root/autodl-tmp/.cache/huggingface" in text
    assert "export MODELSCOPE_CACHE=/root/autodl-tmp/.cache/modelscope" in text
    assert "export PIP_CACHE_DIR=/root/autodl-tmp/.cache/pip" in text


def test_host_tier_uses_the_hosts_gpu_numbers() -> None:
    tier = load_tier("4090x1")
    facts = HostFacts(gpus=(Gpu(0, "NVIDIA GeForce RTX 4090", 24564, 20000, "550.54.14"),))
    t = host_tier(tier, facts)
    assert t.gpu.name == "NVIDIA GeForce RTX 4090"
    assert t.gpu.memory_gib == pytest.approx(23.99, abs=0.01)
    assert t.gpu.free_gib == pytest.approx(19.53, abs=0.01)
    assert t.vllm == tier.vllm


def test_gpu_tier_without_gpus_or_with_too_few_is_one_line() -> None:
    with pytest.raises(RentstackError, match="needs 1 GPU\\(s\\) but this host has none"):
        host_tier(load_tier("4090x1"), HostFacts())
    one = HostFacts(gpus=(Gpu(0, "RTX 3080", 20480, 20000),))
    with pytest.raises(RentstackError, match="needs 2 GPUs but this host has 1"):
        host_tier(load_tier("3080x2"), one)
    assert host_tier(load_tier("cpu"), HostFacts()) == load_tier("cpu")


@pytest.mark.parametrize("opts, fragment", [
    (dict(tier="cpuu"), "unknown tier 'cpuu' (did you mean 'cpu'?)"),
    (dict(model="qwen3-8bb"), "unknown model 'qwen3-8bb'"),
    (dict(runner="k8s"), "--runner 'k8s' is unknown"),
])
def test_bad_tier_model_runner_fail_before_any_connection(opts: dict, fragment: str) -> None:
    with pytest.raises(InputError) as exc:
        resolve_inputs(Options(**opts))
    assert fragment in str(exc.value)


HOSTILE_DATA_DIRS = ["/root/$(touch /tmp/rs-pwned)", "/root/auto dl", "/root/`id`", "/root/it's"]


@pytest.mark.parametrize("data_dir", HOSTILE_DATA_DIRS)
def test_env_sh_and_the_login_line_keep_a_hostile_data_dir_as_text(tmp_path, data_dir: str) -> None:
    """Issue 8 item 5: --data-dir went unquoted into env.sh and ~/.bashrc, so `$(...)` in it
    ran at every login and a space broke login shells. Source both for real with sh."""
    import subprocess

    from rentstack.remote.layout import source_line

    layout = Layout(data_dir)
    marker = tmp_path / "pwned"
    env_sh = tmp_path / "env.sh"
    env_sh.write_text(env_sh_text(layout).replace("/tmp/rs-pwned", str(marker)))
    out = subprocess.run(["sh", "-c", f'. "{env_sh}" && printf %s "$HF_HOME"'], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{data_dir}/.cache/huggingface".replace("/tmp/rs-pwned", str(marker))
    line = source_line(layout)
    # The rc line is one `.` with one word: the shell sees the whole path, runs nothing.
    words = subprocess.run(["sh", "-c", f"set -- {line[2:]}; echo $#"], capture_output=True, text=True)
    assert words.stdout.strip() == "1"
    assert not marker.exists()


def test_a_control_character_in_the_data_dir_is_refused() -> None:
    with pytest.raises(RentstackError, match="--data-dir"):
        Options(data_dir="/root/x\nexport EVIL=1")
