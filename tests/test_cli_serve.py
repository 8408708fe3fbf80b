"""Unit tests for assistant/cli/serve.py: the rate limit, the login rule, the listening socket and the
checks `assistant serve` makes before loading anything. No server is started here (test_api.py,
test_browser.py and test_load.py do that)."""

from __future__ import annotations

import socket

import pytest

from assistant.cli.main import main
from assistant.cli.serve import (
    bind_socket,
    is_loopback,
    parse_rate_limit,
    resolve_login,
)
from assistant.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "per_minute"),
    [
        ("120/min", 120.0), ("5/s", 300.0), ("2000/h", pytest.approx(2000 / 60)), (" 1.5 / second ", 90.0),
        ("10/M", 10.0), ("3/HOUR", pytest.approx(0.05)), ("7/sec", 420.0), ("60/minute", 60.0),
        ("off", None), ("OFF", None), (" none ", None), ("0", None),
    ],
)  # fmt: skip
def test_parse_rate_limit(text, per_minute):
    assert parse_rate_limit(text) == per_minute


@pytest.mark.parametrize("text", ["120", "fast", "0/min", "-5/s", "5/day", "/min", "5 per min", "", "1e3/min"])
def test_parse_rate_limit_rejects(text):
    with pytest.raises(ConfigError, match=rf"--rate-limit must look like 120/min, 5/s, 2000/h or off, got {text!r}"):
        parse_rate_limit(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True), ("LOCALHOST", True),
        ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("example.com", False), ("", False),
    ],
)  # fmt: skip
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("user", "password", "host", "login"),
    [
        (None, None, "127.0.0.1", None),
        ("staff", "secret", "127.0.0.1", ("staff", "secret")),
        ("staff", "long-staff-secret", "0.0.0.0", ("staff", "long-staff-secret")),
    ],
)
def test_resolve_login(user, password, host, login):
    assert resolve_login(user, password, host) == login


@pytest.mark.parametrize(
    ("user", "password", "host", "message"),
    [
        ("staff", None, "127.0.0.1", r"a staff login needs both a user and a password; the password is missing"),
        (None, "secret", "127.0.0.1", r"a staff login needs both a user and a password; the user is missing"),
        ("", "secret", "127.0.0.1", r"the user is missing"),
        (None, None, "0.0.0.0", r"refusing to listen on 0\.0\.0\.0 without a staff login"),
        (None, None, "shop.example", r"refusing to listen on shop\.example without a staff login"),
    ],
)
def test_resolve_login_rejects(user, password, host, message):
    with pytest.raises(ConfigError, match=message):
        resolve_login(user, password, host)


def test_bind_socket_binds_without_listening():
    sock = bind_socket("127.0.0.1", 0)
    try:
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0 and sock.get_inheritable()
        with pytest.raises(OSError):  # bound, not listening: nothing accepts a connection yet
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        sock.close()


def test_bind_socket_of_a_busy_port_fails_before_the_model_loads():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"^cannot listen on 127\.0\.0\.1:{port}: Address already in use$"):
            bind_socket("127.0.0.1", port)


@pytest.mark.parametrize("port", [-1, 65536])
def test_bind_socket_rejects_a_bad_port(port):
    with pytest.raises(ConfigError, match=rf"--port must be between 0 and 65535, got {port}"):
        bind_socket("127.0.0.1", port)


def test_bind_socket_rejects_an_unresolvable_host():
    with pytest.raises(ConfigError, match=r"--host no\.such\.host\.invalid: cannot resolve it"):
        bind_socket("no.such.host.invalid", 0)


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("ASSISTANT_USER", "ASSISTANT_PASSWORD", "ASSISTANT_RATE_LIMIT", "ASSISTANT_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--host", "0.0.0.0"], {}, "error: refusing to listen on 0.0.0.0 without a staff login"),
        (["--user", "staff"], {}, "error: a staff login needs both a user and a password; the password is missing"),
        ([], {"ASSISTANT_USER": "staff"}, "error: a staff login needs both a user and a password; the password is missing"),
        (["--rate-limit", "lots"], {}, "error: --rate-limit must look like 120/min, 5/s, 2000/h or off, got 'lots'"),
        ([], {"ASSISTANT_RATE_LIMIT": "9/week"}, "error: --rate-limit must look like 120/min, 5/s, 2000/h or off, got '9/week'"),
        (["--port", "70000"], {}, "error: --port must be between 0 and 65535, got 70000"),
    ],
)
def test_serve_checks_its_options_before_loading_anything(
    tiny_corpus, tmp_path, fake_model, clean_env, monkeypatch, capsys, args, env, message
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    argv = ["serve", "--corpus", str(tiny_corpus), "--index-dir", str(tmp_path / "idx"), "--data-dir", str(tmp_path / "data"), *args]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().startswith(message)
    assert fake_model == [] and not (tmp_path / "data").exists()


def test_serve_parser_defaults():
    from assistant.cli.main import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.data_dir, args.user, args.password, args.rate_limit) == ("127.0.0.1", 7860, None, None, None, None)
