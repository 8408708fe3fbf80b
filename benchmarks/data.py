"""Synthetic benchmark data made at run time from the public StackFAQ benchmark (never copied here).

Passages are recombined StackFAQ answer sentences; the scale series uses real MiniLM embeddings
of StackFAQ text fragments plus small Gaussian noise, re-normalised, so they cluster like real
embeddings (uniform random vectors would be a misleading worst case for approximate indexes).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from assistant.errors import ConfigError
from benchmarks.measure import log

NOISE = 0.35  # norm of the Gaussian noise added to a unit-length base embedding
QUERY_COUNT = 200  # queries per scale point (p95 and recall@10)
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def load_stackfaq(folder: Path) -> tuple[list[dict], list[str]]:
    """StackFAQ corpus rows and query texts; ConfigError naming the path when absent."""
    corpus, queries = folder / "corpus.jsonl", folder / "queries.jsonl"
    for f in (corpus, queries):
        if not f.is_file():
            raise ConfigError(f"StackFAQ file not found: {f} (pass --stackfaq FOLDER)")
    rows = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    qs = [json.loads(line)["question"] for line in queries.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows, qs


def _prose_sentences(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        for s in SENTENCE_SPLIT.split(" ".join(r["text"].split())):
            words = s.split()
            if 4 <= len(words) <= 40 and sum(w.isalpha() for w in words) >= 0.6 * len(words):
                out.append(s)
    return sorted(set(out))


SYNTHETIC_VERSION = 2  # bump when make_faq_rows changes, so cached corpora are regenerated


def make_faq_rows(rows: list[dict], n: int, *, words: int = 60, seed: int = 0) -> list[dict]:
    """``n`` FAQ rows of about ``words`` words: a StackFAQ question over recombined answer sentences.

    Questions are numbered (``... (#12)``) so that no two rows share one: a real FAQ repeats
    no question, and repeats would let the embedding cache skip work a real build does.
    """
    rng = np.random.default_rng(seed)
    sentences = _prose_sentences(rows)
    titles = sorted({r["title"] for r in rows})
    out, seen = [], set()
    while len(out) < n:
        parts: list[str] = []
        while sum(len(p.split()) for p in parts) < words:
            parts.append(sentences[int(rng.integers(len(sentences)))])
        text = " ".join(parts)
        if text in seen:
            continue
        seen.add(text)
        title = titles[int(rng.integers(len(titles)))]
        out.append({"id": f"row-{len(out):07d}", "question": f"{title} (#{len(out)})", "answer": text})
    return out


def write_jsonl(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


def base_fragments(rows: list[dict], *, count: int = 20_000, seed: int = 0) -> list[str]:
    """Distinct StackFAQ text fragments: titles, sentences, then random 6-40 word windows."""
    rng = np.random.default_rng(seed)
    frags = list(dict.fromkeys([r["title"] for r in rows] + _prose_sentences(rows)))
    words = " ".join(" ".join(r["text"].split()) for r in rows).split()
    seen = set(frags)
    while len(frags) < count:
        length = int(rng.integers(6, 41))
        start = int(rng.integers(0, len(words) - length))
        frag = " ".join(words[start : start + length])
        if frag not in seen:
            seen.add(frag)
            frags.append(frag)
    return frags[:count]


def synthetic_vectors(base: np.ndarray, n: int, path: Path, *, noise: float = NOISE, seed: int = 1) -> np.ndarray:
    """``n`` vectors = a random base embedding + Gaussian noise of norm ~``noise``, re-normalised.

    Written to ``path`` (.npy) in chunks and returned memory-mapped; the base index of each
    row is ``base_of(n, len(base), seed)``.
    """
    if path.is_file():
        arr = np.load(path, mmap_mode="r")
        if arr.shape == (n, base.shape[1]):
            return arr
    rng = np.random.default_rng(seed)
    which = base_of(n, len(base), seed)
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, base.shape[1]))
    d = base.shape[1]
    for start in range(0, n, 100_000):
        rows = which[start : start + 100_000]
        x = base[rows] + rng.standard_normal((len(rows), d), dtype=np.float32) * (noise / np.sqrt(d))
        out[start : start + len(rows)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()
    del out
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def base_of(n: int, m: int, seed: int = 1) -> np.ndarray:
    """Which of ``m`` base embeddings each of ``n`` synthetic vectors comes from."""
    return np.random.default_rng(seed + 1000).integers(0, m, size=n)


def scale_data(work: Path, stackfaq: Path, export: Path, n_max: int) -> dict:
    """Base embeddings (cached), the synthetic vectors for the largest scale, and embedded queries."""
    from assistant.models.onnx import OnnxEncoder

    rows, queries = load_stackfaq(stackfaq)
    frags = base_fragments(rows)
    frag_file = work / "fragments.json"
    base_file = work / f"base-{len(frags)}.npy"
    query_file = work / f"queries-{QUERY_COUNT}.npy"
    encoder = OnnxEncoder(export)
    if not base_file.is_file():
        log(f"scale: embedding {len(frags)} StackFAQ fragments (real MiniLM vectors, cached in {work})")
        vecs = []
        for start in range(0, len(frags), 2000):
            vecs.append(encoder.encode(frags[start : start + 2000]))
            log(f"scale: embedded {min(len(frags), start + 2000)}/{len(frags)}")
        np.save(base_file, np.concatenate(vecs))
        frag_file.write_text(json.dumps(frags))
    qtexts = queries[:: max(1, len(queries) // QUERY_COUNT)][:QUERY_COUNT]
    if not query_file.is_file():
        np.save(query_file, encoder.encode(qtexts))
    base = np.load(base_file)
    vec_file = work / f"vectors-{n_max}.npy"
    if not vec_file.is_file():
        log(f"scale: writing {n_max} synthetic vectors to {vec_file}")
    synthetic_vectors(base, n_max, vec_file)
    return {"vectors": str(vec_file), "queries": str(query_file), "fragments": str(frag_file), "query_texts": qtexts}
