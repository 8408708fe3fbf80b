"""Benchmark workers: each runs in its own process and prints one JSON line.

``python -m benchmarks.workers WORKER JSON`` runs one, so imports, memory and start-up costs
are those a user pays. Our own system's workers live here; the baselines' in baselines.py and
the scale series' in scale.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from assistant.settings import offline_env
from benchmarks import baselines, scale
from benchmarks.measure import latencies, log, memory_mb

# Imports inside the workers are deliberate: each worker runs in a fresh process and imports only
# what its own path needs (torch, faiss, bm25s are heavy and not all of them are used by each).


def w_ours_warm(a: dict) -> dict:
    from assistant.core.pipeline import Assistant
    from assistant.models.verifier import DEFAULT_VERIFIER

    extra = {"skip_verifier_at": None} if a.get("always_verify") else {}
    assistant, _ = Assistant.open(
        a["corpus"], a["index_dir"], backend=a.get("backend", "onnx"), verifier=a.get("verifier", DEFAULT_VERIFIER), **extra
    )
    out = latencies(assistant.ask, a["questions"], a["rounds"])
    out["torch_loaded"] = "torch" in sys.modules
    out["verifier_use"] = dict(assistant.verifier_use)  # questions the retriever alone decided / the verifier heard
    return out


def w_ours_build(a: dict) -> dict:
    """Build a fresh index of a corpus with the ONNX encoder (the export is made beforehand, untimed)."""
    from assistant.index.store import open_index
    from assistant.models.onnx import OnnxEncoder, export_onnx

    if a.get("variant", "fp32") == "int8":
        encoder = OnnxEncoder(export_onnx(a.get("model"), a["models"], quantize=True, log=log), variant="int8")
    else:
        encoder = OnnxEncoder(a["export"])
    verifier_encoder = None
    if a.get("verifier"):
        from assistant.models.verifier import DEFAULT_VERIFIER, open_verifier_encoder

        verifier_encoder = open_verifier_encoder(kind=a.get("verifier_kind", DEFAULT_VERIFIER), log=log)
        verifier_encoder.encode(["warm up"])  # the ONNX session starts outside the timed build
    t0 = time.perf_counter()
    index, stats = open_index(a["corpus"], a["index_dir"], encoder)
    embedded = stats.embedded
    if verifier_encoder is not None:
        from assistant.models.verifier import kind_of, open_verifier

        checker = open_verifier(a["corpus"], a["index_dir"], index, encoder=verifier_encoder, kind=kind_of(verifier_encoder))
        embedded += len(checker.index.units) if checker is not None else 0
    return {
        "passages": stats.passages, "units": stats.units, "embedded": embedded,
        "seconds": time.perf_counter() - t0, "index_type": index.index_type, **memory_mb(),
    }


def w_ours_reindex(a: dict) -> dict:
    """Open (building if needed) the index of a corpus, edit one entry, and time the refresh."""
    from assistant.index.store import open_index
    from assistant.models.onnx import OnnxEncoder

    encoder = OnnxEncoder(a["export"])
    t0 = time.perf_counter()
    _, first = open_index(a["corpus"], a["index_dir"], encoder)
    initial = {"seconds": time.perf_counter() - t0, "rebuilt": first.rebuilt, "embedded": first.embedded}
    path = Path(a["file"])
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    row = json.loads(lines[a["line"]])
    marker = " Contact us for details."
    row["answer"] = row["answer"][: -len(marker)] if row["answer"].endswith(marker) else row["answer"] + marker
    lines[a["line"]] = json.dumps(row, ensure_ascii=False) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    t1 = time.perf_counter()
    index, stats = open_index(a["corpus"], a["index_dir"], encoder)
    return {
        "initial": initial, "seconds": time.perf_counter() - t1, "embedded": stats.embedded,
        "units": stats.units, "passages": stats.passages, "rebuilt": stats.rebuilt, **memory_mb(),
    }


def w_quality(a: dict) -> dict:
    """The gold sets answered with sentence-transformers, the ONNX export, and its int8 variant.

    Each encoder indexes the corpus itself and answers every gold question; also recorded:
    each encoder's lowest cosine to the reference over all unit texts and questions, and its
    single-question embedding latency.
    """
    from assistant.core.pipeline import Assistant
    from assistant.evaluation.gold import load_gold
    from assistant.evaluation.scoring import evaluate, summarize
    from assistant.index.store import unit_text
    from assistant.models.embeddings import SentenceTransformerEncoder
    from assistant.models.onnx import OnnxEncoder, export_onnx

    export = export_onnx(a.get("model"), a["models"], quantize=True, log=log)
    reference = SentenceTransformerEncoder(a.get("model"))
    encoders = {
        "sentence-transformers": reference,
        "onnx-fp32": OnnxEncoder(export),
        "onnx-int8": OnnxEncoder(export, variant="int8"),
    }
    golds = {name: load_gold(path) for name, path in a["gold"].items()}
    questions = [q.question for g in golds.values() for q in g]
    out: dict = {"summaries": {}, "min_cosine": {}, "embed_ms": {}}
    ref_vecs = None
    top_ids: dict[str, list] = {}
    for name, enc in encoders.items():
        assistant, _ = Assistant.open(a["corpus"], Path(a["work"]) / f"quality-{name}", encoder=enc)
        if ref_vecs is None:
            texts = [unit_text(assistant.index.passages[u.passage], u) for u in assistant.index.units] + questions
            ref_vecs = reference.encode(texts)
        out["min_cosine"][name] = float(np.min(np.sum(enc.encode(texts) * ref_vecs, axis=1)))
        lat = latencies(lambda q, enc=enc: enc.encode([q]), questions, 2)
        out["embed_ms"][name] = {"p50": lat["p50_ms"], "p95": lat["p95_ms"]}
        for gname, gold in golds.items():
            results = evaluate(assistant, gold)
            key = f"{gname}/{name}"
            out["summaries"][key] = {
                k: v for k, v in summarize(results).items()
                if isinstance(v, (int, float)) and not str(k).startswith(("latency", "n_"))
            }
            top_ids[key] = [list(x)[:5] for x in results["top_ids"]]
    for key, ids in top_ids.items():
        ref = top_ids[key.split("/")[0] + "/sentence-transformers"]
        out["summaries"][key]["same_top1"] = float(np.mean([r[:1] == t[:1] for r, t in zip(ref, ids)]))
        out["summaries"][key]["same_top5"] = float(np.mean([r == t for r, t in zip(ref, ids)]))
    return out


WORKERS = {
    "naive-build": baselines.w_naive_build,
    "naive-ask": baselines.w_naive_ask,
    "naive-warm": baselines.w_naive_warm,
    "bm25-build": baselines.w_bm25_build,
    "bm25-ask": baselines.w_bm25_ask,
    "bm25-warm": baselines.w_bm25_warm,
    "ours-warm": w_ours_warm,
    "ours-build": w_ours_build,
    "ours-reindex": w_ours_reindex,
    "serve-baseline": baselines.w_serve_baseline,
    "scale-build": scale.w_scale_build,
    "scale-serve": scale.w_scale_serve,
    "quality": w_quality,
}


def worker_main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.workers WORKER JSON``: run one worker, print its result as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers")
    parser.add_argument("worker", choices=sorted(WORKERS))
    parser.add_argument("args", help="the worker's arguments as a JSON object")
    ns = parser.parse_args(argv)
    result = WORKERS[ns.worker](json.loads(ns.args))
    print("BENCH-RESULT " + json.dumps(result), flush=True)
    return 0



if __name__ == "__main__":
    for key, value in offline_env().items():
        os.environ.setdefault(key, value)
    sys.exit(worker_main())
