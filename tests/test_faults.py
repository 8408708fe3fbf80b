"""Faults, nothing lost: damaged index files, processes killed mid-build and mid-write, corpus
edits while the server runs.

Measurements the note quotes (what a killed build left behind, acknowledged vs stored writes)
are written to test-artifacts/reliability/ by the tests that make them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from assistant.core.pipeline import Assistant
from assistant.errors import IndexError_
from assistant.index.store import Index, open_index
from assistant.server.api import create_app
from assistant.server.feedback import DB_NAME, FeedbackStore
from assistant.server.service import CorpusWatch

from .app_process import (
    ROOT,
    AppProcess,
    Lines,
    child_env,
    copy_seed_corpus,
    index_dir_with_model,
)
from .conftest import TINY_FAQ, FakeEncoder
from .live_server import live_server

ARTIFACTS = ROOT / "test-artifacts" / "reliability"


def record(name: str, data: dict) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(data, indent=2))


def live_version(idx_dir: Path) -> str:
    return (idx_dir / "CURRENT").read_text().strip()


def faq_rows(n: int, tag: str = "") -> str:
    """``n`` distinct FAQ rows as JSONL (every row a different question and answer)."""
    return "".join(
        json.dumps({"id": f"bulk-{tag}{i}", "question": f"Question {i} about item {i * 7919 % 10007}{tag}?",
                    "answer": f"Item {i} ships in {i % 9 + 1} days and costs {i * 13 % 997} euros{tag}."}) + "\n"
        for i in range(n)
    )


# --- damaged index files (tests/test_index.py covers a truncated vectors.npy) ---------------


def _flip_last_byte(f: Path) -> None:
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))


DAMAGE = {
    "truncate": lambda f: f.write_bytes(f.read_bytes()[: max(1, f.stat().st_size // 3)]),
    "flip a byte": _flip_last_byte,  # same size: only the checksum can tell
    "delete": lambda f: f.unlink(),
    "empty": lambda f: f.write_bytes(b""),
    "garbage": lambda f: f.write_bytes(bytes(range(256))),
}


@pytest.mark.parametrize(
    "name, damage, message",
    [
        ("units.npy", "truncate", r"units\.npy is missing or corrupted \(checksum mismatch\)"),
        ("hashes.npy", "flip a byte", r"hashes\.npy is missing or corrupted"),
        ("vectors.npy", "flip a byte", r"vectors\.npy is missing or corrupted"),
        ("vectors.npy", "delete", r"vectors\.npy is missing or corrupted"),
        ("manifest.json", "truncate", r"manifest\.json is missing or corrupted"),
        ("manifest.json", "delete", r"manifest\.json is missing or corrupted"),
        ("manifest.json", "flip a byte", r"manifest\.json is missing or corrupted"),
        ("checksums.json", "flip a byte", r"checksums\.json is missing or corrupted"),
        ("checksums.json", "delete", r"checksums\.json is missing or corrupted"),
        ("CURRENT", "empty", r"index pointer .*CURRENT is damaged \(it reads ''\)"),
        ("CURRENT", "garbage", r"index pointer .*CURRENT is unreadable"),
    ],
)
def test_damaged_index_file_is_detected_reported_and_rebuilt(tiny_corpus, tmp_path, fake_encoder, name, damage, message):
    idx_dir = tmp_path / "i"
    built, _ = open_index([tiny_corpus], idx_dir, fake_encoder)
    target = idx_dir / name if name == "CURRENT" else idx_dir / live_version(idx_dir) / name
    DAMAGE[damage](target)
    with pytest.raises(IndexError_, match=message):
        Index.load(idx_dir)
    logs: list[str] = []
    index, stats = open_index([tiny_corpus], idx_dir, fake_encoder, log=logs.append)
    assert stats.rebuilt and stats.reason.startswith("existing index unusable")
    assert any(re.search(message, line) and "rebuilding" in line for line in logs), logs
    assert [p.id for p in index.passages] == [p.id for p in built.passages]
    assert [p.id for p in Index.load(idx_dir).passages] == [p.id for p in built.passages]  # the rebuilt one verifies


def test_current_naming_a_missing_version_is_rebuilt(tiny_corpus, tmp_path, fake_encoder):
    idx_dir = tmp_path / "i"
    open_index([tiny_corpus], idx_dir, fake_encoder)
    (idx_dir / "CURRENT").write_text("v-does-not-exist")
    with pytest.raises(IndexError_, match=r"CURRENT is damaged \(it reads 'v-does-not-exist'\)"):
        Index.load(idx_dir)
    _, stats = open_index([tiny_corpus], idx_dir, fake_encoder)
    assert stats.rebuilt and Index.load(idx_dir).passages


# --- SIGKILL in the middle of a build ------------------------------------------------------

WIDE_ENCODER_CHILD = """
import sys
from pathlib import Path
from tests.conftest import FakeEncoder
from assistant.index.store import open_index

class Wide(FakeEncoder):  # the fake encoder at the real model's width: index files of real size
    name, fingerprint, dim = "fake-bow-384", "fake-bow-384-v1", 384

open_index([sys.argv[1]], Path(sys.argv[2]), Wide())
print("built", flush=True)
"""


def _size(f: Path) -> int:
    try:
        return f.stat().st_size
    except FileNotFoundError:
        return -1


class WideEncoder(FakeEncoder):
    name, fingerprint, dim = "fake-bow-384", "fake-bow-384-v1", 384


@pytest.mark.slow
def test_sigkill_while_the_new_index_is_being_written_leaves_the_old_one_live(tiny_corpus, tmp_path):
    idx_dir = tmp_path / "i"
    old, _ = open_index([tiny_corpus], idx_dir, WideEncoder())
    old_version = live_version(idx_dir)
    (tiny_corpus / "bulk.jsonl").write_text(faq_rows(20_000))  # ~40k vectors: ~60 MB of index files

    child = subprocess.Popen(
        [sys.executable, "-c", WIDE_ENCODER_CHILD, str(tiny_corpus), str(idx_dir)], cwd=ROOT, env=child_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen: list[str] = []
    deadline = time.monotonic() + 180
    try:
        # Kill once the first MiB of the new version's 60 MB vectors file is out: mid-write, as a crash would.
        while child.poll() is None and time.monotonic() < deadline:
            builds = list(idx_dir.glob(".build-*"))
            if builds and any(_size(b / "vectors.npy") > 1 << 20 for b in builds):
                seen = sorted(f"{f.name} ({f.stat().st_size} bytes)" for b in builds for f in b.iterdir())
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.0005)
    finally:
        if child.poll() is None:
            child.kill()
        out, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, f"the build was not killed mid-write (rc {child.returncode}): {err}"
    assert "built" not in out
    leftovers = {b.name: sorted(f"{f.name} ({f.stat().st_size} bytes)" for f in b.iterdir()) for b in idx_dir.glob(".build-*")}
    record("sigkill-index-write", {"files_when_killed": seen, "left_behind": leftovers, "live_before": old_version,
                                   "live_after": live_version(idx_dir)})
    assert leftovers and not any(f.startswith("manifest.json") for files in leftovers.values() for f in files)

    # the previous version is still the live one, verifies and answers
    assert live_version(idx_dir) == old_version
    index = Index.load(idx_dir)
    assert [p.id for p in index.passages] == [p.id for p in old.passages]
    answer = Assistant(index, WideEncoder()).ask("do you accept paypal")
    assert answer.retrieved[0].passage.id == "tiny:payment-1"  # (whether the fake encoder's score clears
    # the refusal threshold is beside the point here)

    # and the next build completes next to the abandoned one
    new, stats = open_index([tiny_corpus], idx_dir, WideEncoder())
    assert stats.rebuilt and len(new.passages) == 5 + 20_000
    assert live_version(idx_dir) != old_version and len(Index.load(idx_dir).passages) == 5 + 20_000


@pytest.mark.slow
def test_sigkill_of_assistant_index_mid_build_keeps_the_previous_index(tmp_path, model_cache, onnx_encoder):
    corpus = copy_seed_corpus(tmp_path / "faq")
    idx_dir = index_dir_with_model(tmp_path / "index", model_cache)
    # (the main index is the one killed mid-build; the verifier's index faults: tests/test_fault_injector.py)
    cli = [sys.executable, "-m", "assistant", "index", "--verifier", "none", "--corpus", str(corpus), "--index-dir", str(idx_dir)]
    first = subprocess.run(cli, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    old_version = live_version(idx_dir)
    old_ids = [p.id for p in Index.load(idx_dir).passages]

    (corpus / "bulk.jsonl").write_text(faq_rows(3000))  # 6,000 texts to embed with the real model
    proc = subprocess.Popen(cli, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc.stderr)
    try:
        lines.wait_for(r"index: building \(corpus changed\) for 3016 passages", 120)
        time.sleep(1.5)  # well into embedding
        assert proc.poll() is None, "the build finished before it could be killed: make the corpus larger"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = lines.drain()
    assert proc.returncode == -signal.SIGKILL and "index built" not in proc.stdout.read()

    assert live_version(idx_dir) == old_version
    index = Index.load(idx_dir)  # checksums verified
    assert [p.id for p in index.passages] == old_ids
    answer = Assistant(index, onnx_encoder).ask("Can I cancel my order?")
    assert answer.answered and answer.citations[0].id == "coco-jewelry-faq:order-payment-1"

    # The CLI sees the old index as valid: with the bulk file gone it is simply up to date.
    (corpus / "bulk.jsonl").unlink()
    again = subprocess.run(cli, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.startswith("index up to date"), again.stdout + again.stderr
    record("sigkill-assistant-index", {
        "killed_after_s": 1.5, "log_before_kill": log.strip().splitlines()[-3:], "live_version_kept": old_version,
        "rerun": again.stdout.strip(),
    })


# --- the feedback database and SIGKILL of the server ---------------------------------------

PASSWORD = "s3cret-never-in-logs"


@pytest.mark.slow
def test_feedback_survives_sigkill_of_the_server_during_concurrent_writes(tmp_path, model_cache):
    data_dir = tmp_path / "data"
    idx_dir = index_dir_with_model(tmp_path / "index", model_cache, seeded=True)
    env = child_env(ASSISTANT_USER="owner", ASSISTANT_PASSWORD=PASSWORD)
    server = AppProcess("--index-dir", str(idx_dir), "--data-dir", str(data_dir), "--rate-limit", "off", env=env)
    acked_asks: dict[int, str] = {}
    acked_ratings: dict[int, bool] = {}
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(t: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            n = 0
            mine: list[tuple[int, str]] = []
            while not stop.is_set():
                n += 1
                try:
                    if n % 2 == 0 and mine:
                        (iid, token), helpful = mine.pop(0), n % 4 == 0  # each answer is rated once
                        r = c.post("/api/feedback", json={"interaction_id": iid, "rating_token": token, "helpful": helpful})
                        if r.status_code == 200:
                            with lock:
                                acked_ratings[iid] = helpful
                    else:
                        q = f"Can I cancel my order? (writer {t}, request {n})"
                        r = c.post("/api/ask", json={"question": q})
                        if r.status_code == 200:
                            iid = r.json()["interaction_id"]
                            mine.append((iid, r.json()["rating_token"]))
                            with lock:
                                acked_asks[iid] = q
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError:
                    return  # the server is gone

    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:  # the staff endpoints, wrong and right password
            assert c.get("/api/insights", auth=("owner", "wrong-" + PASSWORD)).status_code == 401
            assert c.get("/api/insights", auth=("owner", PASSWORD)).status_code == 200
        threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked_asks) + len(acked_ratings) < 120 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.kill()  # SIGKILL while the writers are mid-request
    finally:
        stop.set()
        server.kill()
    for t in threads:
        t.join(30)
    log = server.log()
    assert failures == []
    assert len(acked_asks) >= 60 and len(acked_ratings) >= 20, (len(acked_asks), len(acked_ratings))

    db = data_dir / DB_NAME
    with sqlite3.connect(db) as conn:  # a plain SQLite client recovers the WAL and finds it sound
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT count(*) FROM interactions").fetchone()[0]
    with FeedbackStore(db) as store:
        lost = [iid for iid, q in acked_asks.items() if store.get(iid).question != q]
        wrong = [iid for iid, helpful in acked_ratings.items() if store.get(iid).helpful is not helpful]
        ratings = store.totals().ratings
    record("sigkill-server-feedback", {
        "acknowledged_asks": len(acked_asks), "acknowledged_ratings": len(acked_ratings),
        "interactions_in_db": rows, "ratings_in_db": ratings, "lost": len(lost), "wrong_ratings": len(wrong),
        "integrity_check": "ok",
    })
    assert lost == [] and wrong == []
    assert rows >= len(acked_asks)  # more when the kill came between a commit and its answer
    assert PASSWORD not in log and "wrong-" not in log


# --- the corpus changes while the server runs ----------------------------------------------


class GatedEncoder(FakeEncoder):
    """The fake encoder, which a test can hold still mid-refresh by clearing ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()

    def encode(self, texts, *, batch_size=64, progress=False):
        if not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        return super().encode(texts, batch_size=batch_size, progress=progress)


@pytest.fixture
def watched(tiny_corpus, tmp_path):
    """A live server over ``tiny_corpus`` that watches it; yields (url, encoder, corpus file)."""

    def start(**kwargs):
        encoder = GatedEncoder()
        assistant, _ = Assistant.open([tiny_corpus], tmp_path / "index", encoder=encoder)
        store = FeedbackStore.open(tmp_path / "data")
        kwargs.setdefault("ui", False)
        app = create_app(assistant, store, corpus=[tiny_corpus], index_dir=tmp_path / "index", **kwargs)
        return app, encoder, store

    yield start, tiny_corpus / "tiny.txt"


RETURNS_Q = {"question": "how many days do I have to return items for a refund"}


def _ask(c: httpx.Client) -> httpx.Response:
    return c.post("/api/ask", json=RETURNS_Q)


def test_an_edited_corpus_is_answered_from_the_new_text(watched):
    start, faq = watched
    app, _, store = start()
    with store, live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        assert "30 days" in _ask(c).json()["answer"]
        faq.write_text(faq.read_text().replace("30 days", "14 days"))
        r = _ask(c)  # the very next request
        assert r.status_code == 200 and "14 days" in r.json()["answer"] and "30 days" not in r.text
        health = c.get("/healthz").json()
        assert health["status"] == "ok" and health["index"]["refreshes"] == 1


def test_answers_pause_with_503_while_the_index_refreshes(watched):
    start, faq = watched
    app, encoder, store = start(refresh_wait_s=0.2)
    with store, live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        assert _ask(c).status_code == 200
        encoder.gate.clear()  # the refresh will hang in the model until the gate opens
        faq.write_text(faq.read_text().replace("30 days", "14 days"))
        for path, body in [("/api/ask", RETURNS_Q), ("/api/draft", RETURNS_Q), ("/api/ask", RETURNS_Q)]:
            r = c.post(path, json=body)
            assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
            assert r.json()["error"] == {
                "code": "index_refreshing",
                "message": "the store's policies were just updated and are being re-indexed; please try again shortly",
            }
        assert c.get("/healthz").json()["status"] == "refreshing"
        encoder.gate.set()
        deadline = time.monotonic() + 30
        while (r := _ask(c)).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.status_code == 200 and "14 days" in r.json()["answer"]


@pytest.mark.slow
def test_the_web_ui_endpoint_pauses_too(watched):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    start, faq = watched
    app, encoder, store = start(refresh_wait_s=0.2, ui=True)
    with store, live_server(app) as url:
        client = Client(url, verbose=False)
        assert client.predict("how many days do I have to return items", api_name="/ask")["answered"] is not None
        encoder.gate.clear()
        faq.write_text(faq.read_text().replace("30 days", "14 days"))
        try:
            with pytest.raises(AppError, match="being re-indexed; please try again shortly"):
                client.predict("how many days do I have to return items", api_name="/ask")
        finally:
            encoder.gate.set()


def test_an_edit_that_breaks_the_corpus_pauses_answers_until_fixed(watched):
    start, faq = watched
    app, _, store = start()
    with store, live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        assert _ask(c).status_code == 200
        broken = faq.parent / "extra.jsonl"
        broken.write_text('{"id": "x", "question": "q", "answer": "a"}\n{"id": "y", "question": \n')
        r = _ask(c)
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        error = r.json()["error"]
        assert error["code"] == "corpus_unavailable"
        assert re.search(r"cannot be loaded \(.*extra\.jsonl:2: invalid JSON", error["message"]), error["message"]
        assert c.get("/healthz").json()["status"] == "corpus_error"
        broken.write_text('{"id": "x", "question": "Do you gift wrap?", "answer": "Gift wrap costs 3 euros."}\n')
        r = c.post("/api/ask", json={"question": "do you gift wrap"})
        assert r.status_code == 200 and "3 euros" in r.json()["answer"]
        assert c.get("/healthz").json()["status"] == "ok"


def test_a_removed_corpus_is_reported_not_served_stale(watched):
    start, faq = watched
    app, _, store = start()
    with store, live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        assert _ask(c).status_code == 200
        faq.unlink()
        r = _ask(c)
        assert r.status_code == 503 and r.json()["error"]["code"] == "corpus_unavailable"
        assert "holds no supported files" in r.json()["error"]["message"]


def test_unchanged_files_cost_a_stat_not_a_hash(tiny_corpus, fake_encoder, tmp_path):
    faq = tiny_corpus / "tiny.txt"
    hour_ago = time.time() - 3600
    os.utime(faq, (hour_ago, hour_ago))
    watch = CorpusWatch([tiny_corpus])
    first = watch.fingerprint()
    assert watch.hashes == 1
    for _ in range(5):
        assert watch.fingerprint() == first
    assert watch.hashes == 1  # old, unchanged files: stat only
    os.utime(faq, (hour_ago + 60, hour_ago + 60))  # touched, same bytes: hashed once, same fingerprint
    assert watch.fingerprint() == first and watch.fingerprint() == first and watch.hashes == 2
    faq.write_text(TINY_FAQ.replace("2 working days", "3 working days"))  # same size, new mtime
    assert watch.fingerprint() != first and watch.hashes == 3

    # the service refreshes only on real content changes
    assistant, _ = Assistant.open([tiny_corpus], tmp_path / "index", encoder=fake_encoder)
    with FeedbackStore.open(tmp_path / "data") as store:
        app = create_app(assistant, store, ui=False, corpus=[tiny_corpus], index_dir=tmp_path / "index")
        with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
            assert _ask(c).status_code == 200
            os.utime(faq, (hour_ago + 120, hour_ago + 120))  # touch: no refresh
            assert _ask(c).status_code == 200 and c.get("/healthz").json()["index"]["refreshes"] == 0


@pytest.mark.slow
def test_real_server_answers_from_the_edited_corpus(tmp_path, model_cache):
    corpus = copy_seed_corpus(tmp_path / "faq")
    idx_dir = index_dir_with_model(tmp_path / "index", model_cache, seeded=True)  # the edit is what is tested, not the build
    question = {"question": "Can I cancel my order?"}
    old = "We accept order cancellations before the product is shipped or produced."
    new = "We accept order cancellations within 24 hours of purchase."
    with AppProcess("--corpus", str(corpus), "--index-dir", str(idx_dir), "--data-dir", str(tmp_path / "data")) as server:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            assert old in c.post("/api/ask", json=question).json()["answer"]
            faq = corpus / "coco-jewelry-faq.txt"
            faq.write_text(faq.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
            statuses = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                r = c.post("/api/ask", json=question)
                statuses.append(r.status_code)
                if r.status_code != 503:
                    break
                assert r.json()["error"]["code"] == "index_refreshing" and int(r.headers["retry-after"]) >= 1
                time.sleep(0.5)
            assert r.status_code == 200, r.text
            body = r.json()
            assert new in body["answer"] and old not in json.dumps(body)
        log = server.log()
    assert "rate limit: 120 JSON API requests a minute per client" in log
    assert "index: the corpus changed; refreshing the index" in log and "index: refreshed in" in log
    record("corpus-edit-real-server", {"statuses_after_edit": statuses})
