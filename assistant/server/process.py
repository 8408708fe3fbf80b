"""Start the assistant's server (or another HTTP server) as a child process on loopback.

One helper for the tests, the scripts and the benchmarks: ``ServerProcess`` starts the
command, collects its output lines on a thread, waits until it is ready (its "ready in ...:
open URL" line, or ``/healthz`` answering 200 where the URL is known beforehand), exposes
``url``, and stops it with a signal, then SIGKILL.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from assistant.settings import offline_env

READY_RE = r"ready in [\d.]+s: open (http://127\.0\.0\.1:\d+/)"
# Kept in a child's environment: where the models are cached is not a setting of the server
# (a child without it would unpack the verifier again under ~/.cache), nor is how many of the
# host's cores a question may use.
KEEP = ("ASSISTANT_MODEL_CACHE", "ASSISTANT_QUERY_THREADS")


class ServerError(RuntimeError):
    """A server child that exited or did not become ready in time; the message holds its output."""


def child_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``base`` (default: this process's environment) without ASSISTANT_* settings (but KEEP), offline, plus ``extra``."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith("ASSISTANT_") or k in KEEP}
    env.update(offline_env())
    env.update(extra)
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (for servers that cannot be told ``--port 0``)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Lines:
    """Collect a child's output lines on a thread, so waiting for one can time out."""

    def __init__(self, stream: IO[str], *, log: IO[str] | None = None) -> None:
        self.lines: list[str] = []
        self._log = log
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            if self._log is not None and not self._log.closed:
                self._log.write(line)
                self._log.flush()
            self._q.put(line)
        self._q.put(None)

    def next_line(self, timeout_s: float) -> str | None:
        """The next line (also kept in ``lines``); None at the end of the output; queue.Empty on timeout."""
        line = self._q.get(timeout=max(0.0, timeout_s))
        if line is not None:
            self.lines.append(line)
        else:
            self._q.put(None)  # the end stays visible to every later reader
        return line

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match:
        """The first new line matching ``pattern``; TimeoutError (with the output so far) otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.next_line(deadline - time.monotonic())
            except queue.Empty:
                break
            if line is None:
                break
            if m := re.search(pattern, line):
                return m
        raise TimeoutError(f"no line matching {pattern!r} within {timeout_s}s; got:\n{''.join(self.lines)}")

    def drain(self, timeout_s: float = 5.0) -> str:
        """Everything printed so far (after the child ended: everything it printed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.next_line(0.1)
            except queue.Empty:
                continue
            if line is None:
                break
        return "".join(self.lines)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


class ServerProcess:
    """A server child process; ``url`` once it is ready. Use as a context manager.

    Args:
        command: the full command line; ``ServerProcess.assistant(...)`` builds
            ``python -m assistant serve --port 0 ...`` for you.
        url: where the server will listen, when the command fixes the port; readiness is then
            also ``/healthz`` answering 200. Without it the "ready in ...: open URL" line the
            assistant prints on start gives the URL (so do not pass ``-q``).
        env: the child's environment (default ``child_env()``).
        cwd: the child's working folder (default: this process's).
        ready_timeout_s: how long to wait for readiness before stopping it with ServerError.
        stop_signal: what ``stop`` sends first (SIGTERM; SIGINT is Ctrl-C); SIGKILL follows
            when the child is still running ``stop_timeout_s`` later.
        log_path: a file that also receives every output line (stdout and stderr, merged).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        ready_timeout_s: float = 300.0,
        stop_signal: int = signal.SIGTERM,
        stop_timeout_s: float = 30.0,
        log_path: str | Path | None = None,
    ) -> None:
        if ready_timeout_s <= 0:
            raise ValueError(f"ready_timeout_s must be > 0, got {ready_timeout_s}")
        self.command = list(command)
        self.stop_signal = stop_signal
        self.stop_timeout_s = stop_timeout_s
        self._log = Path(log_path).open("w", encoding="utf-8") if log_path else None
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command, cwd=cwd, env=dict(env) if env is not None else child_env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.out = Lines(self.proc.stdout, log=self._log)
        try:
            self.url = self._wait_ready(url, ready_timeout_s)
        except BaseException:
            self.kill()
            raise
        self.ready_s = time.perf_counter() - self.started

    @classmethod
    def assistant(cls, *args: str, entry: Sequence[str] | None = None, **kwargs) -> ServerProcess:
        """``python -m assistant serve --port 0 *args`` (or ``entry`` instead of ``-m assistant serve``)."""
        head = list(entry) if entry is not None else [sys.executable, "-m", "assistant", "serve"]
        return cls([*head, "--port", "0", *args], **kwargs)

    def _wait_ready(self, url: str | None, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        ended = False
        while time.monotonic() < deadline:
            if url is not None and _healthy(url):
                return url.rstrip("/") + "/"
            if ended or self.proc.poll() is not None:
                self.proc.wait()
                raise ServerError(
                    f"{self._name()} exited with {self.proc.returncode} before it was ready:\n{self.out.drain(2)}"
                )
            try:
                line = self.out.next_line(0.3)
            except queue.Empty:
                continue
            if line is None:
                ended = True
            elif m := re.search(READY_RE, line):
                return m.group(1)
        raise ServerError(f"{self._name()} was not ready after {timeout_s:g}s:\n{''.join(self.out.lines)}")

    def _name(self) -> str:
        return " ".join(self.command[1:4]) if len(self.command) > 1 else self.command[0]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self._close_log()

    def stop(self) -> None:
        """``stop_signal``, then SIGKILL if the child has not ended ``stop_timeout_s`` later."""
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None and self.proc.poll() is not None:
            self.out.drain(2)  # the pump thread writes the last lines before the file closes
            self._log.close()
            self._log = None

    def log(self) -> str:
        """Everything the child printed so far (after it ended: everything)."""
        return self.out.drain()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
