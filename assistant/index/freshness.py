"""Whether the corpus files changed since the index was built: one cheap check for the index and the server.

A ``stat`` of each file per check; the files are hashed (:func:`fingerprint_files`) only when
one was added, removed or touched since they were last hashed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from assistant.core.corpus import fingerprint_files, resolve_files
from assistant.errors import CorpusError

# A file modified this close to the last look may change again within the same timestamp tick
# without its size or mtime changing (git's "racy" files), so it is hashed, not trusted.
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class CorpusState:
    """The corpus fingerprint and, per file, the (resolved path, size, mtime) it was taken at."""

    fingerprint: str
    files: tuple[tuple[str, int, int], ...]
    checked_ns: int  # when the files were last hashed

    @classmethod
    def from_manifest(cls, manifest: dict) -> "CorpusState | None":
        """The state an index manifest recorded (``corpus_fingerprint``, ``files``, ``files_checked_ns``)."""
        if not manifest.get("corpus_fingerprint"):
            return None
        files = tuple(tuple(x) for x in manifest.get("files", ()))
        return cls(manifest["corpus_fingerprint"], files, int(manifest.get("files_checked_ns", 0)))

    def to_manifest(self) -> dict:
        return {"corpus_fingerprint": self.fingerprint, "files": [list(x) for x in self.files],
                "files_checked_ns": self.checked_ns}


def file_stats(files: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """(resolved path, size, mtime_ns) of each file."""
    out = []
    for f in files:
        try:
            st = f.stat()
        except OSError as exc:
            raise CorpusError(f"cannot read the corpus file {f}: {exc.strerror}") from None
        out.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
    return tuple(out)


def corpus_state(files: list[Path], previous: CorpusState | None = None) -> CorpusState:
    """The corpus state now: ``previous`` itself when no file changed size or mtime, else hashed again.

    Like git's index, a file whose mtime is within RACY_NS of the previous hashing might have
    changed again within the same timestamp tick, so such files are always hashed.
    """
    checked_ns = time.time_ns()
    stats = file_stats(files)
    if previous is not None and previous.files == stats and all(m < previous.checked_ns - RACY_NS for _, _, m in stats):
        return previous
    return CorpusState(fingerprint_files(files), stats, checked_ns)


class CorpusWatch:
    """The corpus fingerprint, recomputed cheaply: a ``stat`` of each file per call, and the
    (hashing) :func:`fingerprint_files` only when a file was added, removed or touched."""

    def __init__(self, corpus: list[str | Path], state: CorpusState | None = None) -> None:
        self.corpus = list(corpus)
        self.state = state
        self.hashes = 0  # how many times the files were actually hashed (for tests and stats)

    def fingerprint(self) -> str:
        """The fingerprint of the corpus as it is now on disk.

        Raises:
            CorpusError: a corpus path disappeared or a folder no longer holds supported files.
        """
        state = corpus_state(resolve_files(self.corpus), self.state)
        if state is not self.state:
            self.hashes += 1
            self.state = state
        return state.fingerprint


class FileWatch:
    """The content hash of one optional file (the confirmed links), recomputed as cheaply as the
    corpus's: a ``stat`` per call, hashing only when the file changed; ``"none"`` while it is absent."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.state: CorpusState | None = None

    def fingerprint(self) -> str:
        if not self.path.is_file():
            self.state = None
            return "none"
        self.state = corpus_state([self.path], self.state)
        return self.state.fingerprint
