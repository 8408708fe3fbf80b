"""Two `assistant serve` replicas on one index (built once by `assistant index`) and one
PostgreSQL database: a rating reaches an answer whichever replica served it, and a replica
killed with SIGKILL in a burst of writes loses no acknowledged answer or rating."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.parse

import httpx
import pytest

from assistant.server.feedback import FeedbackStore

from .app_process import ROOT, AppProcess, child_env, index_dir_with_model

pytestmark = pytest.mark.slow


@pytest.fixture
def shared_index(tiny_corpus, tmp_path, model_cache):
    """The tiny corpus indexed once, as a deployment does before starting its replicas."""
    index = index_dir_with_model(tmp_path / "index", model_cache)
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "index", "--corpus", str(tiny_corpus), "--index-dir", str(index),
         "--verifier", "none", "-q"],
        capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return tiny_corpus, index


# Runs a command with the folder $0 mounted read-only, in a mount namespace of its own.
READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$@"'


def read_only_prefix(folder) -> list[str]:
    """A command prefix that runs its command with ``folder`` mounted read-only, or [] where this
    machine does not allow mount namespaces (not root, or a container without the capability)."""
    prefix = ["unshare", "-m", "sh", "-c", READ_ONLY, str(folder)]
    try:
        probe = subprocess.run([*prefix, "sh", "-c", f"! touch {folder}/.probe 2>/dev/null"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return prefix if probe.returncode == 0 else []


def _replica(corpus, index, data_dir, database_url: str, prefix: list[str] | None = None) -> AppProcess:
    # The URL (with its password) goes in the environment, as the docs advise, not on the command line.
    return AppProcess(
        "--corpus", str(corpus), "--index-dir", str(index), "--data-dir", str(data_dir), "--verifier", "none",
        "--rate-limit", "off", env=child_env(ASSISTANT_DATABASE_URL=database_url), prefix=prefix,
    )


def test_two_replicas_share_one_log_and_a_sigkill_loses_nothing(shared_index, tmp_path, pg_url):
    corpus, index = shared_index
    password = urllib.parse.urlsplit(pg_url).password
    a = _replica(corpus, index, tmp_path / "data-a", pg_url)
    b = None
    try:
        # The survivor opens the index read-only, as from a read-only mount (where the machine allows it).
        b = _replica(corpus, index, tmp_path / "data-b", pg_url, prefix=read_only_prefix(index))
        for replica in (a, b):
            assert "index: up to date" in replica.log()  # the shared index is opened, not rebuilt
        with httpx.Client(timeout=30) as c:
            # an answer logged through one replica is rated through the other
            answer = c.post(a.url + "api/ask", json={"question": "how long does shipping take"}).json()
            rating = {"interaction_id": answer["interaction_id"], "rating_token": answer["rating_token"], "helpful": True}
            r = c.post(b.url + "api/feedback", json=rating)
            assert r.status_code == 200, r.text
            insights = c.get(a.url + "api/insights").json()
            assert insights["totals"] == {"interactions": 1, "answered": 1, "ratings": 1, "helpful": 1}
            assert c.get(b.url + "api/export.csv").text.count("\n") == 2  # header and the one answer

        acked_asks: dict[int, str] = {}
        acked_ratings: dict[int, bool] = {}
        failures: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()
        urls = [a.url, b.url]

        def writer(t: int) -> None:
            own, other = urls[t % 2], urls[(t + 1) % 2]  # ask one replica, rate through the other
            with httpx.Client(timeout=30) as c:
                n = 0
                while not stop.is_set():
                    n += 1
                    q = f"do you accept paypal? (writer {t}, request {n})"
                    try:
                        r = c.post(own + "api/ask", json={"question": q})
                    except httpx.HTTPError:
                        own = other  # this replica is gone: carry on through the other one
                        continue
                    if r.status_code != 200:
                        failures.append(f"ask {r.status_code} {r.text[:200]}")
                        continue
                    body = r.json()
                    with lock:
                        acked_asks[body["interaction_id"]] = q
                    helpful = n % 2 == 0
                    rating = {"interaction_id": body["interaction_id"], "rating_token": body["rating_token"], "helpful": helpful}
                    try:
                        r = c.post(other + "api/feedback", json=rating)
                    except httpx.HTTPError:
                        other = own
                        continue
                    if r.status_code == 200:
                        with lock:
                            acked_ratings[body["interaction_id"]] = helpful
                    else:
                        failures.append(f"feedback {r.status_code} {r.text[:200]}")

        threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(4)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 120
            while len(acked_asks) < 80 and time.monotonic() < deadline:
                time.sleep(0.02)
            a.kill()  # SIGKILL mid-burst: no shutdown code runs
            before_kill = len(acked_asks)
            deadline = time.monotonic() + 60
            while len(acked_asks) < before_kill + 40 and time.monotonic() < deadline:
                time.sleep(0.02)  # the survivor keeps taking writes
        finally:
            stop.set()
        for t in threads:
            t.join(60)
        assert failures == []
        assert before_kill >= 80 and len(acked_asks) >= before_kill + 40, (before_kill, len(acked_asks))

        health = httpx.get(b.url + "healthz", timeout=30).json()
        assert health["status"] == "ok"
        logged = health["feedback"]["interactions"]
        # every acknowledged answer is there (more only if the kill fell between a commit and its reply)
        assert logged >= 1 + len(acked_asks)
        with FeedbackStore(pg_url) as store:
            assert store.totals().interactions == logged
            lost = [iid for iid, q in acked_asks.items() if store.get(iid).question != q]
            wrong = [iid for iid, helpful in acked_ratings.items() if store.get(iid).helpful is not helpful]
        assert lost == [] and wrong == [], (lost[:5], wrong[:5])
        assert len(acked_ratings) >= 40
    finally:
        a.kill()
        if b is not None:
            b.stop()
    for replica in (a, b):
        log = replica.log()
        assert password not in log
        assert "feedback: postgresql://assistant:***@127.0.0.1:" in log
