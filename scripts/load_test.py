"""Bounded load test of the real web server on loopback: concurrent clients, mixed requests.

    python scripts/load_test.py                      # 50 clients, 2,000 requests (the full size)
    python scripts/load_test.py --clients 10 --requests 200 --out bench-out/load-small.json

Starts ``python app.py`` on a free 127.0.0.1 port (rate limit off, a fresh data folder; the
index and the model's ONNX export are made first by ``assistant index``, so the server starts
as it does on every start after the first, without torch in memory), or
targets a running server given with ``--url`` (loopback only; give ``--server-pid`` to get its
memory). ``--clients`` threads, each with its own keep-alive connection, share ``--requests``
requests mixed over POST /api/ask (50%), /api/draft (20%) and /api/feedback (30%, rating an
answer an earlier ask returned). The run stops at ``--max-seconds`` whatever happens.

Reports throughput, latency p50/p95/p99 (all and per endpoint), the status counts and errors
(any non-2xx answer or failed request), and the server's resident memory (from /proc) before
and after the run and at its peak. Writes everything as JSON to ``--out``. Exit status 0 when
every request got a 2xx answer in time, 1 otherwise. Nothing is asserted about timings.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

from assistant.server.process import ServerError, ServerProcess, child_env

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "evals" / "dev.jsonl"
MIX = (("ask", 0.5), ("draft", 0.2), ("feedback", 0.3))


@dataclass(frozen=True)
class Sample:
    kind: str
    status: int  # HTTP status, 0 when the request failed without an answer
    ms: float
    error: str = ""  # exception name for a failed request


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank), mean and max of ``values`` in ms, rounded to 0.1."""
    if not values:
        return {}
    p50, p95, p99 = np.percentile(values, [50, 95, 99], method="inverted_cdf")
    return {
        "p50": round(float(p50), 1), "p95": round(float(p95), 1), "p99": round(float(p99), 1),
        "mean": round(float(np.mean(values)), 1), "max": round(float(np.max(values)), 1),
    }


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB from /proc (None where /proc is not available)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class MemoryWatch:
    """Samples a process's RSS on a thread every ``every_s`` seconds."""

    def __init__(self, pid: int | None, every_s: float = 0.25) -> None:
        self.pid = pid
        self.every_s = every_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            if (v := rss_mb(self.pid)) is not None:
                self.samples.append(v)

    def __enter__(self) -> "MemoryWatch":
        if self.pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


# --- the server ----------------------------------------------------------------------------


def start_server(*, index_dir: Path, data_dir: Path, log_path: Path, corpus: list[str], timeout_s: float) -> ServerProcess:
    """``python app.py`` on a free loopback port (rate limit off), its output also written to ``log_path``."""
    args = ["--rate-limit", "off", "--index-dir", str(index_dir), "--data-dir", str(data_dir)]
    for c in corpus:
        args += ["--corpus", c]
    try:
        return ServerProcess.assistant(
            *args, entry=[sys.executable, "app.py"], cwd=ROOT, env=child_env(), log_path=log_path,
            ready_timeout_s=timeout_s, stop_signal=signal.SIGINT,
        )
    except ServerError as exc:
        raise SystemExit(str(exc)) from None


def prepare_index(index_dir: Path, corpus: list[str]) -> None:
    """Build (or check) the index and the model export the server will use, in a separate process."""
    cmd = [sys.executable, "-m", "assistant", "index", "-q", "--index-dir", str(index_dir)]
    for c in corpus:
        cmd += ["--corpus", c]
    proc = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"assistant index failed ({proc.returncode}):\n{proc.stderr}")


# --- the clients ---------------------------------------------------------------------------


def plan(n: int, seed: int) -> list[str]:
    """The endpoint of each of ``n`` requests: the MIX proportions exactly, in a seeded order."""
    kinds: list[str] = []
    for kind, share in MIX:
        kinds += [kind] * round(n * share)
    kinds = (kinds + ["ask"] * n)[:n]
    random.Random(seed).shuffle(kinds)
    return kinds


class LoadRun:
    def __init__(self, url: str, kinds: list[str], questions: list[str], *, timeout_s: float, max_seconds: float,
                 auth: tuple[str, str] | None, seed: int) -> None:
        self.url = url
        self.kinds = kinds
        self.questions = questions
        self.timeout_s = timeout_s
        self.max_seconds = max_seconds
        self.auth = auth
        self.seed = seed
        self.samples: list[Sample] = []
        self.interaction_ids: list[tuple[int, str]] = []  # (interaction_id, rating_token)
        self._next = 0
        self._lock = threading.Lock()
        self.deadline = 0.0

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= len(self.kinds) or time.monotonic() > self.deadline:
                return None
            self._next += 1
            return self._next - 1

    def _request(self, client: httpx.Client, rng: random.Random, i: int) -> Sample:
        kind = self.kinds[i]
        question = self.questions[i % len(self.questions)]
        with self._lock:
            ids = self.interaction_ids[-200:]
        if kind == "feedback" and not ids:
            kind = "ask"  # nothing to rate yet
        if kind == "ask":
            path, body = "/api/ask", {"question": question}
        elif kind == "draft":
            path, body = "/api/draft", {"question": question, "customer_name": "Dana", "agent_name": "Sam"}
        else:
            iid, token = rng.choice(ids)
            path, body = "/api/feedback", {"interaction_id": iid, "rating_token": token, "helpful": rng.random() < 0.7}
        t0 = time.perf_counter()
        try:
            r = client.post(path, json=body)
        except httpx.HTTPError as exc:
            return Sample(kind, 0, (time.perf_counter() - t0) * 1000, type(exc).__name__)
        ms = (time.perf_counter() - t0) * 1000
        if kind in ("ask", "draft") and r.status_code == 200:
            with self._lock:
                self.interaction_ids.append((r.json()["interaction_id"], r.json()["rating_token"]))
        return Sample(kind, r.status_code, ms)

    def _client(self, n: int) -> None:
        rng = random.Random(self.seed * 1000 + n)
        with httpx.Client(base_url=self.url, timeout=self.timeout_s, auth=self.auth) as client:
            while (i := self._take()) is not None:
                sample = self._request(client, rng, i)
                with self._lock:
                    self.samples.append(sample)

    def run(self, clients: int) -> float:
        self.deadline = time.monotonic() + self.max_seconds
        threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            # Bounded: clients stop taking work at the deadline; a request in flight then has
            # at most timeout_s left.
            t.join(max(0.0, self.deadline - time.monotonic()) + self.timeout_s + 5)
        return time.perf_counter() - t0


def summarise(run: LoadRun, seconds: float, requested: int, clients: int, memory: dict) -> dict:
    samples = list(run.samples)
    ok = [s for s in samples if 200 <= s.status < 300]
    errors = Counter(s.error or str(s.status) for s in samples if not 200 <= s.status < 300)
    by_kind = {
        kind: {"requests": sum(s.kind == kind for s in samples), **percentiles([s.ms for s in samples if s.kind == kind])}
        for kind, _ in MIX
    }
    return {
        "requested": requested,
        "completed": len(samples),
        "not_sent": requested - len(samples),
        "clients": clients,
        "seconds": round(seconds, 2),
        "throughput_rps": round(len(samples) / seconds, 1) if seconds else 0.0,
        "latency_ms": percentiles([s.ms for s in ok]),
        "by_endpoint": by_kind,
        "status_counts": dict(sorted(Counter(str(s.status) for s in samples).items())),
        "errors": dict(errors),
        "error_count": sum(errors.values()),
        "server_5xx": sum(500 <= s.status < 600 for s in samples),
        "memory_mb": memory,
    }


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--requests", type=int, default=2000, help="requests in all (default 2000)")
    parser.add_argument("--max-seconds", type=float, default=600, help="stop sending after this long (default 600)")
    parser.add_argument("--timeout", type=float, default=60, help="per-request timeout in seconds (default 60)")
    parser.add_argument("--url", help="a running server on 127.0.0.1 to target instead of starting one")
    parser.add_argument("--server-pid", type=int, help="with --url: the server's pid, to report its memory")
    parser.add_argument("--corpus", action="append", default=[], help="corpus for the started server (default: bundled)")
    parser.add_argument("--index-dir", help="index folder for the started server (default: a temporary one)")
    parser.add_argument("--warmup", type=int, default=20, help="sequential asks before the timed run (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request mix (default 0)")
    parser.add_argument("--out", default="bench-out/load.json", help="where to write the JSON report")
    args = parser.parse_args(argv)
    for name in ("clients", "requests"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.max_seconds <= 0 or args.timeout <= 0:
        parser.error("--max-seconds and --timeout must be > 0")
    if args.url and not _loopback(args.url):
        parser.error(f"--url must be a loopback address (127.0.0.1, ::1, localhost), got {args.url}")
    user, password = os.environ.get("ASSISTANT_USER"), os.environ.get("ASSISTANT_PASSWORD")
    auth = (user, password) if args.url and user and password else None
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines() if line.strip()]

    with tempfile.TemporaryDirectory(prefix="load-test-") as tmp:
        work = Path(tmp)
        server = None
        if args.url:
            url, pid = args.url.rstrip("/") + "/", args.server_pid
        else:
            index_dir = Path(args.index_dir) if args.index_dir else work / "index"
            prepare_index(index_dir, args.corpus)
            t0 = time.perf_counter()
            server = start_server(
                index_dir=index_dir, data_dir=work / "data", log_path=work / "server.log", corpus=args.corpus, timeout_s=600,
            )
            url, pid = server.url, server.pid
            print(f"server ready at {url} in {time.perf_counter() - t0:.1f}s (pid {pid})", file=sys.stderr)
        try:
            with httpx.Client(base_url=url, timeout=args.timeout, auth=auth) as c:
                for i in range(args.warmup):
                    c.post("/api/ask", json={"question": questions[i % len(questions)]}).raise_for_status()
            rss_before = rss_mb(pid) if pid else None
            run = LoadRun(url, plan(args.requests, args.seed), questions, timeout_s=args.timeout,
                          max_seconds=args.max_seconds, auth=auth, seed=args.seed)
            with MemoryWatch(pid) as watch:
                seconds = run.run(args.clients)
            time.sleep(0.5)  # let the server settle before the last reading
            rss_after = rss_mb(pid) if pid else None
            health = httpx.get(url + "healthz", timeout=args.timeout).json()
        finally:
            if server is not None:
                server.stop()
        memory = {
            "before": round(rss_before, 1) if rss_before else None,
            "after": round(rss_after, 1) if rss_after else None,
            "peak": round(max(watch.samples), 1) if watch.samples else None,
            "growth": round(rss_after - rss_before, 1) if rss_before and rss_after else None,
        }
        result = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "target": "started app.py" if server else url,
            **summarise(run, seconds, args.requests, args.clients, memory),
            "server_feedback_after": health.get("feedback"),
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    lat, mem = result["latency_ms"], result["memory_mb"]
    print(
        f"{result['completed']}/{args.requests} requests from {args.clients} clients in {result['seconds']:.1f}s: "
        f"{result['throughput_rps']:.1f} req/s; latency p50 {lat.get('p50')} ms, p95 {lat.get('p95')} ms, "
        f"p99 {lat.get('p99')} ms; errors {result['error_count']} {result['errors'] or ''}"
    )
    for kind, s in result["by_endpoint"].items():
        print(f"  {kind:<9} {s['requests']:>5} requests  p50 {s.get('p50')} ms  p95 {s.get('p95')} ms  p99 {s.get('p99')} ms")
    print(f"server RSS: {mem['before']} MiB before, {mem['after']} MiB after (peak {mem['peak']}, growth {mem['growth']} MiB)")
    print(f"written to {out}")
    return 0 if result["error_count"] == 0 and result["not_sent"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
