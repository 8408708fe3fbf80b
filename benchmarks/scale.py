"""The scale series' workers: build and serve 10k..2M synthetic vectors, ours next to flat FAISS and BM25."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from assistant.errors import ConfigError
from benchmarks.baselines import bm25_tokenize
from benchmarks.data import base_of
from benchmarks.measure import log, memory_mb, percentile, recall_at_k

# Imports inside the workers are deliberate: each runs in a fresh process and imports only what
# its system needs (faiss, bm25s or our index).


def w_scale_build(a: dict) -> dict:
    """Build one system's index of the first ``n`` synthetic vectors (or their texts) and save it."""
    kind, n = a["kind"], int(a["n"])
    folder = Path(a["work"]) / f"scale-{kind}-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    vectors = np.load(a["vectors"], mmap_mode="r")[:n]
    out: dict = {}
    t0 = time.perf_counter()
    if kind == "naive":
        import faiss

        index = faiss.IndexFlatIP(vectors.shape[1])
        for s in range(0, n, 100_000):
            index.add(np.ascontiguousarray(vectors[s : s + 100_000]))
        faiss.write_index(index, str(folder / "naive.faiss"))
    elif kind == "ours":
        from assistant.index.store import VectorIndex, choose_index_type

        out["index_type"] = choose_index_type(n)
        # As Index.save does: the float vectors as .npy, plus the IVF index above FLAT_LIMIT.
        np.save(folder / "vectors.npy", vectors)
        if out["index_type"] == "ivf":
            VectorIndex.build(vectors, log=log).save(folder / "ann.faiss")
    elif kind == "bm25":
        import bm25s

        frags = json.loads(Path(a["fragments"]).read_text())
        retriever = bm25s.BM25()
        retriever.index(bm25_tokenize([frags[i] for i in base_of(n, len(frags))]), show_progress=False)
        retriever.save(str(folder / "bm25"), show_progress=False)
    else:
        raise ConfigError(f"unknown scale system {kind!r}")
    out["build_s"] = time.perf_counter() - t0
    out["build_peak_rss_mb"] = memory_mb().get("peak_rss_mb")
    return out


def w_scale_serve(a: dict) -> dict:
    """Load one system's saved index in a fresh process; single-query latency, recall@10, memory."""
    kind, n, work = a["kind"], int(a["n"]), Path(a["work"])
    folder = work / f"scale-{kind}-{n}"
    queries = np.load(a["queries"])
    t0 = time.perf_counter()
    if kind == "naive":
        import faiss

        index = faiss.read_index(str(folder / "naive.faiss"))
        search = lambda q: index.search(q.reshape(1, -1), 10)[1][0]  # noqa: E731
        items = list(queries)
    elif kind == "ours":
        from assistant.index.store import MMAP_BYTES, VectorIndex, exact_search

        vfile = folder / "vectors.npy"
        vectors = np.load(vfile, mmap_mode="r" if vfile.stat().st_size > MMAP_BYTES else None)  # as Index.load
        if (folder / "ann.faiss").is_file():
            ann = VectorIndex.load(folder / "ann.faiss", vectors)
            search = lambda q: ann.search(q, 10)[1]  # noqa: E731
        else:
            search = lambda q: exact_search(vectors, q, 10)[1]  # noqa: E731
        items = list(queries)
    elif kind == "bm25":
        import bm25s

        retriever = bm25s.BM25.load(str(folder / "bm25"), show_progress=False)
        search = lambda tok: retriever.retrieve(tok, k=10, show_progress=False, n_threads=1)  # noqa: E731
        items = [bm25_tokenize([t]) for t in a["query_texts"]]
    else:
        raise ConfigError(f"unknown scale system {kind!r}")
    load_s = time.perf_counter() - t0
    for item in items[:10]:
        search(item)
    found, times = [], []
    for item in items:
        t = time.perf_counter()
        found.append(search(item))
        times.append((time.perf_counter() - t) * 1000)
    out = {"load_s": load_s, "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95), **memory_mb()}
    truth_file = work / f"exact-top10-{n}.npy"
    if kind == "naive":
        np.save(truth_file, np.array(found))
        out["recall@10"] = 1.0
    elif kind == "ours":
        out["recall@10"] = recall_at_k(np.load(truth_file), np.array(found), 10)
    return out
