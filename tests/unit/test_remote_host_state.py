"""The host's state file: finished steps keyed by the checksum of their inputs."""

from __future__ import annotations

from rentstack.remote.host_state import HostState, checksum, parse_state, state_path


def test_round_trip_and_done_needs_the_same_inputs() -> None:
    state = HostState()
    digest = checksum("builtin", [("model.safetensors", 100, 1)])
    assert not state.done("weights", digest)
    state.record("weights", digest, "uploaded")
    again = parse_state(state.dumps())
    assert again.done("weights", digest)
    assert not again.done("weights", checksum("builtin", [("model.safetensors", 101, 1)]))
    again.forget("weights")
    assert not again.done("weights", digest)


def test_checksum_is_stable_and_order_of_dict_keys_does_not_matter() -> None:
    assert checksum({"a": 1, "b": 2}) == checksum({"b": 2, "a": 1})
    assert checksum("x") != checksum("y")
    assert len(checksum("x")) == 16


def test_unreadable_or_foreign_state_counts_as_nothing_done() -> None:
    for text in ("", "not json", "[]", '{"version": 99, "steps": {}}', '{"version": 1, "steps": []}'):
        assert parse_state(text).steps == {}
    kept = parse_state('{"version": 1, "steps": {"caches": {"checksum": "c"}, "bad": 3}}')
    assert list(kept.steps) == ["caches"]


def test_state_lives_on_the_data_disk() -> None:
    assert state_path("/root/autodl-tmp") == "/root/autodl-tmp/.rentstack/state.json"
