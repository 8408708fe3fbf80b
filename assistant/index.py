"""The FAISS index of passage vectors, saved with a manifest; rebuilt when corpus or model change.

Each passage is embedded as several *units*: for FAQ rows its question and question + answer;
for plain-text sections the section title + passage; and every sentence (title-prefixed),
which both lets a passage that mixes topics match on its best sentence and lets the answer
builder pick the sentences that answer the question.

On disk an index folder holds ``CURRENT`` (the name of the live version) and one folder per
version with ``manifest.json`` and ``index.faiss``. A new version is written completely
before ``CURRENT`` is atomically replaced, so a crash mid-build leaves the old index usable.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .corpus import fingerprint_files, load_corpus, resolve_files
from .embeddings import Encoder
from .errors import IndexError_
from .schema import Passage
from .sentences import sentence_spans

FORMAT_VERSION = 2
UNIT_KINDS = ("title", "full", "sentence")


@dataclass(frozen=True)
class Unit:
    """One embedded piece of a passage: its kind and character span inside passage.text."""

    passage: int  # index into Index.passages
    kind: str  # "title" | "full" | "sentence"
    start: int = 0
    end: int = 0


def unit_text(p: Passage, u: Unit) -> str:
    if u.kind == "title":
        return p.title
    if u.kind == "full":
        return f"{p.title}\n{p.text}" if p.title and p.title != p.doc_id else p.text
    sentence = p.text[u.start : u.end]
    return f"{p.title}: {sentence}" if p.kind == "section" and p.title != p.doc_id else sentence


def make_units(passages: list[Passage]) -> list[Unit]:
    units: list[Unit] = []
    for i, p in enumerate(passages):
        if p.kind == "faq" and p.title:
            units.append(Unit(i, "title"))
        units.append(Unit(i, "full"))
        for s, e in sentence_spans(p.text):
            units.append(Unit(i, "sentence", s, e))
    return units


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass
class BuildStats:
    passages: int
    units: int
    embedded: int  # units actually run through the model (the rest came from the cache)
    seconds: float
    rebuilt: bool
    reason: str


class Index:
    """Passages, their embedded units, and a FAISS inner-product index over the units."""

    def __init__(self, passages: list[Passage], units: list[Unit], vectors: np.ndarray, manifest: dict) -> None:
        import faiss

        self.passages = passages
        self.units = units
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.manifest = manifest
        self.unit_passage = np.array([u.passage for u in units], dtype=np.int64)
        self.unit_kind = np.array([UNIT_KINDS.index(u.kind) for u in units], dtype=np.int8)
        self.faiss = faiss.IndexFlatIP(self.vectors.shape[1])
        self.faiss.add(self.vectors)
        self.by_id = {p.id: i for i, p in enumerate(passages)}
        self.passage_units: list[list[int]] = [[] for _ in passages]
        for j, u in enumerate(units):
            self.passage_units[u.passage].append(j)

    # --- queries ---

    def unit_scores(self, qvec: np.ndarray) -> np.ndarray:
        """Cosine of the query with every unit (exact; the corpora here are small)."""
        return self.vectors @ qvec.astype(np.float32)

    def search_units(self, qvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.faiss.search(qvec.reshape(1, -1).astype(np.float32), min(k, len(self.units)))
        return scores[0], ids[0]

    # --- persistence ---

    def save(self, index_dir: Path) -> Path:
        """Write a new version folder, then atomically point ``CURRENT`` at it."""
        import faiss

        index_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=index_dir))
        try:
            faiss.write_index(self.faiss, str(tmp / "index.faiss"))
            manifest = dict(self.manifest)
            manifest["checksums"] = {"index.faiss": _file_sha256(tmp / "index.faiss")}
            (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
            _fsync_dir_files(tmp)
            version = f"v-{int(time.time() * 1000)}-{manifest['corpus_fingerprint'][:8]}"
            final = index_dir / version
            os.replace(tmp, final)
            cur_tmp = index_dir / f".CURRENT.{os.getpid()}"
            cur_tmp.write_text(version)
            os.replace(cur_tmp, index_dir / "CURRENT")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in index_dir.iterdir():  # drop superseded versions and abandoned builds
            if old.is_dir() and old.name != version and (old.name.startswith("v-") or old.name.startswith(".build-")):
                if old.name.startswith(".build-") and time.time() - old.stat().st_mtime < 3600:
                    continue  # maybe another process is building right now
                shutil.rmtree(old, ignore_errors=True)
        self.manifest = manifest
        return final

    @classmethod
    def load(cls, index_dir: Path, *, verify: bool = True) -> "Index":
        """Load the live version of an index folder; a damaged one raises IndexError_."""
        import faiss

        cur = index_dir / "CURRENT"
        if not cur.is_file():
            raise IndexError_(f"no index in {index_dir} (run `assistant index`)")
        folder = index_dir / cur.read_text().strip()
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise IndexError_(f"index manifest in {folder} is unreadable: {exc}") from None
        if manifest.get("format") != FORMAT_VERSION:
            raise IndexError_(f"index in {folder} has format {manifest.get('format')}, expected {FORMAT_VERSION}")
        faiss_path = folder / "index.faiss"
        if verify:
            want = manifest.get("checksums", {}).get("index.faiss")
            if not faiss_path.is_file() or _file_sha256(faiss_path) != want:
                raise IndexError_(f"index file {faiss_path} is missing or corrupted (checksum mismatch)")
        try:
            fi = faiss.read_index(str(faiss_path))
            vectors = fi.reconstruct_n(0, fi.ntotal)
        except Exception as exc:  # faiss raises RuntimeError with C++ text
            raise IndexError_(f"index file {faiss_path} cannot be read: {exc}") from None
        passages = [Passage(**p) for p in manifest["passages"]]
        units = [Unit(*u) for u in manifest["units"]]
        if len(units) != vectors.shape[0]:
            raise IndexError_(f"index in {folder} is inconsistent: {len(units)} units, {vectors.shape[0]} vectors")
        return cls(passages, units, vectors, manifest)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir_files(folder: Path) -> None:
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def build_index(
    passages: list[Passage],
    encoder: Encoder,
    *,
    corpus_fingerprint: str,
    previous: Index | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 64,
) -> tuple[Index, int]:
    """Embed every unit (reusing vectors of unchanged texts from ``previous``) and build an Index.

    Returns the index and the number of units that had to be embedded.
    """
    units = make_units(passages)
    texts = [unit_text(passages[u.passage], u) for u in units]
    hashes = [_hash(t) for t in texts]
    vectors = np.zeros((len(units), encoder.dim), dtype=np.float32)
    cached: dict[str, np.ndarray] = {}
    if previous is not None and previous.manifest.get("model_fingerprint") == encoder.fingerprint:
        for h, j in zip(previous.manifest.get("unit_hashes", []), range(len(previous.units))):
            cached[h] = previous.vectors[j]
    todo = [j for j, h in enumerate(hashes) if h not in cached]
    for j, h in enumerate(hashes):
        if h in cached:
            vectors[j] = cached[h]
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        vectors[batch] = encoder.encode([texts[j] for j in batch], batch_size=batch_size)
        if progress:
            progress(len(batch))
    manifest = {
        "format": FORMAT_VERSION,
        "model": encoder.name,
        "model_fingerprint": encoder.fingerprint,
        "dimension": int(encoder.dim),
        "metric": "inner_product",
        "normalized": True,
        "corpus_fingerprint": corpus_fingerprint,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "passages": [asdict(p) for p in passages],
        "units": [[u.passage, u.kind, u.start, u.end] for u in units],
        "unit_hashes": hashes,
    }
    return Index(passages, units, vectors, manifest), len(todo)


def open_index(
    corpus: list[str | Path],
    index_dir: str | Path,
    encoder: Encoder,
    *,
    rebuild: bool = False,
    progress_factory: Callable[[int], Callable[[int], None]] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Index, BuildStats]:
    """Load the index for ``corpus`` from ``index_dir``, (re)building it if it is stale.

    The index is stale when the corpus files' fingerprint or the model fingerprint differ
    from its manifest; a stale index is never returned.
    """
    t0 = time.perf_counter()
    index_dir = Path(index_dir)
    files = resolve_files(corpus)
    fingerprint = fingerprint_files(files)
    previous: Index | None = None
    reason = "forced rebuild" if rebuild else ""
    try:
        previous = Index.load(index_dir)
    except IndexError_ as exc:
        if (index_dir / "CURRENT").exists():
            reason = reason or f"existing index unusable ({exc})"
            if log:
                log(f"index: {exc}; rebuilding")
        else:
            reason = reason or "no index yet"
    if previous is not None and not rebuild:
        m = previous.manifest
        if m.get("model_fingerprint") != encoder.fingerprint:
            reason = f"model changed ({m.get('model')} -> {encoder.name})"
        elif m.get("corpus_fingerprint") != fingerprint:
            reason = "corpus changed"
        else:
            stats = BuildStats(len(previous.passages), len(previous.units), 0, time.perf_counter() - t0, False, "up to date")
            return previous, stats
    passages = load_corpus(files)
    if log:
        log(f"index: building ({reason}) for {len(passages)} passages from {len(files)} file(s)")
    n_units = len(make_units(passages))
    progress = progress_factory(n_units) if progress_factory else None
    index, embedded = build_index(passages, encoder, corpus_fingerprint=fingerprint, previous=previous, progress=progress)
    index.save(index_dir)
    stats = BuildStats(len(passages), len(index.units), embedded, time.perf_counter() - t0, True, reason)
    return index, stats
