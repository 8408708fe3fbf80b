"""The index of passage units: built from the corpus, saved as a sealed version, refreshed when
corpus or model change.

Each passage is embedded as several *units*: for FAQ rows its question and question + answer
(their answers' sentences are embedded too, as *quotes*: never searched, read by the answer
builder to choose what to quote); for plain-text
sections the section title + passage and every sentence (title-prefixed), which both lets a
passage that mixes topics match on its best sentence and lets the answer builder pick the
sentences that answer the question. Each confirmed customer question linked to a passage
(assistant/learning/links.py) is one more unit of that passage, of kind ``learned``: a way into
the passage, never text to quote (its questions are listed in the manifest's ``learned``).

A version folder holds ``manifest.json`` (metadata and passages), ``units.npy`` (passage,
kind, span of every unit), ``hashes.npy`` (a content hash per unit, the embedding cache key),
``vectors.npy`` (float32, one L2-normalised row per unit), for the retriever's index
``quotes.npy``, ``quote_hashes.npy`` and ``quote_vectors.npy`` (the same for every sentence of the
passages whose sentences are not units) and, for large corpora only,
``ann.faiss`` (assistant/index/vectors.py); where versions live and how they are sealed with
SHA-256 is assistant/index/layout.py.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from assistant.core.corpus import (
    DEFAULT_LIMITS,
    CorpusLimits,
    load_corpus,
    resolve_files,
)
from assistant.errors import ConfigError, IndexError_
from assistant.index.freshness import CorpusState, corpus_state
from assistant.index.layout import MANIFEST, IndexLayout
from assistant.index.units import (  # noqa: F401 - re-exported: the index's public names
    HASH_BYTES,
    LEARNED_KIND,
    UNIT_KINDS,
    Unit,
    UnitTable,
    make_quotes,
    make_units,
    text_hash,
    unit_text,
)
from assistant.index.vectors import (  # noqa: F401 - re-exported: the index's public names
    FLAT_LIMIT,
    INDEX_TYPES,
    MMAP_BYTES,
    VectorIndex,
    choose_index_type,
    exact_search,
    ivf_nlist,
)
from assistant.learning.links import Link, link_keys
from assistant.models.embeddings import Encoder
from assistant.schema import Passage

FORMAT_VERSION = 4  # 4: SHA-256 checksums of every file, the manifest included (layout.py)
DATA_FILES = ("units.npy", "hashes.npy", "vectors.npy")
QUOTE_FILES = ("quotes.npy", "quote_hashes.npy", "quote_vectors.npy")


def learned_offsets(index: Index, faq: float, section: float) -> np.ndarray:
    """Per unit, what a learned key's cosine counts less (``faq`` on FAQ rows, ``section`` on
    plain-text passages; 0 for every other unit)."""
    kinds = np.array([p.kind == "faq" for p in index.passages], dtype=bool)
    per_passage = np.where(kinds, np.float32(faq), np.float32(section)).astype(np.float32)
    learned = index.unit_kind == LEARNED_KIND
    out = np.zeros(len(index.units), dtype=np.float32)
    if learned.any():
        out[learned] = per_passage[index.unit_passage[learned]]
    return out


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
        quotes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """``quotes``: (spans, hashes, vectors) of the sentences made by ``make_quotes``, or None
        (an index built without them: the retriever then embeds them on first use)."""
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
        # The confirmed questions embedded as extra keys: (passage id, question), by passage.
        self.learned: list[tuple[str, str]] = [tuple(k) for k in manifest.get("learned", ())]
        # Units are stored grouped by passage, in passage order.
        bounds = np.searchsorted(self.unit_passage, np.arange(len(passages) + 1))
        self.passage_units: list[range] = [range(a, b) for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist())]
        self.quotes = quotes
        self.passage_quotes: list[range] | None = None
        if quotes is not None:
            qb = np.searchsorted(quotes[0][:, 0], np.arange(len(passages) + 1))
            self.passage_quotes = [range(a, b) for a, b in zip(qb[:-1].tolist(), qb[1:].tolist())]

    def quote_scores(self, qvec: np.ndarray, pi: int) -> list[tuple[int, int, float]] | None:
        """(start, end, cosine) of each quote sentence of passage ``pi``; None when not embedded."""
        if self.passage_quotes is None:
            return None
        rows = self.passage_quotes[pi]
        spans, _, vectors = self.quotes
        scores = vectors[rows.start : rows.stop] @ qvec.astype(np.float32)
        return [(int(spans[j, 1]), int(spans[j, 2]), float(c)) for j, c in zip(rows, scores)]

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
        """Write a new version folder, seal it, then atomically make it the live one."""
        layout = IndexLayout(index_dir)
        build = layout.new_build()
        try:
            np.save(build / "units.npy", self.units.table)
            hashes = self.hashes if self.hashes is not None else np.zeros((len(self.units), HASH_BYTES), np.uint8)
            np.save(build / "hashes.npy", hashes)
            np.save(build / "vectors.npy", self.vectors)
            if self.ann is not None:
                self.ann.save(build / "ann.faiss")
            if self.quotes is not None:
                for name, array in zip(QUOTE_FILES, self.quotes):
                    np.save(build / name, array)
            manifest = dict(self.manifest)
            manifest["index_type"] = self.index_type
            manifest.pop("checksums", None)  # format 3's CRC-32s; checksums.json replaces them
            (build / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False))
            final = layout.publish(build)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        self.manifest = manifest
        return final

    @classmethod
    def load(cls, index_dir: Path, *, verify: bool = True) -> "Index":
        """Load the live version of an index folder; a damaged or altered one raises IndexError_.

        ``verify=False`` skips the SHA-256 checks (tests of what the checks guard against).
        """
        layout = IndexLayout(index_dir)
        folder, digest = layout.live()
        if verify:
            layout.verify(folder, digest)
        return cls._read(folder, FORMAT_VERSION)

    @classmethod
    def legacy(cls, index_dir: Path) -> "Index | None":
        """The live index of a folder written before the SHA-256 seals (format 3), unverified, or None.

        Only its vectors are used, as the embedding cache of the rebuild (keyed by each unit
        text's hash, so they can only speed it up); it is never served.
        """
        folder = IndexLayout(index_dir).legacy()
        try:
            return cls._read(folder, 3) if folder is not None else None
        except IndexError_:
            return None

    @classmethod
    def _read(cls, folder: Path, format_version: int) -> "Index":
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            passages = [Passage(**p) for p in manifest["passages"]]
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise IndexError_(f"index manifest in {folder} is unreadable: {exc}") from None
        if manifest.get("format") != format_version:
            raise IndexError_(f"index in {folder} has format {manifest.get('format')}, expected {format_version}")
        try:
            units = UnitTable(np.load(folder / "units.npy"))
            hashes = np.load(folder / "hashes.npy")
            vpath = folder / "vectors.npy"
            vectors = np.load(vpath, mmap_mode="r" if vpath.stat().st_size > MMAP_BYTES else None)
            ann = VectorIndex.load(folder / "ann.faiss", vectors) if manifest.get("index_type") == "ivf" else None
            quotes = None
            if (folder / QUOTE_FILES[0]).exists():
                quotes = tuple(np.load(folder / name) for name in QUOTE_FILES)
        except Exception as exc:  # numpy raises ValueError/OSError, faiss RuntimeError with C++ text
            raise IndexError_(f"index files in {folder} cannot be read: {exc}") from None
        if not (len(units) == len(vectors) == len(hashes)) or (len(units) and units.table[-1, 0] >= len(passages)):
            raise IndexError_(
                f"index in {folder} is inconsistent: {len(units)} units, {len(vectors)} vectors, "
                f"{len(hashes)} hashes, {len(passages)} passages"
            )
        if quotes is not None and not (
            len(quotes[0]) == len(quotes[1]) == len(quotes[2]) and (not len(quotes[0]) or quotes[0][-1, 0] < len(passages))
        ):
            raise IndexError_(f"index in {folder} is inconsistent: its quote files do not match")
        return cls(passages, units, vectors, manifest, hashes=hashes, ann=ann, quotes=quotes)


def _embed(
    texts: list[str],
    encoder: Encoder,
    old: tuple[np.ndarray, np.ndarray] | None,
    *,
    progress: Callable[[int], None] | None = None,
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(hashes, vectors, texts embedded) of ``texts``, reusing ``old`` (hashes, vectors) rows of
    unchanged texts and embedding each distinct new text once."""
    digests = [text_hash(t) for t in texts]
    hashes = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(texts), HASH_BYTES)
    vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    known: dict[bytes, int] = {}  # hash -> row in old vectors
    if old is not None:
        blob = old[0].tobytes()
        known = {blob[i * HASH_BYTES : (i + 1) * HASH_BYTES]: i for i in range(len(old[0]))}
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
        vectors[np.asarray(reuse_new)[order]] = old[1][old_rows[order]]
    # longest first across all of them, so that each encode call's batches hold texts of like length
    pending = sorted(todo.values(), key=lambda rows: -len(texts[rows[0]]))
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
    return hashes, vectors, len(pending)


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
    quotes: bool = True,
    learned: Sequence[tuple[str, str]] = (),
) -> tuple[Index, int]:
    """Embed every unit (reusing vectors of unchanged texts from ``previous``) and build an Index.

    Only texts whose content hash is not in ``previous`` (built with the same model) are run
    through the encoder, and each distinct text only once. ``quotes``: also embed the sentences
    of the passages whose sentences are not units (make_quotes), so that no question pays for
    them (the retriever's index has them; the verifier's does not need them). ``learned``:
    confirmed questions as (passage id, question) keys, ordered by passage
    (assistant.learning.links.link_keys).

    Returns the index and the number of texts that had to be embedded.
    """
    learned = [tuple(k) for k in learned]
    units = make_units(passages, learned)
    same_model = previous is not None and previous.manifest.get("model_fingerprint") == encoder.fingerprint
    old = (previous.hashes, previous.vectors) if same_model and previous.hashes is not None else None
    texts = [unit_text(passages[u.passage], u, learned) for u in units]
    hashes, vectors, embedded = _embed(texts, encoder, old, progress=progress, batch_size=batch_size)
    quote_data = None
    if quotes:
        spans = make_quotes(passages)
        old_quotes = previous.quotes[1:] if same_model and previous.quotes is not None else None
        q_texts = [passages[i].text[a:b] for i, a, b in spans.tolist()]
        q_hashes, q_vectors, q_embedded = _embed(q_texts, encoder, old_quotes, progress=progress, batch_size=batch_size)
        quote_data = (spans, q_hashes, q_vectors)
        embedded += q_embedded
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
        "learned": [list(k) for k in learned],
    }
    index = Index(passages, UnitTable.from_units(units), vectors, manifest, hashes=hashes, ann=ann, quotes=quote_data)
    return index, embedded


def open_index(
    corpus: list[str | Path],
    index_dir: str | Path,
    encoder: Encoder,
    *,
    rebuild: bool = False,
    progress_factory: Callable[[int], Callable[[int], None]] | None = None,
    log: Callable[[str], None] | None = None,
    flat_limit: int = FLAT_LIMIT,
    source: Index | None = None,
    limits: CorpusLimits = DEFAULT_LIMITS,
    quotes: bool = True,
    links: Sequence[Link] = (),
) -> tuple[Index, BuildStats]:
    """Load the index for ``corpus`` from ``index_dir``, (re)building it if it is stale.

    The index is stale when the corpus files' fingerprint or the model fingerprint differ
    from its manifest; a stale index is never returned. Unchanged files (same size and
    mtime as at the last check) are not read again to decide this.

    ``source``: an index of the same corpus just opened (the verifier's index is built next
    to the main one): its passages and corpus state are used, so the files are not read and
    parsed a second time, and both indexes hold the same passages, and the same learned keys.

    ``links``: confirmed questions (assistant/learning/links.py); each usable one becomes an
    extra key of its passage; stale ones (passage gone or changed) are left out. A change in
    the usable links refreshes the index like a corpus change (only new keys are embedded).

    ``quotes``: embed the FAQ answers' sentences too (build_index).
    """
    t0 = time.perf_counter()
    index_dir = Path(index_dir)
    previous: Index | None = None
    cache: Index | None = None  # vectors to reuse when there is no usable previous version
    reason = "forced rebuild" if rebuild else ""
    if source is None:
        files = resolve_files(corpus)
    try:
        previous = Index.load(index_dir)
    except IndexError_ as exc:
        if IndexLayout(index_dir).exists():
            reason = reason or f"existing index unusable ({exc})"
            if log:
                log(f"index: {exc}; rebuilding")
            cache = Index.legacy(index_dir)
        else:
            reason = reason or "no index yet"
    if source is not None:
        state = CorpusState.from_manifest(source.manifest)
    else:
        state = corpus_state(files, CorpusState.from_manifest(previous.manifest) if previous is not None else None)
    if previous is not None and not rebuild:
        m = previous.manifest
        if m.get("model_fingerprint") != encoder.fingerprint:
            was, now = m.get("model"), encoder.name
            if was == now:  # the same model read differently (e.g. fewer tokens): say how
                was, now = f"{was} {m.get('model_fingerprint')}", encoder.fingerprint
            reason = f"model changed ({was} -> {now})"
        elif m.get("corpus_fingerprint") != state.fingerprint:
            reason = "corpus changed"
        elif _learned_keys(source, links, previous.passages) != previous.learned:
            reason = "learned links changed"
        elif quotes and previous.quotes is None:
            reason = "FAQ answer sentences not embedded yet"  # an index from before quotes: only they are embedded
        else:
            stats = BuildStats(len(previous.passages), len(previous.units), 0, time.perf_counter() - t0, False, "up to date")
            return previous, stats
    if source is not None:
        passages = list(source.passages)
    elif reason == "learned links changed":  # the corpus itself is unchanged: no need to parse it again
        passages = list(previous.passages)
    else:
        passages = load_corpus(files, limits=limits)
    learned = _learned_keys(source, links, passages)
    if log:
        n_files = len({p.source for p in passages}) if source is not None else len(files)
        log(f"index: building ({reason}) for {len(passages)} passages from {n_files} file(s)")
    n_units = len(make_units(passages, learned)) + (len(make_quotes(passages)) if quotes else 0)
    progress = progress_factory(n_units) if progress_factory else None
    index, embedded = build_index(
        passages, encoder, corpus_fingerprint=state.fingerprint, previous=previous or cache,
        progress=progress, flat_limit=flat_limit, log=log, quotes=quotes, learned=learned,
    )
    index.manifest.update(state.to_manifest())
    index.save(index_dir)
    stats = BuildStats(len(passages), len(index.units), embedded, time.perf_counter() - t0, True, reason)
    return index, stats


def _learned_keys(source: Index | None, links: Sequence[Link], passages: list[Passage]) -> list[tuple[str, str]]:
    """The learned keys an index of ``passages`` should hold: ``source``'s (the verifier follows the
    main index), else those of the usable ``links``."""
    return list(source.learned) if source is not None else link_keys(links, passages)
