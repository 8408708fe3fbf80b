"""Run the real server (``python app.py``) or CLI as a child process, for the fault and security tests."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from assistant.models.embeddings import MODEL_CACHE

ROOT = Path(__file__).resolve().parent.parent
READY_RE = r"ready in [\d.]+s: open (http://127\.0\.0\.1:\d+/)"


def child_env(**extra: str) -> dict[str, str]:
    """The test process's environment without ASSISTANT_* settings (but the run's model cache), offline, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "GRADIO_TEMP_DIR")) or k == "ASSISTANT_MODEL_CACHE"}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_DISABLE_PROGRESS_BARS="1", **extra)
    return env


def index_dir_with_model(path: Path, model_cache: Path) -> Path:
    """An index folder whose model exports are the session's (so a child skips the ONNX export)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / MODEL_CACHE).symlink_to(model_cache, target_is_directory=True)
    return path


def copy_seed_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "corpus" / "coco-jewelry-faq.txt", folder / "coco-jewelry-faq.txt")
    return folder


class Lines:
    """Collect a child's output lines on a thread, so waiting for one can time out."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._q.put(line)
        self._q.put(None)

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line matching {pattern!r} within {timeout_s}s; got:\n{''.join(self.lines)}")

    def drain(self, timeout_s: float = 5.0) -> str:
        """Everything printed so far (after the child ended: everything it printed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
        return "".join(self.lines)


class AppProcess:
    """``python app.py --port 0 ...`` as a child; ``url`` once it says it is ready."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, ready_timeout_s: float = 240) -> None:
        # The server logs (and would print any traceback) on stderr; stdout carries nothing.
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "--port", "0", *args], cwd=ROOT, env=env or child_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.out = Lines(self.proc.stderr)
        try:
            self.url = self.out.wait_for(READY_RE, ready_timeout_s).group(1)
        except BaseException:
            self.kill()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        """Ctrl-C, then SIGKILL if it does not end within 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.out.drain()

    def __enter__(self) -> "AppProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
