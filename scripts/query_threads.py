"""One question's encoding on 1 or 2 onnxruntime threads, spinning or not, alone and concurrent.

    python scripts/query_threads.py [--model verifier|minilm] [--runs 30]

For each setting: one caller (latency), then 2 and 4 callers sharing the session (throughput and
latency), as the server's threads would. The table behind ``QUERY_THREADS`` and the sessions'
spinning in assistant/models/onnx.py (docs/performance.md). Nothing is changed; timings only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.models.onnx import OnnxEncoder  # noqa: E402
from assistant.settings import offline_env  # noqa: E402
from benchmarks.measure import percentile  # noqa: E402

SETTINGS = ((1, True), (2, True), (2, False))  # (threads, spinning)


def encoder_for(which: str) -> OnnxEncoder:
    if which == "verifier":
        from assistant.models.verifier import open_verifier_encoder

        return open_verifier_encoder()
    from assistant.models.onnx import MODEL_CACHE, open_encoder

    return open_encoder(None, Path(".cache/seed-index") / MODEL_CACHE)


def load(encoder: OnnxEncoder, threads: int, spinning: bool, callers: int, per: int) -> tuple[float, float, float]:
    """(questions/s, p50 ms, p95 ms) with ``callers`` threads asking ``per`` questions each."""
    session = encoder._session(threads, spinning=spinning)
    encoder._session = lambda *_, **__: session  # every call of this run on the setting measured
    latencies: list[float] = []

    def caller(c: int) -> None:
        for i in range(per):
            t = time.perf_counter()
            encoder.encode([f"how long does shipping to Germany take {c} {i}"])
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(caller, range(callers)))
    wall = time.perf_counter() - start
    return len(latencies) / wall, percentile(latencies, 50) * 1000, percentile(latencies, 95) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("verifier", "minilm"), default="verifier")
    parser.add_argument("--runs", type=int, default=30, help="questions per single caller (fewer per caller when concurrent)")
    args = parser.parse_args()
    os.environ.update(offline_env())
    model = encoder_for(args.model)  # opened once; each setting gets a fresh encoder of its export
    print("| threads | spinning | 1 caller: p50 / p95 ms | 2 callers: q/s, p50 ms | 4 callers: q/s, p50 / p95 ms |")
    print("| --- | --- | --- | --- | --- |")
    for threads, spinning in SETTINGS:
        encoder = OnnxEncoder(model.path, max_tokens=model.max_tokens)
        encoder.encode(["warm up"] * 2)
        _, p50, p95 = load(encoder, threads, spinning, 1, args.runs)
        q2, p50_2, _ = load(encoder, threads, spinning, 2, max(1, args.runs * 2 // 3))
        q4, p50_4, p95_4 = load(encoder, threads, spinning, 4, max(1, args.runs * 2 // 5))
        print(f"| {threads} | {'yes' if spinning else 'no'} | {p50:.1f} / {p95:.1f} | {q2:.1f}, {p50_2:.1f} | {q4:.1f}, {p50_4:.1f} / {p95_4:.1f} |")


if __name__ == "__main__":
    main()
