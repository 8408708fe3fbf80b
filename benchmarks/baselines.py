"""The two baselines, as benchmark workers: a naive RAG path and BM25 only.

- ``naive``: sentence-transformers + a flat FAISS index, one vector per passage, returning the
  top passage (what a typical RAG starter does); a fresh process per question;
- ``bm25``: bm25s with the English stemmer, returning the top passage.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmarks.measure import latencies, memory_mb

# Imports inside the workers are deliberate: each worker runs in a fresh process whose start-up
# cost is part of the figures, so it imports only what its own path needs.


def naive_model(model: str | None):
    from sentence_transformers import SentenceTransformer

    from assistant.models.embeddings import resolve_model_path

    return SentenceTransformer(str(resolve_model_path(model)), device="cpu")


def naive_text(row: dict) -> str:
    return f"{row['title']}\n{row['text']}" if row.get("title") else row["text"]


def passages_json(corpus: list[str]) -> list[dict]:
    from assistant.core.corpus import load_corpus

    return [asdict(p) for p in load_corpus(corpus)]


def w_naive_build(a: dict) -> dict:
    """Naive index: one sentence-transformers vector per passage into a flat FAISS index."""
    import faiss

    t0 = time.perf_counter()
    model = naive_model(a.get("model"))
    rows = passages_json(a["corpus"])
    t1 = time.perf_counter()
    vecs = model.encode([naive_text(r) for r in rows], batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(np.ascontiguousarray(vecs, dtype=np.float32))
    out = Path(a["out"])
    out.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(out / "naive.faiss"))
    (out / "passages.json").write_text(json.dumps(rows))
    t2 = time.perf_counter()
    return {"passages": len(rows), "seconds": t2 - t1, "load_s": t1 - t0, **memory_mb()}


def w_naive_ask(a: dict) -> dict:
    """The naive user path: a fresh process loads torch, the model and the index for one question."""
    import faiss

    model = naive_model(a.get("model"))
    index = faiss.read_index(str(Path(a["dir"]) / "naive.faiss"))
    rows = json.loads((Path(a["dir"]) / "passages.json").read_text())
    q = model.encode([a["question"]], normalize_embeddings=True, convert_to_numpy=True)
    _, ids = index.search(q.astype(np.float32), 1)
    print(rows[int(ids[0][0])]["text"])
    return {}


def bm25_tokenize(texts: list[str]):
    import bm25s
    import Stemmer

    return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)


def w_bm25_build(a: dict) -> dict:
    import bm25s

    rows = passages_json(a["corpus"])
    t1 = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(bm25_tokenize([naive_text(r) for r in rows]), show_progress=False)
    out = Path(a["out"])
    retriever.save(str(out / "bm25"), show_progress=False)
    (out / "passages.json").write_text(json.dumps(rows))
    return {"passages": len(rows), "seconds": time.perf_counter() - t1, **memory_mb()}


def w_bm25_ask(a: dict) -> dict:
    import bm25s

    retriever = bm25s.BM25.load(str(Path(a["dir"]) / "bm25"), show_progress=False)
    rows = json.loads((Path(a["dir"]) / "passages.json").read_text())
    ids, _ = retriever.retrieve(bm25_tokenize([a["question"]]), k=1, show_progress=False)
    print(rows[int(ids[0][0])]["text"])
    return {}


def w_naive_warm(a: dict) -> dict:
    import faiss

    model = naive_model(a.get("model"))
    index = faiss.read_index(str(Path(a["dir"]) / "naive.faiss"))

    def ask(q: str):
        v = model.encode([q], normalize_embeddings=True, convert_to_numpy=True)
        return index.search(v.astype(np.float32), 5)

    return latencies(ask, a["questions"], a["rounds"])


def w_bm25_warm(a: dict) -> dict:
    import bm25s

    retriever = bm25s.BM25.load(str(Path(a["dir"]) / "bm25"), show_progress=False)
    return latencies(
        lambda q: retriever.retrieve(bm25_tokenize([q]), k=5, show_progress=False), a["questions"], a["rounds"]
    )


def w_serve_baseline(a: dict) -> dict:
    """A JSON API (FastAPI + uvicorn, like ours) answering POST /api/ask with the naive or BM25 path."""
    import uvicorn
    from fastapi import Body, FastAPI

    kind, folder = a["kind"], Path(a["dir"])
    rows = json.loads((folder / "passages.json").read_text())
    if kind == "naive":
        import faiss

        model = naive_model(a.get("model"))
        index = faiss.read_index(str(folder / "naive.faiss"))

        def top(q: str) -> int:
            v = model.encode([q], normalize_embeddings=True, convert_to_numpy=True)
            return int(index.search(v.astype(np.float32), 1)[1][0][0])

    else:
        import bm25s

        retriever = bm25s.BM25.load(str(folder / "bm25"), show_progress=False)
        lock = threading.Lock()

        def top(q: str) -> int:
            tokens = bm25_tokenize([q])
            with lock:
                return int(retriever.retrieve(tokens, k=1, show_progress=False, n_threads=1)[0][0][0])

    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/api/ask")
    def ask(body: dict = Body(...)) -> dict:  # noqa: B008 - FastAPI's way to declare a JSON body
        return {"answer": rows[top(str(body["question"]))]["text"]}

    top("warm up")
    uvicorn.run(app, host="127.0.0.1", port=int(a["port"]), log_level="warning", access_log=False)
    return {}
