"""A question-time onnxruntime session with and without packed weights: its start, its first
question, and each question after, in fresh processes.

    python scripts/session_start.py [--runs 5]

Packing rearranges every weight matrix for onnxruntime's matrix kernels when the session is
made: slower to start, faster per question. The table behind ``PACK_QUESTION_WEIGHTS`` in
assistant/models/onnx.py, which `assistant ask QUESTION` (one question, then exit) turns off
(docs/performance.md, "One question, one process"). Each measurement is a fresh process, so the
models' files are in the page cache but nothing is loaded; settings alternate run by run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.settings import offline_env  # noqa: E402

QUESTION = "Can I return earrings I have already worn?"


def child(model: str, pack: bool) -> dict:
    """Times in this process: session start (made with the tokenizer), first question, the next ten."""
    import numpy as np

    import assistant.models.onnx as onnx_models

    onnx_models.PACK_QUESTION_WEIGHTS = pack
    if model == "verifier":
        from assistant.models.verifier import open_verifier_encoder

        encoder = open_verifier_encoder()
    else:
        encoder = onnx_models.open_encoder(None, ROOT / ".cache" / "seed-index" / onnx_models.MODEL_CACHE)
    threads = encoder.threads if encoder.threads is not None else onnx_models.QUERY_THREADS
    t0 = time.perf_counter()
    encoder._session(threads, spinning=False)  # the question-time session, as encode() makes it
    t1 = time.perf_counter()
    encoder.encode([QUESTION])
    t2 = time.perf_counter()
    after = []
    for i in range(10):
        t = time.perf_counter()
        encoder.encode([f"{QUESTION} {i}"])
        after.append(time.perf_counter() - t)
    return {"start_ms": (t1 - t0) * 1000, "first_ms": (t2 - t1) * 1000, "next_ms": float(np.median(after)) * 1000}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "PACK"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1] == "1")))
        return 0
    env = {**os.environ, **offline_env()}
    results: dict[tuple[str, bool], list[dict]] = {}
    for _ in range(args.runs):
        for model in ("minilm", "verifier"):
            for pack in (True, False):
                out = subprocess.run([sys.executable, __file__, "--child", model, str(int(pack))], env=env,
                                     check=True, capture_output=True, text=True).stdout  # fmt: skip
                results.setdefault((model, pack), []).append(json.loads(out.strip().splitlines()[-1]))
    print(f"load average {os.getloadavg()[0]:.2f}; median (min-max) of {args.runs} fresh processes, ms")
    print("| model | weights | session start | first question | each question after |\n| --- | --- | --- | --- | --- |")
    for (model, pack), rows in results.items():
        cells = []
        for key in ("start_ms", "first_ms", "next_ms"):
            values = [r[key] for r in rows]
            cells.append(f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})")
        print(f"| {model} | {'packed' if pack else 'not packed'} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
