"""The I/O edge of `rentstack top` against a real HTTP server on loopback that serves /metrics
behind a bearer token (as the front door does): the token is sent, refusals are one line, the
read is bounded, and --once prints a frame whose rates come from two reads."""

from __future__ import annotations

import http.server
import io
import threading

import pytest

from rentstack.cli import main
from rentstack.errors import RentstackError
from rentstack.top import live

TOKEN = "rs-metrics-test-token"


class _Metrics(http.server.BaseHTTPRequestHandler):
    reads = 0
    body_override: bytes | None = None

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path != "/metrics":
            self.send_error(404)
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_error(401)
            return
        cls = type(self)
        cls.reads += 1
        body = cls.body_override or (
            "# TYPE vllm:generation_tokens_total counter\n"
            f'vllm:generation_tokens_total{{model_name="m"}} {100.0 * cls.reads}\n'
            f'vllm:prompt_tokens_total{{model_name="m"}} {50.0 * cls.reads}\n'
            'vllm:num_requests_running{model_name="m"} 2.0\n'
            'vllm:num_requests_waiting{model_name="m"} 1.0\n'
            'vllm:kv_cache_usage_perc{model_name="m"} 0.25\n'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    _Metrics.reads = 0
    _Metrics.body_override = None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_reads_with_the_token(server):
    assert "vllm:generation_tokens_total" in live.read_metrics(server, TOKEN)


@pytest.mark.parametrize("token", [None, "rs-wrong"])
def test_a_refused_token_is_one_line(server, token):
    with pytest.raises(RentstackError, match=r"answered HTTP 401 \(the key or metrics token was refused\)"):
        live.read_metrics(server, token)


def test_nothing_listening_is_one_line():
    with pytest.raises(RentstackError, match="no answer from http://127.0.0.1:9/metrics"):
        live.read_metrics("http://127.0.0.1:9", TOKEN, timeout=2)


def test_an_oversized_answer_is_refused(server, monkeypatch):
    monkeypatch.setattr(live, "MAX_SCRAPE_BYTES", 1000)
    _Metrics.body_override = b"vllm:x 1\n" * 200
    with pytest.raises(RentstackError, match="more than"):
        live.read_metrics(server, TOKEN)


def test_once_prints_one_frame_with_rates_from_two_reads(server):
    out = io.StringIO()
    assert live.run(server, TOKEN, interval=0.5, once=True, out=out, gpus=lambda: ()) == 0
    frame = out.getvalue()
    assert _Metrics.reads == 2
    assert "\x1b" not in frame  # --once is for pipes and scripts: no screen control
    assert "running 2" in frame and "waiting 1" in frame and "25.0 %" in frame
    # 100 generation tokens between reads 0.5 s apart: ~200/s (sleep and HTTP add a little)
    rate = float(frame.split("generation ")[1].split()[0])
    assert 120 < rate <= 200


def test_the_cli_takes_the_token_from_the_environment_never_a_flag(server, monkeypatch, capsys):
    monkeypatch.setenv("RENTSTACK_METRICS_TOKEN", TOKEN)
    assert main(["top", "--url", server, "--once", "--interval", "0.3"]) == 0
    assert f"rentstack top — {server}" in capsys.readouterr().out


def test_the_cli_reads_a_secrets_file(server, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("RENTSTACK_METRICS_TOKEN", raising=False)
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"# key\nVLLM_API_KEY={TOKEN}\n")
    assert main(["top", "--url", server, "--key-file", str(secrets), "--once", "--interval", "0.3"]) == 0
    monkeypatch.setenv("VLLM_API_KEY", "rs-wrong")
    assert main(["top", "--url", server, "--once", "--interval", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and len(err.strip().splitlines()) == 1 and "rs-wrong" not in err


@pytest.mark.parametrize(("argv", "words"), [
    (["--url", "ftp://x"], "give the server's base URL, such as"),
    (["--url", "http://me:pw@127.0.0.1:1"], "holds a user name or password"),
    (["--url", "http://127.0.0.1:1", "--interval", "0"], "--interval 0: choose between"),
    (["--url", "http://127.0.0.1:1", "--key-file", "/nonexistent/secrets.env"], "--key-file /nonexistent"),
    (["--tier", "cpu", "--state-dir", "/nonexistent-state"], "has not been rendered here"),
])
def test_bad_input_is_one_line_and_exit_2(argv, words, capsys):
    assert main(["top", *argv, "--once"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_the_live_loop_redraws_each_interval(server):
    out = io.StringIO()
    assert live.run(server, TOKEN, interval=0.3, once=False, out=out, gpus=lambda: (), frames=2) == 0
    frames = out.getvalue().split(live.CLEAR)[1:]
    assert len(frames) == 3 and _Metrics.reads == 3
    assert "first read" in frames[0]  # no rates before a second read
    assert "generation 0.0" not in frames[2] and "(last 0.3 s)" in frames[2]
