"""The JSON API under concurrent clients: ``clients`` threads POST ``/api/ask``; latency and errors."""

from __future__ import annotations

import threading
import time

import httpx

from assistant.server.process import ServerProcess
from benchmarks.measure import percentile


def load_test(url: str, questions: list[str], *, clients: int = 8, requests: int = 400) -> dict:
    """``clients`` threads POST ``/api/ask`` ``requests`` times in all; latency percentiles and errors."""
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    per_client = max(1, requests // clients)

    def client(c: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            http.post("/api/ask", json={"question": questions[c % len(questions)]})  # connection warm-up
            for i in range(per_client):
                q = questions[(c * per_client + i) % len(questions)]
                t = time.perf_counter()
                try:
                    r = http.post("/api/ask", json={"question": q})
                    ok = r.status_code == 200 and "answer" in r.json()
                    problem = "" if ok else f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, problem = False, f"{type(exc).__name__}: {exc}"
                dt = (time.perf_counter() - t) * 1000
                with lock:
                    times.append(dt)
                    if not ok:
                        errors.append(problem)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95), "requests": len(times),
        "errors": len(errors), "throughput_rps": len(times) / wall, "error_samples": sorted(set(errors))[:5],
    }


def serve_and_load(
    command: list[str], questions: list[str], *, clients: int, requests: int, env: dict[str, str], url: str | None = None,
) -> dict:
    """Start a server (``url``: where it listens, when its command fixes the port), load it, stop it.

    One client first (its p50/p95 join the figures as ``single_client_*``), then ``clients``.
    """
    with ServerProcess(command, url=url, env=env, stop_timeout_s=20) as server:
        single = load_test(server.url, questions, clients=1, requests=min(requests, 130))
        out = load_test(server.url, questions, clients=clients, requests=requests)
    out["single_client_p50_ms"] = single["p50_ms"]
    out["single_client_p95_ms"] = single["p95_ms"]
    return out
