"""The load sweep's pure core: settings, driver input, rows from vLLM's results, prediction, table.

Golden cases (tests/golden/bench/*.json): results vLLM's benchmark really returned (a CPU-tier
run, `results` = its results.jsonl lines) and the rows and table marks they must give."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rentstack.bench.sweep import (BenchSettings, driver_input, parse_levels, predicted_concurrency,
                                   rows_from_results, table)
from rentstack.cli import main

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "bench"
CASES = sorted(GOLDEN.glob("*.json"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden_results_to_rows(case):
    data = json.loads(case.read_text())
    rows = rows_from_results(data["results"])
    assert [r.concurrency for r in rows] == data["expected"]["levels"]
    for row, want in zip(rows, data["expected"]["rows"]):
        for key, value in want.items():
            got = getattr(row, key)
            assert got == pytest.approx(value, rel=1e-3), f"{case.stem} c={row.concurrency} {key}"
    pred = predicted_concurrency(**data["prediction_inputs"])
    assert pred.concurrency == data["expected"]["predicted"]
    text = table(rows, pred)
    marked = [line for line in text.splitlines() if line.endswith("< predicted max")]
    assert len(marked) == (1 if pred.concurrency in data["expected"]["levels"] else 0)


def test_golden_cases_exist():
    assert CASES, "tests/golden/bench has no cases"


def test_settings_sort_levels_and_bound_them():
    s = BenchSettings(concurrency=(8, 1, 4, 4, 2))
    assert s.concurrency == (1, 2, 4, 8)
    assert [s.prompts(c) for c in s.concurrency] == [4, 4, 8, 16]
    with pytest.raises(ValueError, match="concurrency level 0 is out of range"):
        BenchSettings(concurrency=(0, 2))
    with pytest.raises(ValueError):
        BenchSettings(input_len=0)
    with pytest.raises(ValueError):
        BenchSettings(unknown=1)


def test_parse_levels_names_the_bad_item():
    assert parse_levels("1, 2,16") == (1, 2, 16)
    with pytest.raises(ValueError, match="'x' is not a positive whole number"):
        parse_levels("1,x")
    with pytest.raises(ValueError, match="'0'"):
        parse_levels("0,1")


def test_driver_input_uses_vllms_flags_and_no_key():
    spec = driver_input(BenchSettings(concurrency=(1, 4), input_len=100, output_len=20), base_url="http://h:1",
                        model="m", tokenizer="/tokenizer", out="/out/r.jsonl")
    assert spec["levels"] == [1, 4] and spec["prompts"] == [4, 8]
    flags = spec["flags"]
    pairs = dict(zip(flags[::2], flags[1::2]))
    assert pairs["--base-url"] == "http://h:1" and pairs["--model"] == "m"
    assert flags[flags.index("--random-input-len") + 1] == "100"
    assert flags[flags.index("--random-output-len") + 1] == "20"
    assert "--ignore-eos" in flags
    assert not any("key" in f.lower() for f in flags)


def test_prediction_takes_the_smaller_limit():
    by_seqs = predicted_concurrency(max_num_seqs=4, kv_tokens=46603, request_tokens=160)
    assert (by_seqs.concurrency, by_seqs.limited_by) == (4, "max-num-seqs")
    # 69,344 tokens / (ceil(600/16)*16 = 608) = 114 whole requests < 128 sequences
    by_kv = predicted_concurrency(max_num_seqs=128, kv_tokens=69344, request_tokens=600)
    assert (by_kv.concurrency, by_kv.limited_by) == (114, "kv-cache")


def test_missing_percentile_is_nan_not_zero():
    rows = rows_from_results([{"max_concurrency": 1, "completed": 1, "duration": 1.0}])
    assert math.isnan(rows[0].ttft_p95_ms)


@pytest.mark.parametrize("argv, needle", [
    (["--concurrency", "1,two"], "'two' is not a positive whole number"),
    (["--input-len", "0"], "input_len"),
    (["--concurrency", "4000"], "out of range"),
])
def test_bad_input_is_one_line_exit_2(argv, needle, capsys, tmp_path):
    assert main(["bench", "--state-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
