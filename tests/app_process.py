"""Run the real server (``python app.py``) or CLI as a child process, for the fault and security tests.

A thin layer over ``assistant.server.process`` (the one server spawner of the tests, scripts
and benchmarks) that keeps the tests' names and habits: ``app.py`` as the entry point, Ctrl-C
to stop, the session's model exports linked into index folders.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

from assistant.models.onnx import MODEL_CACHE
from assistant.server.process import READY_RE, Lines, ServerProcess
from assistant.server.process import child_env as _child_env

ROOT = Path(__file__).resolve().parent.parent
__all__ = ["READY_RE", "ROOT", "SEED_INDEX", "AppProcess", "Lines", "child_env", "copy_seed_corpus", "index_dir_with_model"]


def child_env(**extra: str) -> dict[str, str]:
    """The test process's environment without ASSISTANT_* settings, offline, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GRADIO_TEMP_DIR")}
    return _child_env(base, **extra)


# `make test` indexes the bundled corpus here before pytest runs (exporting MiniLM into its models/).
SEED_INDEX = ROOT / ".cache" / "seed-index"


def index_dir_with_model(path: Path, model_cache: Path, *, seeded: bool = False) -> Path:
    """An index folder whose model exports are the session's (so a child skips the ONNX export).

    ``seeded``: start from a copy of `make test`'s index of the bundled corpus (where there is
    one), for a child that serves the bundled corpus and is not itself testing the build; the
    child still checks it against the corpus and rebuilds it if they differ."""
    path.mkdir(parents=True, exist_ok=True)
    if seeded and SEED_INDEX.is_dir():
        shutil.copytree(SEED_INDEX, path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(MODEL_CACHE))
    (path / MODEL_CACHE).symlink_to(model_cache, target_is_directory=True)
    return path


def copy_seed_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "corpus" / "coco-jewelry-faq.txt", folder / "coco-jewelry-faq.txt")
    return folder


class AppProcess(ServerProcess):
    """``python app.py --port 0 ...`` as a child; ``url`` once it says it is ready; stopped with Ctrl-C."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, ready_timeout_s: float = 240, prefix: list[str] | None = None
    ) -> None:
        # ``prefix`` runs it through another command (e.g. in a mount namespace).
        super().__init__(
            [*(prefix or []), sys.executable, "app.py", "--port", "0", *args], env=env or child_env(), cwd=ROOT,
            ready_timeout_s=ready_timeout_s, stop_signal=signal.SIGINT,
        )
