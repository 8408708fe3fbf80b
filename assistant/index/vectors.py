"""Vector search over unit embeddings: exact (numpy) for small indexes, FAISS IVF + SQ8 for large ones.

Index types (see docs/performance.md for the measurements behind the choice):

- ``flat`` up to ``FLAT_LIMIT`` units: exact cosine with one numpy matrix-vector product
  (under ~5 ms at the limit) and no FAISS at all on the query path;
- ``ivf`` above it: FAISS ``IVF<nlist>,SQ8`` (k-means lists, 8-bit scalar-quantised codes,
  a quarter of the float memory) searched with ``nprobe`` lists, and its candidates
  re-scored exactly against the float vectors, which stay memory-mapped on disk. Lists are
  cheap to refill: a refresh reuses the trained centroids and only assigns vectors again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from assistant.errors import ConfigError

FLAT_LIMIT = 50_000  # units; above this an IVF index is built
INDEX_TYPES = ("flat", "ivf")
MMAP_BYTES = 256 << 20  # vector files larger than this are memory-mapped, not read into RAM


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
