"""Measure the web app as a user meets it: launch-to-first-answer and HTTP answer latency.

    python scripts/bench_web.py [--requests 50] [--out bench-out/web.json]

1. `python app.py` with an empty index folder (the index is built on start), timed from the
   process launch to the first answer of POST /api/ask; then again with that index in place.
2. With the second server up: N sequential POST /api/ask requests (questions from
   evals/dev.jsonl, cycled), client-side latency p50/p95/max, plus the server's own latency_ms.
Prints the figures and writes them as JSON to --out. Nothing is asserted: it only measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from assistant.server.process import ServerProcess
from assistant.settings import offline_env

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(rank) - 1]


def first_answer(index_dir: Path, data_dir: Path, work: Path, name: str) -> tuple[dict, ServerProcess]:
    """Start ``python app.py``; seconds from launch to ready and to the first answer, and its log."""
    env = {k: v for k, v in os.environ.items() if k not in ("ASSISTANT_USER", "ASSISTANT_PASSWORD")}
    server = ServerProcess.assistant(
        "--index-dir", str(index_dir), "--data-dir", str(data_dir), entry=[sys.executable, "app.py"], cwd=ROOT,
        env={**env, **offline_env()}, log_path=work / f"{name}.log", ready_timeout_s=600,
    )
    try:
        r = httpx.post(server.url + "api/ask", json={"question": "Can I cancel my order?"}, timeout=120)
        r.raise_for_status()
    except BaseException:
        server.stop()
        raise
    t_answer = time.perf_counter() - server.started
    return {"ready_s": round(server.ready_s, 2), "first_answer_s": round(t_answer, 2), "log": server.log()}, server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50, help="sequential /api/ask requests to time (default 50)")
    parser.add_argument("--out", default="bench-out/web.json", help="where to write the JSON figures")
    args = parser.parse_args()
    if args.requests < 1:
        parser.error(f"--requests must be >= 1, got {args.requests}")
    questions = [json.loads(line)["question"] for line in (ROOT / "evals" / "dev.jsonl").read_text().splitlines() if line.strip()]

    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        work = Path(tmp)
        index_dir, data_dir = work / "index", work / "data"
        fresh, server = first_answer(index_dir, data_dir, work, "fresh")
        server.stop()
        existing, server = first_answer(index_dir, data_dir, work, "existing")
        url = server.url
        try:
            client_ms, server_ms, answered = [], [], 0
            with httpx.Client(base_url=url, timeout=120) as c:
                for i in range(args.requests):
                    q = questions[i % len(questions)]
                    t = time.perf_counter()
                    r = c.post("/api/ask", json={"question": q})
                    client_ms.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    body = r.json()
                    server_ms.append(body["latency_ms"])
                    answered += body["answered"]
        finally:
            server.stop()

    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "launch_to_first_answer": {
            "fresh_index": {k: v for k, v in fresh.items() if k != "log"},
            "existing_index": {k: v for k, v in existing.items() if k != "log"},
        },
        "http_api_ask": {
            "requests": args.requests,
            "answered": answered,
            "client_ms": {
                "p50": round(percentile(client_ms, 50), 1), "p95": round(percentile(client_ms, 95), 1),
                "mean": round(statistics.fmean(client_ms), 1), "max": round(max(client_ms), 1),
            },
            "server_latency_ms": {"p50": round(percentile(server_ms, 50), 1), "p95": round(percentile(server_ms, 95), 1)},
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    f, e, h = result["launch_to_first_answer"]["fresh_index"], result["launch_to_first_answer"]["existing_index"], result["http_api_ask"]
    print(f"launch -> first answer, fresh index:    {f['first_answer_s']:.1f} s (server ready at {f['ready_s']:.1f} s)")
    print(f"launch -> first answer, existing index: {e['first_answer_s']:.1f} s (server ready at {e['ready_s']:.1f} s)")
    print(
        f"POST /api/ask x{h['requests']} sequential: p50 {h['client_ms']['p50']:.1f} ms, p95 {h['client_ms']['p95']:.1f} ms, "
        f"max {h['client_ms']['max']:.1f} ms (server-side p50 {h['server_latency_ms']['p50']:.1f} ms, "
        f"p95 {h['server_latency_ms']['p95']:.1f} ms); {h['answered']}/{h['requests']} answered"
    )
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
