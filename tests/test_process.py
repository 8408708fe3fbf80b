"""assistant/server/process.py: the one helper that starts a server child for tests, scripts and benchmarks."""

from __future__ import annotations

import signal
import sys

import httpx
import pytest

from assistant.server.process import ServerError, ServerProcess, child_env, free_port
from assistant.settings import offline_env

from .app_process import ROOT, index_dir_with_model

# A stand-in server: answers /healthz on the port given as argv[1]; prints "bye" on SIGTERM.
HEALTH_SERVER = """
import http.server, signal, sys

def bye(*_):
    print("bye", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, bye)

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
    def log_message(self, *a):
        pass

print("listening", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_offline_env_keeps_hugging_face_offline_and_quiet():
    env = offline_env()
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["GRADIO_ANALYTICS_ENABLED"] == "False" and env["TOKENIZERS_PARALLELISM"] == "false"
    assert offline_env() is not offline_env()  # a fresh dict: callers may change theirs


def test_child_env_drops_assistant_settings_but_keeps_the_model_cache_and_query_threads():
    base = {"PATH": "/bin", "ASSISTANT_USER": "x", "ASSISTANT_MODEL_CACHE": "/tmp/mc", "HF_HUB_OFFLINE": "0",
            "ASSISTANT_QUERY_THREADS": "1"}  # fmt: skip
    env = child_env(base, ASSISTANT_RATE_LIMIT="off")
    assert env == {"PATH": "/bin", "ASSISTANT_MODEL_CACHE": "/tmp/mc", "ASSISTANT_QUERY_THREADS": "1", **offline_env(),
                   "ASSISTANT_RATE_LIMIT": "off"}  # fmt: skip


def test_a_server_that_exits_before_it_is_ready_is_an_error_with_its_output():
    with pytest.raises(ServerError, match=r"exited with 3 before it was ready:\nno corpus here"):
        ServerProcess([sys.executable, "-c", "print('no corpus here'); raise SystemExit(3)"])


def test_a_server_never_ready_is_stopped_and_reported():
    with pytest.raises(ServerError, match=r"was not ready after 1s:\nstarting"):
        ServerProcess([sys.executable, "-c", "import time; print('starting', flush=True); time.sleep(600)"],
                      ready_timeout_s=1)


def test_bad_timeout_is_refused_before_starting_anything():
    with pytest.raises(ValueError, match="ready_timeout_s must be > 0, got 0"):
        ServerProcess([sys.executable, "-c", "pass"], ready_timeout_s=0)


def test_a_server_with_a_known_url_is_ready_when_healthz_answers(tmp_path):
    port = free_port()
    log_path = tmp_path / "server.log"
    server = ServerProcess([sys.executable, "-c", HEALTH_SERVER, str(port)], url=f"http://127.0.0.1:{port}",
                           log_path=log_path)
    with server:
        assert server.url == f"http://127.0.0.1:{port}/"
        assert httpx.get(server.url + "healthz").status_code == 200
    assert server.proc.returncode == 0  # SIGTERM let it say goodbye and exit cleanly
    assert server.log() == "listening\nbye\n"
    assert log_path.read_text() == "listening\nbye\n"


def test_a_server_that_ignores_the_stop_signal_is_killed():
    port = free_port()
    stubborn = HEALTH_SERVER.replace("signal.signal(signal.SIGTERM, bye)", "signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    server = ServerProcess([sys.executable, "-c", stubborn, str(port)], url=f"http://127.0.0.1:{port}/",
                           stop_timeout_s=1)
    server.stop()
    assert server.proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_the_real_assistant_server_starts_answers_and_stops(tmp_path, model_cache):
    index_dir = index_dir_with_model(tmp_path / "index", model_cache, seeded=True)
    with ServerProcess.assistant(
        "--index-dir", str(index_dir), "--data-dir", str(tmp_path / "data"), "--verifier", "none", cwd=ROOT,
    ) as server:
        assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/")
        assert httpx.get(server.url + "healthz", timeout=30).json()["status"] == "ok"
        body = httpx.post(server.url + "api/ask", json={"question": "Can I cancel my order?"}, timeout=60).json()
        assert body["answer"]
    assert server.proc.returncode is not None
    log = server.log()
    assert "index: " in log and "ready in" in log
