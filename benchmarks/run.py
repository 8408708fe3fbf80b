"""Speed and scale benchmarks: our path side by side with a naive RAG path and a BM25-only baseline.

``assistant bench`` (assistant/cli/bench.py) calls ``run_bench``, which runs every figure in a
fresh worker process (``python -m benchmarks.workers WORKER``) and returns the figures;
tables.py turns them into the printed table. docs/performance.md explains each row.

The three systems: ``ours`` (``assistant`` itself: ONNX encoder, exact or IVF index, answer
composition), ``naive`` and ``bm25`` (baselines.py). The data is synthetic, made from the
public StackFAQ benchmark (data.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from assistant.errors import ConfigError
from assistant.server.process import free_port
from assistant.settings import offline_env
from benchmarks.data import (
    SYNTHETIC_VERSION,
    load_stackfaq,
    make_faq_rows,
    scale_data,
    write_jsonl,
)
from benchmarks.load import serve_and_load
from benchmarks.measure import log, machine_info

SCALES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000, "2m": 2_000_000}  # 2m: 1M FAQ rows (2 vectors each)
SECTIONS = ("cold", "warm", "api", "build", "reindex", "scale", "quality")
WORKERS_MODULE = "benchmarks.workers"


def run_worker(name: str, args: dict, *, timeout: float = 7200) -> dict:
    """Run one worker in a fresh process; its stderr passes through, its result comes back."""
    proc = subprocess.run(
        [sys.executable, "-m", WORKERS_MODULE, name, json.dumps(args)],
        stdout=subprocess.PIPE, text=True, timeout=timeout, env=_worker_env(),
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"bench worker {name} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len("BENCH-RESULT ") :])


def _worker_env() -> dict:
    # The load test is 8 clients from one address: measure capacity, not the per-client limit.
    return {**os.environ, "ASSISTANT_RATE_LIMIT": "off", **offline_env()}


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _find_export(index_dir: Path) -> Path:
    from assistant.models.onnx import EXPORT_META, MODEL_CACHE

    found = sorted((index_dir / MODEL_CACHE).glob(f"*/{EXPORT_META}"))
    if not found:
        raise RuntimeError(f"no ONNX export under {index_dir / MODEL_CACHE}")
    return found[0].parent


def _timed_run(cmd: list[str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_worker_env())
    wall = time.perf_counter() - t
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return wall


def _gold_questions(path: Path) -> list[str]:
    return [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_bench(
    *,
    corpus: list[str],
    work: Path,
    gold: Path,
    dev: Path | None,
    stackfaq: Path,
    model: str | None = None,
    sections: tuple[str, ...] = SECTIONS,
    scales: tuple[str, ...] = ("10k", "100k"),
    runs: int = 5,
    warm_rounds: int = 3,
    clients: int = 8,
    requests: int = 400,
    build_passages: int = 1000,
    reindex_passages: int = 10_000,
) -> dict:
    """Run the chosen sections; returns {section: {system: figures}} plus the machine and noise."""
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown bench section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    bad = sorted(set(scales) - set(SCALES))
    if bad:
        raise ConfigError(f"unknown scale(s) {', '.join(bad)}; choose from {', '.join(SCALES)}")
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    results: dict = {"machine": machine_info(), "sections": {}, "load": {}}
    questions = _gold_questions(gold)
    model_args = ["--model", model] if model else []

    # Shared set-up: our index (with its ONNX export) and the two baselines' indexes of the corpus.
    ours_index = work / "ours-index"
    log(f"setup: our index of {', '.join(corpus)} (exports the model to ONNX on first run)")
    corpus_args = [a for c in corpus for a in ("--corpus", c)]
    t = time.perf_counter()
    _timed_run([py, "-m", "assistant", "index", *corpus_args, "--index-dir", str(ours_index), *model_args, "-q"])
    results["setup"] = {"ours_index_s": time.perf_counter() - t}
    export = _find_export(ours_index)
    naive_dir, bm25_dir = work / "naive", work / "bm25"
    log("setup: naive (sentence-transformers + flat FAISS) and BM25 indexes")
    run_worker("naive-build", {"corpus": corpus, "out": str(naive_dir), "model": model})
    run_worker("bm25-build", {"corpus": corpus, "out": str(bm25_dir)})

    def section(name: str, fn) -> None:
        if name not in sections:
            return
        before = _load()
        t0 = time.perf_counter()
        results["sections"][name] = fn()
        results["load"][name] = {"before": before, "after": _load(), "seconds": round(time.perf_counter() - t0, 1)}

    def cold() -> dict:
        cmds = {
            "ours": lambda q: [py, "-m", "assistant", "ask", *corpus_args, "--index-dir", str(ours_index), *model_args, "-q", q],
            "ours_fast": lambda q: [py, "-m", "assistant", "ask", *corpus_args, "--index-dir", str(ours_index), *model_args,
                                    "--verifier", "none", "-q", q],
            "naive": lambda q: [py, "-m", WORKERS_MODULE, "naive-ask", json.dumps({"dir": str(naive_dir), "question": q, "model": model})],
            "bm25": lambda q: [py, "-m", WORKERS_MODULE, "bm25-ask", json.dumps({"dir": str(bm25_dir), "question": q})],
        }
        walls: dict[str, list[float]] = {k: [] for k in cmds}
        for i in range(runs):  # interleaved, so load spikes hit every system alike
            for name, cmd in cmds.items():
                walls[name].append(_timed_run(cmd(questions[i % len(questions)])))
            log(f"cold start: run {i + 1}/{runs}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in walls.items()))
        return {k: {"median_s": float(np.median(v)), "min_s": min(v), "max_s": max(v), "runs": v} for k, v in walls.items()}

    def warm() -> dict:
        args = {"questions": questions, "rounds": warm_rounds, "model": model}
        out = {}
        for name, worker, extra in (
            ("ours", "ours-warm", {"corpus": corpus, "index_dir": str(ours_index)}),
            # the verifier asked for every question (before the decisive-question skip)
            ("ours_always", "ours-warm", {"corpus": corpus, "index_dir": str(ours_index), "always_verify": True}),
            ("ours_fast", "ours-warm", {"corpus": corpus, "index_dir": str(ours_index), "verifier": "none"}),
            # the int8 verifier (`--verifier mpnet-int8`, opt-in)
            ("ours_int8v", "ours-warm", {"corpus": corpus, "index_dir": str(ours_index), "verifier": "mpnet-int8"}),
            # the int8 encoder has its own fingerprint, hence its own index folder
            ("ours_int8", "ours-warm", {"corpus": corpus, "index_dir": str(work / "ours-index-int8"),
                                        "backend": "onnx-int8", "verifier": "none"}),
            ("naive", "naive-warm", {"dir": str(naive_dir)}),
            ("bm25", "bm25-warm", {"dir": str(bm25_dir)}),
        ):
            log(f"warm: {name} ({len(questions)} questions x {warm_rounds})")
            out[name] = run_worker(worker, {**args, **extra})
        return out

    def api() -> dict:
        out = {}
        serve = [py, "-m", "assistant", "serve", *corpus_args, "--index-dir", str(ours_index), *model_args,
                 "--port", "0", "--data-dir", str(work / "serve-data")]  # the URL comes from its "ready" line
        for name, extra in (("ours", []), ("ours_int8v", ["--verifier", "mpnet-int8"]), ("ours_fast", ["--verifier", "none"])):
            log(f"api: {name} ({' '.join(['assistant serve', *extra])}) with {clients} clients, {requests} requests")
            out[name] = serve_and_load([*serve, *extra], questions, clients=clients, requests=requests, env=_worker_env())
        for name, folder in (("naive", naive_dir), ("bm25", bm25_dir)):
            port = free_port()
            log(f"api: {name} baseline server with {clients} clients")
            out[name] = serve_and_load(
                [py, "-m", WORKERS_MODULE, "serve-baseline",
                 json.dumps({"kind": name, "dir": str(folder), "port": port, "model": model})],
                questions, clients=clients, requests=requests, env=_worker_env(), url=f"http://127.0.0.1:{port}/",
            )
        return out

    def build() -> dict:
        rows, _ = load_stackfaq(stackfaq)
        file = work / f"build-{build_passages}-v{SYNTHETIC_VERSION}" / "faq.jsonl"
        write_jsonl(make_faq_rows(rows, build_passages, seed=1), file)
        fresh = work / f"build-{build_passages}-index"
        shutil.rmtree(fresh, ignore_errors=True)
        log(f"build: ours, {build_passages} passages of ~60 words (retriever and verifier indexes)")
        out = {"ours": run_worker("ours-build", {
            "corpus": [str(file)], "index_dir": str(fresh), "export": str(export), "verifier": True,
        })}
        shutil.rmtree(fresh, ignore_errors=True)
        log("build: ours --verifier none")
        out["ours_fast"] = run_worker("ours-build", {"corpus": [str(file)], "index_dir": str(fresh), "export": str(export)})
        shutil.rmtree(fresh, ignore_errors=True)
        log("build: ours with the int8 encoder")
        out["ours_int8"] = run_worker("ours-build", {
            "corpus": [str(file)], "index_dir": str(fresh), "variant": "int8", "models": str(work / "quality-models"),
            "model": model,
        })
        log("build: naive")
        out["naive"] = run_worker("naive-build", {"corpus": [str(file)], "out": str(work / "build-naive"), "model": model})
        log("build: bm25")
        out["bm25"] = run_worker("bm25-build", {"corpus": [str(file)], "out": str(work / "build-bm25")})
        for name, v in out.items():
            v["passages_per_s"] = v["passages"] / v["seconds"]
            if name != "bm25":  # ours embeds each distinct unit text, naive one text per passage
                v["texts_per_passage"] = v.get("embedded", v["passages"]) / v["passages"]
                v["texts_per_s"] = v.get("embedded", v["passages"]) / v["seconds"]
        return out

    def reindex() -> dict:
        rows, _ = load_stackfaq(stackfaq)
        file = work / f"reindex-{reindex_passages}-v{SYNTHETIC_VERSION}" / "faq.jsonl"
        if not file.is_file():
            write_jsonl(make_faq_rows(rows, reindex_passages, seed=2), file)
        log(f"reindex: ours ({reindex_passages} passages; the first run builds the index once, ~minutes)")
        out = {"ours": run_worker("ours-reindex", {
            "corpus": [str(file)], "file": str(file), "line": reindex_passages // 2,
            "index_dir": str(work / f"reindex-{reindex_passages}-v{SYNTHETIC_VERSION}-index"), "export": str(export),
        })}
        log(f"reindex: naive re-embeds all {reindex_passages} passages")
        out["naive"] = run_worker("naive-build", {"corpus": [str(file)], "out": str(work / "reindex-naive"), "model": model})
        log("reindex: bm25 re-indexes everything")
        out["bm25"] = run_worker("bm25-build", {"corpus": [str(file)], "out": str(work / "reindex-bm25")})
        return out

    def scale() -> dict:
        sizes = sorted(SCALES[s] for s in scales)
        data = scale_data(work, stackfaq, export, sizes[-1])
        out = {}
        for n in sizes:
            args = {"n": n, "work": str(work), **data}
            point = {}
            for kind in ("naive", "ours", "bm25"):  # naive first: its exact top-10 is the recall truth
                log(f"scale {n}: {kind}: build")
                point[kind] = run_worker("scale-build", {**args, "kind": kind})
                log(f"scale {n}: {kind}: serve (fresh process)")
                point[kind].update(run_worker("scale-serve", {**args, "kind": kind}))
                log(f"scale {n}: {kind}: {json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in point[kind].items()})}")
            out[str(n)] = point
        return out

    def quality() -> dict:
        golds = {"gold": str(gold)}
        if dev is not None and dev.is_file():
            golds["dev"] = str(dev)
        log("quality: gold sets with sentence-transformers, ONNX fp32 and ONNX int8")
        return run_worker("quality", {
            "corpus": corpus, "work": str(work), "models": str(work / "quality-models"), "gold": golds, "model": model,
        })

    section("cold", cold)
    section("warm", warm)
    section("api", api)
    section("build", build)
    section("reindex", reindex)
    section("scale", scale)
    section("quality", quality)
    return results
