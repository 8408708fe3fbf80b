"""The index folder: what lives where, and the versions inside it, each sealed by SHA-256.

One object, :class:`IndexLayout`, names every path in an index folder::

    <index-dir>/
        CURRENT            the name of the live version
        v-<time>-<sha256>/ one folder per version: manifest.json, units.npy, hashes.npy,
                           vectors.npy, ann.faiss (large corpora), checksums.json
        models/            the encoder's ONNX exports (assistant.models.onnx)
        verifier/          the verifier's own index folder, laid out the same way
        calibration.json   the fitted refusal model (assistant.core.refusal)

``checksums.json`` holds the size and SHA-256 of every other file of its version, the
manifest (with the passages' text) included, and the version's name ends in the SHA-256 of
``checksums.json``: an edit to any file of a version, however small, is caught on open.
What open re-reads: the manifest and ``units.npy`` always in full (they carry every word an
answer can quote); the other files in full up to ``FULL_HASH_BYTES``, and above it (the
vectors of a very large corpus) their size plus the SHA-256 of their first and last MiB, so
that opening a million-vector index stays well under a second. A vector file altered in its
middle can change rankings, never the quoted text.

A new version is written completely (and fsynced) before ``CURRENT`` is atomically
replaced, so a crash mid-build leaves the old index usable.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from assistant.errors import IndexError_
from assistant.integrity import sha256_file

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
CHECKSUMS = "checksums.json"
MODELS_DIR = "models"
VERIFIER_DIR = "verifier"
CALIBRATION_FILE = "calibration.json"
FULL_HASH_BYTES = 64 << 20  # files up to this size are hashed whole on every open (~80 ms at the limit)
SAMPLE_BYTES = 1 << 20  # above it: the first and last MiB
ALWAYS_FULL = (MANIFEST, "units.npy")  # the text and the unit spans an answer quotes from
POINTER_RE = re.compile(r"v-\d+-([0-9a-f]{64})")  # a version: its time and the SHA-256 of its checksums.json
OLD_VERSION_RE = re.compile(r"v-\d+-[0-9a-f]{8}")  # format 3 (CRC-32s inside the manifest)
STALE_BUILD_S = 3600  # an unfinished .build-* folder younger than this may be another process's


def _fsync_files(folder: Path) -> None:
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


class IndexLayout:
    """The paths of one index folder and the verbs that read and publish its versions."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def current(self) -> Path:
        return self.root / CURRENT

    @property
    def models(self) -> Path:
        """Where the encoder's ONNX exports are kept."""
        return self.root / MODELS_DIR

    @property
    def verifier(self) -> Path:
        """The verifier's index folder (an index folder itself)."""
        return self.root / VERIFIER_DIR

    def verifier_folder(self, name: str = VERIFIER_DIR) -> Path:
        """The index folder of one verifier variant (``verifier``, ``verifier-int8``)."""
        if not name.startswith(VERIFIER_DIR):
            raise ValueError(f"a verifier folder's name starts with {VERIFIER_DIR!r}, got {name!r}")
        return self.root / name

    @property
    def calibration(self) -> Path:
        return self.root / CALIBRATION_FILE

    def exists(self) -> bool:
        """Whether an index was ever published here (a damaged one counts)."""
        return self.current.exists()

    # --- reading ---

    def live(self) -> tuple[Path, str]:
        """The live version folder and the SHA-256 its checksums.json must have.

        Raises:
            IndexError_: no index, or ``CURRENT`` is not a pointer this code wrote.
        """
        if not self.current.is_file():
            raise IndexError_(f"no index in {self.root} (run `assistant index`)")
        try:
            raw = self.current.read_bytes()[:512].decode("ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise IndexError_(f"index pointer {self.current} is unreadable ({exc})") from None
        m = POINTER_RE.fullmatch(raw)
        if m is None:
            if OLD_VERSION_RE.fullmatch(raw) and (self.root / raw).is_dir():
                raise IndexError_(f"index in {self.root / raw} predates SHA-256 checksums")
            shown = raw[:60] + ("..." if len(raw) > 60 else "")
            raise IndexError_(f"index pointer {self.current} is damaged (it reads {shown!r})")
        folder = self.root / raw
        if not folder.is_dir():
            raise IndexError_(f"index version {folder} is unreadable (missing)")
        return folder, m.group(1)

    def legacy(self) -> Path | None:
        """The live version folder of an index written before the checksums (format 3), or None."""
        try:
            raw = self.current.read_bytes()[:512].decode("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        folder = self.root / raw
        return folder if OLD_VERSION_RE.fullmatch(raw) and folder.is_dir() else None

    def verify(self, folder: Path, digest: str) -> dict[str, dict]:
        """Check every file of a version against its checksums; returns the checksums' file table.

        Raises:
            IndexError_: naming the first file that is missing, altered or unexpected.
        """
        sums = folder / CHECKSUMS
        try:
            data = sums.read_bytes()
        except OSError:
            raise IndexError_(f"index file {sums} is missing or corrupted (checksum mismatch)") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise IndexError_(f"index file {sums} is missing or corrupted (checksum mismatch)")
        files = json.loads(data)["files"]
        for name, want in files.items():
            path = folder / name
            try:
                size = path.stat().st_size
                ok = size == want["size"]
                if ok and (size <= FULL_HASH_BYTES or name in ALWAYS_FULL):
                    ok = sha256_file(path) == want["sha256"]
                elif ok:
                    ok = sha256_file(path, sample=SAMPLE_BYTES) == want["sample_sha256"]
            except OSError:
                ok = False
            if not ok:
                raise IndexError_(f"index file {path} is missing or corrupted (checksum mismatch)")
        return files

    # --- writing ---

    def new_build(self) -> Path:
        """A fresh hidden folder to write a version into (publish or remove it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".build-", dir=self.root))

    def publish(self, build: Path) -> Path:
        """Seal ``build`` with checksums, move it into place and make it the live version."""
        files: dict[str, dict] = {}
        for f in sorted(build.iterdir()):
            entry = {"size": f.stat().st_size, "sha256": sha256_file(f)}
            if entry["size"] > FULL_HASH_BYTES:
                entry["sample_sha256"] = sha256_file(f, sample=SAMPLE_BYTES)
            files[f.name] = entry
        data = json.dumps({"algorithm": "sha256", "files": files}, indent=1).encode()
        (build / CHECKSUMS).write_bytes(data)
        _fsync_files(build)
        version = f"v-{time.time_ns() // 1000}-{hashlib.sha256(data).hexdigest()}"
        final = self.root / version
        os.replace(build, final)
        cur_tmp = self.root / f".CURRENT.{os.getpid()}"
        cur_tmp.write_text(version)
        with open(cur_tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(cur_tmp, self.current)
        self.prune(keep=version)
        return final

    def prune(self, *, keep: str) -> None:
        """Drop superseded versions and abandoned builds."""
        for old in self.root.iterdir():
            if not old.is_dir() or old.name == keep:
                continue
            if old.name.startswith(".build-") and time.time() - old.stat().st_mtime < STALE_BUILD_S:
                continue  # maybe another process is building right now
            if old.name.startswith(("v-", ".build-")):
                shutil.rmtree(old, ignore_errors=True)
