"""Logs that are empty, not vLLM, truncated, binary or huge get a clear answer and no traceback."""

from __future__ import annotations

import os
import resource
from pathlib import Path

from rentstack.doctor import diagnose, iter_lines

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "doctor"


def _file(path: Path):
    with path.open("rb") as fh:
        return diagnose(iter_lines(fh))


def test_empty_file(tmp_path):
    p = tmp_path / "empty.log"
    p.write_bytes(b"")
    d = _file(p)
    assert (d.status, d.cause, d.input_kind, d.fixes) == ("failed", "unknown", "empty", [])
    assert "empty" in d.explanation


def test_only_blank_lines_count_as_empty():
    d = diagnose(["\n", "   \n", "\r\n"])
    assert d.input_kind == "empty"


def test_not_a_vllm_log(tmp_path):
    p = tmp_path / "nginx.log"
    p.write_text("\n".join(f'10.0.0.{i} - - [21/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 612' for i in range(50)))
    d = _file(p)
    assert (d.status, d.cause, d.input_kind) == ("failed", "unknown", "not_vllm")
    assert "does not look like a vLLM server log" in d.explanation
    assert d.lines == 50


def test_binary_file(tmp_path):
    p = tmp_path / "weights.bin"
    p.write_bytes(os.urandom(300_000) + b"\x00" * 1000)
    d = _file(p)
    assert (d.status, d.cause, d.input_kind) == ("failed", "unknown", "binary")
    assert "not a text log" in d.explanation


def test_binary_without_newlines_is_read_in_bounded_pieces(tmp_path):
    p = tmp_path / "blob.bin"
    p.write_bytes(b"\x00\x01" * 1_000_000)  # 2 MB, no newline at all
    with p.open("rb") as fh:
        pieces = list(iter_lines(fh))
    assert max(len(x) for x in pieces) <= 64 * 1024
    assert _file(p).input_kind == "binary"


def test_truncated_mid_line_keeps_what_was_read(tmp_path):
    text = (GOLDEN / "v0_19_0-ok-llama31-8b-h100.log").read_text(encoding="utf-8")
    cut = text.index("Available KV cache memory") + 10  # stops in the middle of a line
    p = tmp_path / "cut.log"
    p.write_text(text[:cut], encoding="utf-8")
    d = _file(p)
    assert d.status == "failed" and d.cause == "unknown" and d.complete is False
    assert d.figures["weights_gib"] == 14.99
    assert d.figures["cuda_graph_estimate_gib"] == 0.84
    assert "available_kv_gib" not in d.figures


def test_invalid_utf8_inside_a_vllm_log(tmp_path):
    text = (GOLDEN / "v0_19_0-ok-llama31-8b-h100.log").read_bytes()
    p = tmp_path / "latin1.log"
    p.write_bytes(text.replace(b"Waiting for application startup.", b"Waiting \xe9\xe8 for startup."))
    d = _file(p)
    assert d.status == "ok" and d.figures["kv_cache_tokens"] == 476000


def test_lines_may_be_bytes_or_str_and_lack_newlines():
    lines = [
        b"INFO 05-02 08:40:14 [api_server.py:1043] vLLM API server version 0.8.5.post1",
        "INFO 05-02 08:40:29 [gpu_model_runner.py:1347] Model loading took 15.2683 GiB and 3.419265 seconds",
    ]
    d = diagnose(lines)
    assert d.figures["vllm_version"] == "0.8.5.post1" and d.figures["weights_gib"] == 15.2683


def test_a_huge_single_line_is_cut_not_held(tmp_path):
    line = "INFO 01-01 00:00:00 [x.py:1] " + "a" * 5_000_000 + "\n"
    d = diagnose([line, "INFO 01-01 00:00:00 [x.py:1] Application startup complete.\n"])
    assert d.status == "ok"


def _big_log(path: Path, target_bytes: int) -> int:
    """A real start, then request-log noise until target_bytes, then a runtime OOM."""
    head = (GOLDEN / "v0_19_0-ok-llama31-8b-h100.log").read_bytes()
    noise = (b'(APIServer pid=1) INFO:     10.0.0.7:51514 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n'
             b"(APIServer pid=1) INFO 08-14 09:20:00 [loggers.py:127] Engine 000: Avg prompt throughput: "
             b"812.0 tokens/s, Avg generation throughput: 1902.3 tokens/s, Running: 31 reqs, GPU KV cache usage: 40.2%\n")
    block = noise * 4096
    with path.open("wb") as fh:
        fh.write(head)
        written = len(head)
        while written < target_bytes:
            fh.write(block)
            written += len(block)
        fh.write(b"(EngineCore_DP0 pid=97) ERROR 08-14 10:00:00 [core.py:866] torch.OutOfMemoryError: CUDA out of "
                 b"memory. Tried to allocate 512.00 MiB. GPU 0 has a total capacity of 79.19 GiB of which 100.00 MiB "
                 b"is free.\n")
    return written


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def test_big_log_is_streamed_in_bounded_memory(tmp_path):
    p = tmp_path / "big.log"
    size = _big_log(p, 256 * 1024 * 1024)
    before = _max_rss_mib()
    d = _file(p)
    grown = _max_rss_mib() - before
    assert (d.status, d.cause, d.phase) == ("failed", "cuda_oom", "runtime")
    assert d.figures["available_kv_gib"] == 58.11
    assert d.lines > 1_800_000
    # Holding the log would grow the process by its size (256 MiB); streaming stays flat.
    assert grown < 64, f"peak memory grew by {grown:.0f} MiB while reading {size / 2**20:.0f} MiB"
