"""Issue 8's input holes, one reproduction each: every test here failed before its fix.

Each runs the real CLI entry point (rentstack.cli.main) against a temporary state directory
and asserts what the issue promises: exit 2, one line naming the field and the fix, and
nothing written (or the previous render intact).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

from rentstack.cli import main


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    if root.exists():
        for p in sorted(root.rglob("*")):
            h.update(str(p.relative_to(root)).encode())
            if p.is_file():
                h.update(p.read_bytes())
    return h.hexdigest()


def _refused(capsys, argv: list[str], field: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert field in lines[0], lines[0]
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


def _render(tmp_path, *extra: str) -> list[str]:
    return ["render", "--tier", "cpu", "--state-dir", str(tmp_path / "state"),
            "--models-dir", str(tmp_path / "models"), *extra]


# --- item 1: a newline in --bind / --models-dir injected lines into compose.env ---------------
@pytest.mark.parametrize("bind", ["127.0.0.1\nRENTSTACK_BIND=0.0.0.0", "127.0.0.1\rRENTSTACK_BIND=0.0.0.0",
                                  "127.evil.example", "127.0.0.1 ", "0.0.0.0#", "localhost\n"])
def test_bind_cannot_get_round_the_no_api_key_refusal(tmp_path, capsys, bind):
    line = _refused(capsys, _render(tmp_path, "--no-api-key", "--bind", bind), "bind")
    assert any(w in line for w in ("use ", "remove it")), line
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


def test_models_dir_newline_is_refused(tmp_path, capsys):
    _refused(capsys, ["render", "--tier", "cpu", "--state-dir", str(tmp_path / "state"),
                      "--models-dir", "/data\nRENTSTACK_BIND=0.0.0.0"], "--models-dir")
    assert not (tmp_path / "state" / "cpu").exists()


def test_compose_env_values_are_quoted_not_injected(tmp_path, capsys):
    models = tmp_path / "my models #1"
    assert main(["render", "--tier", "cpu", "--state-dir", str(tmp_path / "state"), "--models-dir", str(models)]) == 0
    text = (tmp_path / "state" / "cpu" / "compose.env").read_text()
    lines = [l for l in text.splitlines() if l and not l.startswith("#")]
    keys = [l.split("=", 1)[0] for l in lines]
    assert len(keys) == len(set(keys)), "no variable twice"
    assert f"RENTSTACK_MODELS_DIR='{models}'" in lines


# --- item 2: --set hf-token=... went into vllm.yaml in clear ----------------------------------
TOKEN = "hf_TESTSECRETabcdef123456"


def test_hf_token_goes_to_secrets_env_never_vllm_yaml(tmp_path, capsys):
    assert main(_render(tmp_path, "--set", f"hf-token={TOKEN}")) == 0
    out = capsys.readouterr()
    tier_dir = tmp_path / "state" / "cpu"
    assert TOKEN not in (tier_dir / "vllm.yaml").read_text()
    assert TOKEN not in (tier_dir / "compose.env").read_text()
    assert TOKEN not in out.out + out.err
    secrets = tier_dir / "secrets.env"
    assert f"HF_TOKEN={TOKEN}" in secrets.read_text().splitlines()
    assert secrets.stat().st_mode & 0o777 == 0o600
    assert "hf-token" not in yaml.safe_load((tier_dir / "vllm.yaml").read_text())


@pytest.mark.parametrize("item", [f"hf-token={TOKEN}\nX=1", f"hf-token={TOKEN}'", "hf-token="])
def test_hf_token_that_secrets_env_cannot_hold_is_refused_unechoed(tmp_path, capsys, item):
    line = _refused(capsys, _render(tmp_path, "--set", item), "hf-token")
    assert TOKEN not in line
    assert not (tmp_path / "state" / "cpu").exists()


@pytest.mark.parametrize("key", ["api-key", "some-secret", "db-password", "ssl-token"])
def test_other_secret_like_flags_are_refused(tmp_path, capsys, key):
    line = _refused(capsys, _render(tmp_path, "--set", f"{key}=sekrit-value"), key)
    assert "sekrit-value" not in line


def test_secret_in_a_stack_file_is_refused(tmp_path):
    from rentstack.config.tiers import _validate
    from rentstack.errors import RentstackError
    data = yaml.safe_load((Path(__file__).parents[2] / "stacks" / "cpu.yaml").read_text())
    data["vllm"]["hf-token"] = TOKEN
    with pytest.raises(RentstackError) as err:
        _validate(data, "stacks/cpu.yaml")
    assert "hf-token" in str(err.value) and TOKEN not in str(err.value)


# --- item 3: builtin:../../../etc climbed out of the models directory -------------------------
@pytest.mark.parametrize("model,field", [
    ("builtin:../../../etc", "builtin model name"),
    ("builtin:/etc", "builtin model name"),
    ("builtin:..", "builtin model name"),
    ("hf:Qwen/..", "hf id"),
    ("modelscope:../Qwen3-8B", "modelscope id"),
    ("local:/etc/..", "local model"),
    ("local:relative/dir", "local model"),
])
def test_model_names_cannot_traverse(tmp_path, capsys, model, field):
    _refused(capsys, _render(tmp_path, "--model", model, "--force"), field)
    assert not (tmp_path / "state" / "cpu").exists()


def test_source_built_directly_is_checked_too():
    from rentstack.config.catalog import Source
    from rentstack.errors import RentstackError
    with pytest.raises(RentstackError):
        Source(scheme="builtin", ref="../../../etc")


def test_model_directory_resolves_inside_models_dir(tmp_path):
    from rentstack.safe import inside
    from rentstack.config import resolve_model
    entry = resolve_model("smollm2-135m")
    assert inside("model", tmp_path, entry.source.dirname) == (tmp_path / "smollm2-135m").resolve()


# --- item 9 (id part): a trailing newline passed the hf:/modelscope: id check -----------------
@pytest.mark.parametrize("model", ["hf:Qwen/Qwen3-8B\n", "modelscope:Qwen/Qwen3-8B\n", "hf:Qwen/Qwen3-8B\r",
                                   "hf:Qwen/Qwen3\u20138B", "hf:Ｑwen/Qwen3-8B"])
def test_hub_ids_match_exactly(tmp_path, capsys, model):
    _refused(capsys, _render(tmp_path, "--model", model, "--force"), "model")


# --- item 4: --tier took a path; its name: became an output directory; YAML bombs ------------
@pytest.mark.parametrize("tier", ["/tmp/x", "../../tmp/x", "x.yaml", "./cpu", "cpu/../cpu", "CPU", "cpu\n", ""])
def test_tier_is_a_name_never_a_path(tmp_path, capsys, tier):
    _refused(capsys, ["render", "--tier", tier, "--state-dir", str(tmp_path / "state")], "tier")
    assert not (tmp_path / "state").exists()


def test_crafted_tier_file_name_cannot_pick_the_output_directory(tmp_path):
    from rentstack.config.tiers import load_tier
    from rentstack.errors import RentstackError
    data = yaml.safe_load((Path(__file__).parents[2] / "stacks" / "cpu.yaml").read_text())
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for name in ["/tmp/x", "../x", "x\ny"]:
        data["name"] = name
        (stacks / "evil.yaml").write_text(yaml.safe_dump(data))
        with pytest.raises(RentstackError) as err:
            load_tier("evil", stacks)
        assert "name" in str(err.value)


BOMB = "".join(f"{c}: &{c} [{','.join(['*' + p] * 9) if p else '1,2,3,4,5,6,7,8,9'}]\n"
               for p, c in zip([None, *"abcdefgh"], "abcdefghi"))


def test_yaml_bomb_in_stacks_is_refused_fast(tmp_path):
    import time
    from rentstack.config.catalog import load_catalog
    from rentstack.config.tiers import load_tier
    from rentstack.errors import RentstackError
    (tmp_path / "bomb.yaml").write_text(BOMB)
    (tmp_path / "models.yaml").write_text("models:\n" + "".join("  " + l + "\n" for l in BOMB.splitlines()))
    start = time.monotonic()
    with pytest.raises(RentstackError, match="bomb"):
        load_tier("bomb", tmp_path)
    with pytest.raises(RentstackError, match="bomb"):
        load_catalog.__wrapped__(tmp_path)
    assert time.monotonic() - start < 10


def test_state_dir_root_does_not_replace_an_unrelated_directory(tmp_path, capsys):
    unrelated = tmp_path / "cpu"
    unrelated.mkdir()
    (unrelated / "precious.txt").write_text("keep me")
    _refused(capsys, ["render", "--tier", "cpu", "--state-dir", str(tmp_path)], "--state-dir")
    assert (unrelated / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu"]


def test_rerender_over_an_earlier_render_still_works(tmp_path, capsys):
    argv = _render(tmp_path)
    assert main(argv) == 0
    key = (tmp_path / "state" / "cpu" / "secrets.env").read_text()
    assert main(argv) == 0
    assert (tmp_path / "state" / "cpu" / "secrets.env").read_text() == key


# --- item 9 (template part): a multi-line description added a service to compose.yaml ---------
def test_multiline_description_cannot_add_yaml(tmp_path):
    from rentstack.config.tiers import _validate
    from rentstack.errors import RentstackError
    data = yaml.safe_load((Path(__file__).parents[2] / "stacks" / "cpu.yaml").read_text())
    data["description"] = "fine\n  evil:\n    image: busybox\n    privileged: true"
    with pytest.raises(RentstackError, match="description"):
        _validate(data, "stacks/cpu.yaml")
    # and the renderer refuses one even when handed a tier built past validation
    from rentstack.config import load_tier
    from rentstack.render.templates import render_root_compose
    evil = load_tier("cpu").model_copy(update={"description": data["description"]})
    with pytest.raises(RentstackError, match="description"):
        render_root_compose([evil])


@pytest.mark.parametrize("key,value", [("shm_size", "2gb\n    privileged: true"), ("env", {"A: 1\nB": "x"}),
                                       ("env", {"A": "x\ny"}), ("presets", {"../x": {}}),
                                       ("gpu", {"name": "\x1b]0;pwned\x07"})])
def test_other_tier_values_that_reach_compose_yaml_are_checked(key, value):
    from rentstack.config.tiers import _validate
    from rentstack.errors import RentstackError
    data = yaml.safe_load((Path(__file__).parents[2] / "stacks" / "4090x1.yaml").read_text())
    data[key] = value
    with pytest.raises(RentstackError) as err:
        _validate(data, "stacks/4090x1.yaml")
    assert key in str(err.value)


def test_tier_path_with_matching_name_cannot_replace_a_directory(tmp_path, capsys):
    """The issue's exploit: --tier /x/evil with /x/evil.yaml saying `name: /x/evil` made
    state_dir / name == /x/evil, which the render swapped out."""
    data = yaml.safe_load((Path(__file__).parents[2] / "stacks" / "cpu.yaml").read_text())
    victim = tmp_path / "evil"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    data["name"] = str(victim)
    (tmp_path / "evil.yaml").write_text(yaml.safe_dump(data))
    _refused(capsys, ["render", "--tier", str(victim), "--state-dir", str(tmp_path / "state"),
                      "--models-dir", str(tmp_path / "models")], "--tier")
    assert (victim / "precious.txt").read_text() == "keep me"
    (tmp_path / "bomb.yaml").write_text(BOMB)
    _refused(capsys, ["render", "--tier", str(tmp_path / "bomb")], "--tier")
