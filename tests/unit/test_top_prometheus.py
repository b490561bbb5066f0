"""The /metrics text parser: the exposition format's corners, and bounded on hostile input."""

from __future__ import annotations

import math

from rentstack.top.prometheus import MAX_LINE, parse
from rentstack.top.view import bucket_delta, quantile

TEXT = r'''# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="m"} 1.5e3 1700000000000
vllm:odd{path="C:\\dir",quote="say \"hi\"",nl="a\nb",brace="}{"} 1
vllm:nan_gauge NaN
# TYPE vllm:ttft_seconds histogram
vllm:ttft_seconds_bucket{le="0.1",model_name="m"} 1.0
vllm:ttft_seconds_bucket{le="0.5",model_name="m"} 4.0
vllm:ttft_seconds_bucket{le="+Inf",model_name="m"} 5.0
vllm:ttft_seconds_count{model_name="m"} 5.0
this line is not a sample
vllm:bad_value{a="b"} twelve
vllm:bad_labels{a=b} 1
'''


def test_samples_labels_and_types():
    s = parse(TEXT)
    assert s.total("vllm:num_requests_running") == 5.0
    assert s.maximum("vllm:num_requests_running") == 3.0
    assert s.total("vllm:generation_tokens_total") == 1500.0  # the timestamp is not the value
    assert s.types["vllm:generation_tokens_total"] == "counter"
    assert s.types["vllm:ttft_seconds"] == "histogram"
    odd = s.samples["vllm:odd"][0]
    assert odd.label("path") == "C:\\dir" and odd.label("quote") == 'say "hi"'
    assert odd.label("nl") == "a\nb" and odd.label("brace") == "}{"
    assert s.label_values("vllm:num_requests_running", "model_name") == ["m"]


def test_nan_is_kept_out_of_sums_and_bad_lines_are_counted():
    s = parse(TEXT)
    assert math.isnan(s.samples["vllm:nan_gauge"][0].value)
    assert s.total("vllm:nan_gauge") is None
    assert s.bad_lines == 3
    assert s.total("vllm:absent") is None and not s.has("vllm:absent")


def test_buckets_sorted_with_inf_last():
    assert parse(TEXT).buckets("vllm:ttft_seconds") == [(0.1, 1.0), (0.5, 4.0), (math.inf, 5.0)]


def test_a_huge_line_is_skipped_not_held():
    s = parse("vllm:x{a=\"" + "y" * (MAX_LINE + 10) + "\"} 1\nvllm:ok 2\n")
    assert s.bad_lines == 1 and s.total("vllm:ok") == 2.0


def test_quantile_interpolates_like_prometheus():
    buckets = [(0.1, 1.0), (0.5, 4.0), (math.inf, 5.0)]
    # rank 2.5 of 5 lies in (0.1, 0.5], 1.5 of its 3 observations in: 0.1 + 0.4 * 0.5
    assert math.isclose(quantile(0.5, buckets), 0.3)
    # rank 4.75 lies in the +Inf bucket: the highest finite bound answers
    assert quantile(0.95, buckets) == 0.5
    assert quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert quantile(0.5, []) is None
    # the first bucket interpolates from 0
    assert math.isclose(quantile(0.5, [(1.0, 10.0), (math.inf, 10.0)]), 0.5)


def test_bucket_delta_and_a_restarted_server():
    before = [(0.1, 1.0), (math.inf, 2.0)]
    now = [(0.1, 3.0), (math.inf, 6.0)]
    assert bucket_delta(now, before) == [(0.1, 2.0), (math.inf, 4.0)]
    assert bucket_delta(before, now) == before  # counts went down: the server restarted
