"""The vector index of passage units, saved with a manifest; refreshed when corpus or model change.

Each passage is embedded as several *units*: for FAQ rows its question and question + answer
(their answers' sentences are embedded lazily by the retriever when quoted); for plain-text
sections the section title + passage and every sentence (title-prefixed), which both lets a
passage that mixes topics match on its best sentence and lets the answer builder pick the
sentences that answer the question.

On disk an index folder holds ``CURRENT`` (the name of the live version) and one folder per
version: ``manifest.json`` (metadata and passages), ``units.npy`` (passage, kind, span of
every unit), ``hashes.npy`` (a content hash per unit, the embedding cache key),
``vectors.npy`` (float32, one L2-normalised row per unit) and, for large corpora only,
``ann.faiss``. A new version is written completely before ``CURRENT`` is atomically
replaced, so a crash mid-build leaves the old index usable.

Index types (see docs/performance.md for the measurements behind the choice):

- ``flat`` up to ``FLAT_LIMIT`` units: exact cosine with one numpy matrix-vector product
  (under ~5 ms at the limit) and no FAISS at all on the query path;
- ``ivf`` above it: FAISS ``IVF<nlist>,SQ8`` (k-means lists, 8-bit scalar-quantised codes,
  a quarter of the float memory) searched with ``nprobe`` lists, and its candidates
  re-scored exactly against the float vectors, which stay memory-mapped on disk. Lists are
  cheap to refill: a refresh reuses the trained centroids and only assigns vectors again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from assistant.core.corpus import fingerprint_files, load_corpus, resolve_files
from assistant.models.embeddings import Encoder
from assistant.errors import ConfigError, IndexError_
from assistant.schema import Passage
from assistant.core.sentences import sentence_spans

FORMAT_VERSION = 3
UNIT_KINDS = ("title", "full", "sentence")
HASH_BYTES = 16
FLAT_LIMIT = 50_000  # units; above this an IVF index is built
INDEX_TYPES = ("flat", "ivf")
MMAP_BYTES = 256 << 20  # vector files larger than this are memory-mapped, not read into RAM
RACY_NS = 2_000_000_000  # files modified this close to the last check are hashed, never trusted by stat
DATA_FILES = ("units.npy", "hashes.npy", "vectors.npy")


@dataclass(frozen=True)
class Unit:
    """One embedded piece of a passage: its kind and character span inside passage.text."""

    passage: int  # index into Index.passages
    kind: str  # "title" | "full" | "sentence"
    start: int = 0
    end: int = 0


class UnitTable(Sequence):
    """The units of an index as one int32 array (passage, kind, start, end); rows read as Unit."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.ascontiguousarray(table, dtype=np.int32).reshape(-1, 4)

    @classmethod
    def from_units(cls, units: list[Unit]) -> "UnitTable":
        rows = [(u.passage, UNIT_KINDS.index(u.kind), u.start, u.end) for u in units]
        return cls(np.array(rows, dtype=np.int32).reshape(-1, 4))

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(len(self)))]
        p, k, s, e = self.table[j].tolist()
        return Unit(p, UNIT_KINDS[k], s, e)


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
        # Plain-text passages often mix topics (a run of bullets), so each sentence is
        # indexed too. FAQ rows are matched on their question; their (often long) answers'
        # sentences are embedded lazily, only when a passage is quoted (Retriever.sentence_scores).
        if p.kind == "section":
            for s, e in sentence_spans(p.text):
                units.append(Unit(i, "sentence", s, e))
    return units


def text_hash(text: str) -> bytes:
    """The embedding-cache key of a unit text."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=HASH_BYTES).digest()


def choose_index_type(n_units: int, *, flat_limit: int = FLAT_LIMIT) -> str:
    """``flat`` (exact) up to ``flat_limit`` vectors, ``ivf`` above."""
    if n_units < 0:
        raise ConfigError(f"number of vectors must be >= 0, got {n_units}")
    return "flat" if n_units <= flat_limit else "ivf"


def ivf_nlist(n: int) -> int:
    """Number of IVF lists: about sqrt(n), a power of two, 256..16384 (1M vectors: 1024).

    FAISS suggests 4-16*sqrt(n) for the fastest search, but training k-means and assigning
    every vector cost proportionally more; on a small CPU sqrt(n) keeps a 1M build to
    seconds per 100k vectors while a query still scans only ~3% of the lists.
    """
    target = np.sqrt(max(n, 1))
    return int(min(16384, max(256, 2 ** round(np.log2(target)))))


def exact_search(vectors: np.ndarray, qvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``vectors`` with the highest inner product with ``qvec`` (scores, ids), best first."""
    scores = vectors @ qvec.astype(np.float32)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    top = top[np.argsort(-scores[top], kind="stable")]
    return scores[top], top


class VectorIndex:
    """Approximate top-k inner-product search over many vectors: FAISS IVF + SQ8, exact re-scoring.

    ``vectors`` (the float rows, usually memory-mapped) are kept by reference only; they are
    read just for the few candidates of each query.
    """

    def __init__(self, faiss_index, vectors: np.ndarray, *, nprobe: int = 32, refine: int = 2) -> None:
        self.faiss = faiss_index
        self.vectors = vectors
        self.nprobe = nprobe
        self.refine = refine
        self.faiss.nprobe = nprobe

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        *,
        previous: "VectorIndex | None" = None,
        nlist: int | None = None,
        train_size: int = 50_000,
        seed: int = 0,
        log: Callable[[str], None] | None = None,
    ) -> "VectorIndex":
        """Train (or reuse ``previous``'s trained centroids and codec) and fill the lists."""
        import faiss

        n, d = vectors.shape
        if previous is not None and previous.faiss.d == d and previous.faiss.is_trained:
            index = faiss.clone_index(previous.faiss)
            index.reset()  # keeps centroids and the SQ8 ranges, drops the lists
        else:
            nlist = nlist or ivf_nlist(n)
            index = faiss.index_factory(d, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = np.sort(rng.choice(n, size=min(n, max(train_size, 40 * nlist)), replace=False))
            if log:
                log(f"index: training IVF{nlist},SQ8 on {len(sample)} of {n} vectors")
            index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
        step = 200_000
        for start in range(0, n, step):  # in slices, so a memory-mapped array is never copied whole
            index.add(np.ascontiguousarray(vectors[start : start + step], dtype=np.float32))
            if log and n > step:
                log(f"index: added {min(n, start + step)}/{n} vectors")
        return cls(index, vectors)

    def search(self, qvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (exact cosine, ids) among the IVF's ``refine * k`` candidates."""
        q = np.ascontiguousarray(qvec.reshape(1, -1), dtype=np.float32)
        _, ids = self.faiss.search(q, max(k, self.refine * k))
        ids = ids[0][ids[0] >= 0]
        order = np.sort(ids)  # ascending rows read a memory map sequentially
        scores = np.asarray(self.vectors[order], dtype=np.float32) @ q[0]
        best = np.argsort(-scores, kind="stable")[:k]
        return scores[best], order[best]

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.faiss, str(path))

    @classmethod
    def load(cls, path: Path, vectors: np.ndarray) -> "VectorIndex":
        import faiss

        return cls(faiss.read_index(str(path)), vectors)


@dataclass
class BuildStats:
    passages: int
    units: int
    embedded: int  # units actually run through the model (the rest came from the cache)
    seconds: float
    rebuilt: bool
    reason: str


class Index:
    """Passages, their embedded units, and exact or approximate search over the unit vectors."""

    def __init__(
        self,
        passages: list[Passage],
        units: list[Unit] | UnitTable,
        vectors: np.ndarray,
        manifest: dict,
        *,
        hashes: np.ndarray | None = None,
        ann: VectorIndex | None = None,
    ) -> None:
        self.passages = passages
        self.units = units if isinstance(units, UnitTable) else UnitTable.from_units(units)
        if isinstance(vectors, np.memmap):
            self.vectors = vectors
        else:
            self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.manifest = manifest
        self.hashes = hashes
        self.ann = ann
        table = self.units.table
        self.unit_passage = table[:, 0].astype(np.int64)
        self.unit_kind = table[:, 1].astype(np.int8)
        self.by_id = {p.id: i for i, p in enumerate(passages)}
        # Units are stored grouped by passage, in passage order.
        bounds = np.searchsorted(self.unit_passage, np.arange(len(passages) + 1))
        self.passage_units: list[range] = [range(a, b) for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist())]

    @property
    def index_type(self) -> str:
        return "flat" if self.ann is None else "ivf"

    # --- queries ---

    def unit_scores(self, qvec: np.ndarray) -> np.ndarray:
        """Cosine of the query with every unit (exact)."""
        return self.vectors @ qvec.astype(np.float32)

    def search_units(self, qvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best units (cosines, row ids), best first: approximate on ``ivf`` indexes."""
        if k <= 0:
            raise ConfigError(f"k must be > 0, got {k}")
        k = min(k, len(self.units))
        if self.ann is not None:
            return self.ann.search(qvec, k)
        return exact_search(self.vectors, qvec, k)

    # --- persistence ---

    def save(self, index_dir: Path) -> Path:
        """Write a new version folder, then atomically point ``CURRENT`` at it."""
        index_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=index_dir))
        try:
            np.save(tmp / "units.npy", self.units.table)
            hashes = self.hashes if self.hashes is not None else np.zeros((len(self.units), HASH_BYTES), np.uint8)
            np.save(tmp / "hashes.npy", hashes)
            np.save(tmp / "vectors.npy", self.vectors)
            files = list(DATA_FILES)
            if self.ann is not None:
                self.ann.save(tmp / "ann.faiss")
                files.append("ann.faiss")
            manifest = dict(self.manifest)
            manifest["index_type"] = self.index_type
            manifest["checksums"] = {name: _file_crc32(tmp / name) for name in files}
            (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
            _fsync_dir_files(tmp)
            version = f"v-{time.time_ns() // 1000}-{manifest['corpus_fingerprint'][:8]}"
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
        checksums = manifest.get("checksums", {})
        if verify:
            for name, want in checksums.items():
                if not (folder / name).is_file() or _file_crc32(folder / name) != want:
                    raise IndexError_(f"index file {folder / name} is missing or corrupted (checksum mismatch)")
        try:
            units = UnitTable(np.load(folder / "units.npy"))
            hashes = np.load(folder / "hashes.npy")
            vpath = folder / "vectors.npy"
            vectors = np.load(vpath, mmap_mode="r" if vpath.stat().st_size > MMAP_BYTES else None)
            ann = VectorIndex.load(folder / "ann.faiss", vectors) if "ann.faiss" in checksums else None
        except Exception as exc:  # numpy raises ValueError/OSError, faiss RuntimeError with C++ text
            raise IndexError_(f"index files in {folder} cannot be read: {exc}") from None
        passages = [Passage(**p) for p in manifest["passages"]]
        if not (len(units) == len(vectors) == len(hashes)) or (len(units) and units.table[-1, 0] >= len(passages)):
            raise IndexError_(
                f"index in {folder} is inconsistent: {len(units)} units, {len(vectors)} vectors, "
                f"{len(hashes)} hashes, {len(passages)} passages"
            )
        return cls(passages, units, vectors, manifest, hashes=hashes, ann=ann)


def _file_crc32(path: Path) -> str:
    """CRC-32 of a file: catches truncation and bit rot (3x faster than SHA-256 on big vector files)."""
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return f"crc32:{crc:08x}"


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
    batch_size: int | None = None,
    flat_limit: int = FLAT_LIMIT,
    log: Callable[[str], None] | None = None,
) -> tuple[Index, int]:
    """Embed every unit (reusing vectors of unchanged texts from ``previous``) and build an Index.

    Only texts whose content hash is not in ``previous`` (built with the same model) are run
    through the encoder, and each distinct text only once.

    Returns the index and the number of texts that had to be embedded.
    """
    units = make_units(passages)
    texts = [unit_text(passages[u.passage], u) for u in units]
    digests = [text_hash(t) for t in texts]
    hashes = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(units), HASH_BYTES)
    vectors = np.zeros((len(units), encoder.dim), dtype=np.float32)
    known: dict[bytes, int] = {}  # hash -> row in previous.vectors
    if (
        previous is not None
        and previous.hashes is not None
        and previous.manifest.get("model_fingerprint") == encoder.fingerprint
    ):
        blob = previous.hashes.tobytes()
        known = {blob[i * HASH_BYTES : (i + 1) * HASH_BYTES]: i for i in range(len(previous.hashes))}
    reuse_new, reuse_old = [], []
    todo: dict[bytes, list[int]] = {}  # distinct new texts -> the rows that carry them
    for j, h in enumerate(digests):
        if h in known:
            reuse_new.append(j)
            reuse_old.append(known[h])
        else:
            todo.setdefault(h, []).append(j)
    if reuse_new:
        old_rows = np.asarray(reuse_old)
        order = np.argsort(old_rows, kind="stable")  # read a memory-mapped previous index in order
        vectors[np.asarray(reuse_new)[order]] = previous.vectors[old_rows[order]]
    pending = list(todo.values())
    step = 256  # texts per encode call (progress granularity); the encoder batches within it
    for start in range(0, len(pending), step):
        group = pending[start : start + step]
        batch = [texts[rows[0]] for rows in group]
        encoded = encoder.encode(batch) if batch_size is None else encoder.encode(batch, batch_size=batch_size)
        for rows, vec in zip(group, encoded):
            vectors[rows] = vec
        if progress:
            progress(sum(len(rows) for rows in group))
    if progress and reuse_new:
        progress(len(reuse_new))
    index_type = choose_index_type(len(units), flat_limit=flat_limit)
    ann = None
    if index_type == "ivf":
        ann = VectorIndex.build(vectors, previous=previous.ann if previous is not None else None, log=log)
    manifest = {
        "format": FORMAT_VERSION,
        "model": encoder.name,
        "model_fingerprint": encoder.fingerprint,
        "dimension": int(encoder.dim),
        "metric": "inner_product",
        "normalized": True,
        "index_type": index_type,
        "corpus_fingerprint": corpus_fingerprint,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "passages": [asdict(p) for p in passages],
    }
    index = Index(passages, UnitTable.from_units(units), vectors, manifest, hashes=hashes, ann=ann)
    return index, len(pending)


def _file_states(files: list[Path]) -> list[list]:
    out = []
    for f in files:
        st = f.stat()
        out.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return out


def _corpus_fingerprint(files: list[Path], previous: Index | None) -> tuple[str, list[list], int]:
    """The corpus fingerprint, taken from ``previous`` when no file changed size or mtime.

    Like git's index, a file whose mtime is within RACY_NS of the previous check might
    have changed again within the same timestamp tick, so such files are always hashed.
    """
    checked_ns = time.time_ns()
    states = _file_states(files)
    if previous is not None:
        m = previous.manifest
        old_checked = m.get("files_checked_ns", 0)
        if m.get("files") == states and all(s[2] < old_checked - RACY_NS for s in states):
            return m["corpus_fingerprint"], states, old_checked
    return fingerprint_files(files), states, checked_ns


def open_index(
    corpus: list[str | Path],
    index_dir: str | Path,
    encoder: Encoder,
    *,
    rebuild: bool = False,
    progress_factory: Callable[[int], Callable[[int], None]] | None = None,
    log: Callable[[str], None] | None = None,
    flat_limit: int = FLAT_LIMIT,
) -> tuple[Index, BuildStats]:
    """Load the index for ``corpus`` from ``index_dir``, (re)building it if it is stale.

    The index is stale when the corpus files' fingerprint or the model fingerprint differ
    from its manifest; a stale index is never returned. Unchanged files (same size and
    mtime as at the last check) are not read again to decide this.
    """
    t0 = time.perf_counter()
    index_dir = Path(index_dir)
    files = resolve_files(corpus)
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
    fingerprint, states, checked_ns = _corpus_fingerprint(files, previous)
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
    index, embedded = build_index(
        passages, encoder, corpus_fingerprint=fingerprint, previous=previous,
        progress=progress, flat_limit=flat_limit, log=log,
    )
    index.manifest["files"] = states
    index.manifest["files_checked_ns"] = checked_ns
    index.save(index_dir)
    stats = BuildStats(len(passages), len(index.units), embedded, time.perf_counter() - t0, True, reason)
    return index, stats
