"""The idle watchdog on rented hosts: fab's flags, the native program and its idle.env."""

from __future__ import annotations

import pytest

from rentstack.remote import runners
from rentstack.remote.layout import Layout
from rentstack.remote.options import InputError, Options


def test_options_check_the_idle_flags():
    assert Options(idle_stop="30M").idle_stop == "30m"
    assert Options().idle_stop == "off"
    with pytest.raises(InputError, match="--idle-stop/--idle-action: idle-stop: idle window 'soon'"):
        Options(idle_stop="soon")
    with pytest.raises(InputError, match="unknown idle action 'halt'"):
        Options(idle_stop="30m", idle_action="halt")


def test_native_watchdog_program_and_env():
    layout = Layout("/root/autodl-tmp")
    assert "idle-stop" not in [p.slug for p in runners.native_programs(layout, "cpu")]
    progs = runners.native_programs(layout, "cpu", idle=True)
    assert [p.slug for p in progs][0] == "vllm" and [p.slug for p in progs][-1] == "idle-stop"
    idle = progs[-1]
    assert idle.argv == ("python3", "/root/autodl-tmp/.rentstack/idle-watchdog.py")
    assert idle.env_files == ("/root/autodl-tmp/.rentstack/deploy/cpu/idle.env",
                              "/root/autodl-tmp/.rentstack/deploy/cpu/secrets.env")
    env = runners.idle_env(layout, "cpu", 6006, "30m", "poweroff")
    assert env["RENTSTACK_IDLE_METRICS_URL"] == "http://127.0.0.1:16006/metrics"     # vLLM itself, on loopback
    assert env["RENTSTACK_IDLE_TARGET"] == "native:/root/autodl-tmp/.rentstack/run/vllm-cpu.pid"
    assert env["RENTSTACK_IDLE_ACTION"] == "poweroff"


def test_compose_up_and_down_carry_the_watchdogs_profile():
    from rentstack.config import load_tier

    layout, tier = Layout("/data"), load_tier("cpu")
    up = runners.compose_up(layout, tier, "rentstack", 300, ("idle-stop",))
    assert "--profile cpu --profile idle-stop up -d --wait" in up
    # down names every part's profile: compose leaves services of unnamed profiles running
    assert ("--profile cpu --profile webui --profile monitoring --profile idle-stop down"
            in runners.compose_down(layout, tier, "rentstack"))
