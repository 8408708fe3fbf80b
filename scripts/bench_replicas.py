"""Requests/s of one and of two `assistant serve` replicas on this machine (loopback), with the
feedback log in SQLite (one replica) and in PostgreSQL (one and two replicas).

    PYTHONPATH=. python scripts/bench_replicas.py --seconds 20 --clients 8 --out bench-out/replicas.json

The index is built once by ``assistant index``; every replica opens it. The PostgreSQL server is
a throwaway cluster (tests/pg.py; needs Debian's postgresql) unless ``--database-url`` names one
(whose database must be empty). Each configuration runs ``--seconds`` of closed-loop load from
``--clients`` threads: POST /api/ask spread round-robin over the replicas, and every third
answer rated through the next replica (POST /api/feedback with its rating token). Reports
requests/s, p50/p95 latency and the status counts per configuration, and the time to log one
answer and to count the log (as /healthz does) on each backend, as JSON. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
READY_RE = re.compile(r"ready in [\d.]+s: open (http://\S+/)")
QUESTIONS = [
    "Can I cancel my order?", "How long does shipping take?", "Do you accept PayPal?", "Can I return a ring?",
    "Do you sell watches?", "Is the silver real?", "How do I track my parcel?", "Can I resize my ring?",
]


def start(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    out = log.open("w")
    proc = subprocess.Popen([sys.executable, "app.py", "--port", "0", *args], cwd=ROOT, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if m := READY_RE.search(log.read_text()):
            return proc, m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not start; its log:\n{log.read_text()}")


def load(urls: list[str], seconds: float, clients: int) -> dict:
    samples: list[tuple[str, int, float]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(n: int) -> None:
        k = n
        with httpx.Client(timeout=60) as c:
            while time.monotonic() < deadline:
                k += 1
                own, other = urls[k % len(urls)], urls[(k + 1) % len(urls)]
                t0 = time.perf_counter()
                r = c.post(own + "api/ask", json={"question": QUESTIONS[k % len(QUESTIONS)]})
                got = [("ask", r.status_code, (time.perf_counter() - t0) * 1000)]
                if r.status_code == 200 and k % 3 == 0:
                    body = r.json()
                    t0 = time.perf_counter()
                    rating = {"interaction_id": body["interaction_id"], "rating_token": body["rating_token"], "helpful": True}
                    f = c.post(other + "api/feedback", json=rating)
                    got.append(("feedback", f.status_code, (time.perf_counter() - t0) * 1000))
                with lock:
                    samples.extend(got)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = [s[2] for s in samples if s[0] == "ask"]
    return {
        "requests": len(samples), "seconds": round(wall, 1), "requests_per_s": round(len(samples) / wall, 1),
        "asks_per_s": round(len(ms) / wall, 1),
        "ask_p50_ms": round(float(np.percentile(ms, 50)), 1), "ask_p95_ms": round(float(np.percentile(ms, 95)), 1),
        "statuses": dict(Counter(f"{kind} {status}" for kind, status, _ in samples)),
    }


def log_timings(url: str, n: int = 300) -> dict:
    """Milliseconds to log one answer (with its rating token) and to count the log, on ``url``."""
    from assistant.schema import Answer
    from assistant.server.feedback import FeedbackStore, new_rating_token

    answer = Answer(question="How long does shipping take?", answered=True, answer="2 days. [1]", confidence=0.9)
    with FeedbackStore(url) as store:
        for _ in range(20):
            store.record("ask", answer)
        t0 = time.perf_counter()
        for _ in range(n):
            store.record("ask", answer, rating_token=new_rating_token())
        record_ms = (time.perf_counter() - t0) / n * 1000
        t0 = time.perf_counter()
        for _ in range(50):
            store.totals()
        totals_ms = (time.perf_counter() - t0) / 50 * 1000
    return {"record_ms": round(record_ms, 2), "totals_ms": round(totals_ms, 2), "rows": n + 20}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="load per configuration (default 20)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--verifier", choices=("mpnet", "none"), default="mpnet", help="as `serve --verifier` (default mpnet)")
    p.add_argument("--database-url", help="an empty PostgreSQL database to use instead of a throwaway cluster")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_DISABLE_PROGRESS_BARS="1")
    if "ASSISTANT_MODEL_CACHE" in os.environ:
        env["ASSISTANT_MODEL_CACHE"] = os.environ["ASSISTANT_MODEL_CACHE"]
    cluster = None
    if args.database_url:
        pg_urls = [args.database_url, args.database_url, args.database_url]
    else:
        from tests.pg import cluster_from_env_or_start

        cluster = cluster_from_env_or_start()
        if isinstance(cluster, str):
            raise SystemExit(cluster)
        pg_urls = [cluster.create_database(f"bench_{n}") for n in range(3)]
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                     "clients": args.clients, "verifier": args.verifier, "configurations": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
            work = Path(tmp)
            index = work / "index"
            common = ["--index-dir", str(index), "--verifier", args.verifier]
            subprocess.run([sys.executable, "-m", "assistant", "index", *common, "-q"], cwd=ROOT, env=env, check=True)
            plans = [("1 replica, SQLite", 1, None), ("1 replica, PostgreSQL", 1, pg_urls[0]), ("2 replicas, PostgreSQL", 2, pg_urls[1])]
            for plan, (name, replicas, url) in enumerate(plans):
                procs = []
                try:
                    urls = []
                    for n in range(replicas):
                        extra = {"ASSISTANT_DATABASE_URL": url} if url else {}
                        proc, base = start(
                            [*common, "--rate-limit", "off", "--data-dir", str(work / f"data-{plan}-{n}")],
                            {**env, **extra}, work / f"server-{plan}-{n}.log",
                        )
                        procs.append(proc)
                        urls.append(base)
                    load(urls, min(3.0, args.seconds), args.clients)  # warm-up, not counted
                    results["configurations"][name] = load(urls, args.seconds, args.clients)
                    print(name, json.dumps(results["configurations"][name]), file=sys.stderr)
                finally:
                    for proc in procs:
                        proc.terminate()
                        proc.wait(60)
            results["log_write"] = {
                "sqlite": log_timings(f"sqlite:///{work / 'timing' / 'feedback.sqlite3'}"),
                "postgresql": log_timings(pg_urls[2]),
            }
            print("log write", json.dumps(results["log_write"]), file=sys.stderr)
    finally:
        if cluster is not None:
            cluster.stop()
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
