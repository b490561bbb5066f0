"""rentstack.safe: the one validation/escaping function per output format.

Examples first, then properties (Hypothesis): no input makes an env line with a second
line in it, or a shell word that a shell splits or expands, and no YAML text makes the
loader raise anything but a RentstackError or run past its limits.
"""

from __future__ import annotations

import shlex
import subprocess
import time
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rentstack.errors import RentstackError
from rentstack.safe import (YAML_MAX_BYTES, check_name, check_text, env_line, env_value, inside, load_yaml,
                            loads_yaml, read_env_text, read_env_value, shell_word)

CONTROL = ["\n", "\r", "\x00", "\x1b", "\t", "\x7f", "\x85", "\u2028", "\u2029", "\x1b]0;title\x07"]


# --- check_text ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", CONTROL)
def test_check_text_refuses_control_characters_and_names_the_field(bad):
    with pytest.raises(RentstackError) as err:
        check_text("--bind", f"127.0.0.1{bad}RENTSTACK_BIND=0.0.0.0")
    msg = str(err.value)
    assert msg.startswith("--bind ") and "remove it" in msg
    assert "\n" not in msg and "\r" not in msg and "\x1b" not in msg


def test_check_text_passes_plain_text_and_unicode():
    assert check_text("description", "Qwen3 8B — 中文 ok, $HOME & 'quotes'") == "Qwen3 8B — 中文 ok, $HOME & 'quotes'"


def test_check_text_hides_a_secret_value():
    with pytest.raises(RentstackError) as err:
        check_text("hf-token", "hf_SECRET\nX=1", secret=True)
    assert "hf_SECRET" not in str(err.value) and "hf-token" in str(err.value)


def test_check_text_refuses_non_text():
    with pytest.raises(RentstackError, match="must be text"):
        check_text("name", ["a"])


# --- check_name ---------------------------------------------------------------------------------
@pytest.mark.parametrize("good", ["cpu", "4090x1", "qwen3-8b", "smollm2-135m", "seed-32gb", "a.b_c"])
def test_check_name_accepts_shipped_style_names(good):
    assert check_name("tier", good) == good


@pytest.mark.parametrize("bad", ["", ".", "..", "../etc", "/tmp/x", "a/b", "Cpu", "-x", ".hidden", "a b",
                                 "x\n", "a" * 101, "tier;rm", "ä"])
def test_check_name_refuses_paths_and_odd_names(bad):
    with pytest.raises(RentstackError) as err:
        check_name("tier", bad)
    assert str(err.value).startswith("tier ")


# --- env files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value,line", [
    ("127.0.0.1", "RENTSTACK_BIND=127.0.0.1"),
    ("/srv/models", "RENTSTACK_BIND=/srv/models"),
    ("", "RENTSTACK_BIND="),
    ("/srv/my models", "RENTSTACK_BIND='/srv/my models'"),
    ("a#b", "RENTSTACK_BIND='a#b'"),
    ("$(id)", "RENTSTACK_BIND='$(id)'"),
    ("${HOME}", "RENTSTACK_BIND='${HOME}'"),
    (8000, "RENTSTACK_BIND=8000"),
])
def test_env_line_bare_or_single_quoted(value, line):
    assert env_line("RENTSTACK_BIND", value) == line


@pytest.mark.parametrize("value", ["127.0.0.1\nRENTSTACK_BIND=0.0.0.0", "a\rb", "it's", "ends\\", "\x00"])
def test_env_value_refuses_what_an_env_file_cannot_carry(value):
    with pytest.raises(RentstackError) as err:
        env_value("--bind", value)
    assert str(err.value).startswith("--bind ")


@pytest.mark.parametrize("key", ["", "1A", "A-B", "A B", "A\nB", "A=B"])
def test_env_line_refuses_bad_keys(key):
    with pytest.raises(RentstackError):
        env_line(key, "x")


def _dotenv_value(line: str) -> str:
    """A model of compose-go's dotenv for the two forms env_line writes (bare, single-quoted)."""
    key, _, raw = line.partition("=")
    assert "\n" not in raw
    if raw.startswith("'"):
        assert raw.endswith("'") and "'" not in raw[1:-1] and not raw[1:-1].endswith("\\")
        return raw[1:-1]
    assert " " not in raw and "#" not in raw and "'" not in raw and '"' not in raw and "$" not in raw
    return raw


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_property_env_line_is_one_line_that_reads_back(value):
    try:
        line = env_line("KEY", value)
    except RentstackError as err:
        assert "\n" not in str(err)
        return
    assert len(line.splitlines()) == 1 and line == line.splitlines()[0]
    assert _dotenv_value(line) == value
    assert read_env_value(line.partition("=")[2]) == value
    assert read_env_text(f"# a comment\n{line}\nKEY=later\n") == {"KEY": value}
    # a POSIX shell reads the same value back from the same line
    assert shlex.split(line.partition("=")[2], posix=True) in ([value], []) or value == ""


# --- shell ---------------------------------------------------------------------------------------
@settings(max_examples=600)
@given(st.text())
def test_property_shell_word_is_exactly_one_unexpanded_word(value):
    try:
        word = shell_word("--data-dir", value)
    except RentstackError:
        assert any(unicodedata.category(c) == "Cc" or c in "\u2028\u2029" for c in value)
        return
    assert shlex.split(f"cmd {word} end") == ["cmd", value, "end"]
    assert "\n" not in word


def test_shell_word_round_trips_through_a_real_shell():
    values = ["plain", "$(id)", "`id`", "a b", "'quoted'", '"dq"', "; rm -rf /", "*", "~root", "${HOME}",
              "-n", "", "a\\b", "é中", "!", "&&", "|", "<x>"]
    script = " ".join(f"printf '%s\\0' {shell_word('v', v)};" for v in values)
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout
    assert out.decode().split("\0")[:-1] == values


def test_shell_word_refuses_newline():
    with pytest.raises(RentstackError, match="--data-dir"):
        shell_word("--data-dir", "/data\n$(id)")


# --- YAML --------------------------------------------------------------------------------------
BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_load_yaml_refuses_billion_laughs_fast(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    start = time.monotonic()
    with pytest.raises(RentstackError) as err:
        load_yaml(path, field="--tier")
    assert time.monotonic() - start < 10   # the unguarded loader took 65 s and 3 GB
    assert "--tier" in str(err.value) and "YAML bomb" in str(err.value)


@pytest.mark.parametrize("text,expect", [
    ("a: &a [*a]", "YAML bomb"),                            # self-reference
    ("x: " + "[" * 5000 + "]" * 5000, "nested"),           # deep nesting
    ("a: !!python/object/apply:os.system ['id']", "not valid YAML"),
    ("a: [1\n", "not valid YAML at line"),
    ("? [1]\n: x\n", "not valid YAML"),                     # unhashable key
    ("a: 1\n---\nb: 2\n", "not valid YAML"),                # two documents
])
def test_load_yaml_refuses_hostile_text(text, expect):
    with pytest.raises(RentstackError) as err:
        loads_yaml(text, where="--tier x.yaml")
    assert expect in str(err.value) and "\n" not in str(err.value)


def test_load_yaml_size_limit_and_missing_file(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * (YAML_MAX_BYTES + 10))
    with pytest.raises(RentstackError, match="larger than"):
        load_yaml(big, field="tier file")
    with pytest.raises(RentstackError, match="no such file"):
        load_yaml(tmp_path / "nope.yaml", field="tier file")
    with pytest.raises(RentstackError, match="is a directory"):
        load_yaml(tmp_path, field="tier file")
    (tmp_path / "bin.yaml").write_bytes(b"a: \xff\xfe")
    with pytest.raises(RentstackError, match="UTF-8"):
        load_yaml(tmp_path / "bin.yaml", field="tier file")


def test_load_yaml_reads_the_shipped_files():
    from rentstack.config.tiers import STACKS_DIR
    for path in STACKS_DIR.glob("*.yaml"):
        assert isinstance(load_yaml(path, field="stack"), dict)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:&*[]{},-!?|>'\"#\n @%x1 ")), max_size=200))
def test_property_yaml_loader_raises_only_rentstack_errors(text):
    try:
        loads_yaml(text)
    except RentstackError as err:
        assert "\n" not in str(err)


# --- paths ---------------------------------------------------------------------------------------
def test_inside_resolves_and_refuses_escapes(tmp_path):
    (tmp_path / "models" / "m").mkdir(parents=True)
    base = tmp_path / "models"
    assert inside("builtin model", base, "m") == (base / "m").resolve()
    for rel in ["../etc", "/etc", "m/../../x", ".", "", "a\nb"]:
        with pytest.raises(RentstackError) as err:
            inside("builtin model", base, rel)
        assert str(err.value).startswith("builtin model")
    (base / "link").symlink_to("/etc")
    with pytest.raises(RentstackError, match="leads outside"):
        inside("builtin model", base, "link")


# --- the writers built on these functions ------------------------------------------------------
def _cpu_deployment():
    from rentstack.config import load_tier
    from rentstack.render import build_deployment
    return build_deployment(load_tier("cpu"), models_dir="/data/models")


def _flag_names() -> list[str]:
    from rentstack.config.vllm_args import known_args
    return sorted(known_args())


# keys are vLLM flag names (checked against vLLM's parser before rendering), values anything
_KEYS = st.sampled_from(_flag_names())
_VALUES = st.one_of(st.text(max_size=40), st.integers(), st.floats(allow_nan=False), st.booleans(), st.none())


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=8))
def test_property_vllm_yaml_reads_back_exactly_what_was_set(values):
    """No value, whatever it holds, adds a key or a document to vllm.yaml."""
    import dataclasses

    import yaml

    from rentstack.render import render_vllm_yaml
    dep = dataclasses.replace(_cpu_deployment(), settings=values)
    assert (yaml.safe_load(render_vllm_yaml(dep)) or {}) == values


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_property_a_plan_note_never_becomes_yaml(note):
    import dataclasses

    import yaml

    from rentstack.render import render_vllm_yaml
    dep = dataclasses.replace(_cpu_deployment(), notes=[note])
    try:
        text = render_vllm_yaml(dep)
    except RentstackError:
        assert any(unicodedata.category(c) == "Cc" or c in "\u2028\u2029" for c in note)
        return
    assert yaml.safe_load(text) == dep.settings


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_property_secrets_env_holds_exactly_its_variables(key, token):
    from rentstack.render.secrets import parse_api_key, secrets_env_text
    try:
        text = secrets_env_text("cpu", key, (("HF_TOKEN", token),))
    except RentstackError as err:
        # secrets are never echoed (short strings may occur in the message by chance)
        assert "(value hidden)" in str(err) or "single quote" in str(err) or "backslash" in str(err)
        for secret in (key, token):
            assert len(secret) < 6 or repr(secret) not in str(err)
        return
    names = [line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")]
    assert names == ["VLLM_API_KEY", "HF_TOKEN"]
    assert parse_api_key(text) == (key or None)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.text(max_size=30))
def test_property_compose_env_has_exactly_its_variables(models_dir, state_dir):
    import dataclasses

    from rentstack.render import render_compose_env
    dep = dataclasses.replace(_cpu_deployment(), models_dir=models_dir)
    try:
        text = render_compose_env(dep, state_dir, "/cache")
    except RentstackError:
        return
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    env = {line.split("=", 1)[0]: read_env_value(line.split("=", 1)[1]) for line in lines}
    assert len(env) == len(lines)
    assert env["RENTSTACK_MODELS_DIR"] == models_dir and env["RENTSTACK_STATE_DIR"] == state_dir
