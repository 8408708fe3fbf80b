"""The benchmark's pure helpers: percentiles, recall, synthetic data, the summary table."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.errors import ConfigError
from benchmarks.data import base_of, load_stackfaq, make_faq_rows, synthetic_vectors
from benchmarks.measure import percentile, recall_at_k
from benchmarks.run import SCALES, SECTIONS, run_bench, run_worker
from benchmarks.tables import summary_rows

ROWS = [
    {"id": f"t{i}", "title": f"How do I do thing {i}?",
     "text": f"First you open the settings page number {i}. Then you click the big blue button. "
             f"After that the change is saved for account {i}. You can undo it later from the history tab."}
    for i in range(20)
]


@pytest.mark.parametrize(
    "exact, found, k, want",
    [
        ([[1, 2, 3]], [[1, 2, 3]], 3, 1.0),
        ([[1, 2, 3]], [[3, 2, 1]], 3, 1.0),  # order inside the top k does not matter
        ([[1, 2, 3]], [[1, 9, 8]], 3, 1 / 3),
        ([[1, 2], [3, 4]], [[1, 2], [5, 6]], 2, 0.5),
    ],
)
def test_recall_at_k(exact, found, k, want):
    assert recall_at_k(np.array(exact), np.array(found), k) == pytest.approx(want)


def test_recall_rows_must_match():
    with pytest.raises(ValueError, match="2 exact rows but 1 found rows"):
        recall_at_k(np.zeros((2, 3)), np.zeros((1, 3)), 3)


def test_percentile():
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([10.0], 95) == 10.0
    with pytest.raises(ValueError, match="percentile of an empty list"):
        percentile([], 50)


def test_faq_rows_are_distinct_and_about_sixty_words():
    rows = make_faq_rows(ROWS, 50, seed=3)
    assert len(rows) == 50 and len({r["answer"] for r in rows}) == 50
    assert all(60 <= len(r["answer"].split()) <= 60 + 40 for r in rows)
    assert len({r["question"] for r in rows}) == 50  # no two rows share a question
    assert all(r["question"].rsplit(" (#", 1)[0] in {x["title"] for x in ROWS} for r in rows)
    assert make_faq_rows(ROWS, 50, seed=3) == rows  # deterministic


def test_synthetic_vectors_stay_close_to_their_base_and_are_unit_length(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((30, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    vecs = synthetic_vectors(base, 500, tmp_path / "v.npy", noise=0.3)
    assert vecs.shape == (500, 16) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    cos_to_base = np.sum(vecs * base[base_of(500, 30)], axis=1)
    assert cos_to_base.min() > 0.8  # noise of norm 0.3: cosine about 0.96
    assert len(np.unique(np.round(vecs, 5), axis=0)) == 500
    again = synthetic_vectors(base, 500, tmp_path / "v.npy", noise=0.3)  # reused from disk
    np.testing.assert_array_equal(np.asarray(again), np.asarray(vecs))


def test_missing_stackfaq_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"StackFAQ file not found: .*corpus\.jsonl \(pass --stackfaq FOLDER\)"):
        load_stackfaq(tmp_path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sections": ("cold", "speed")}, "unknown bench section"),
        ({"scales": ("10k", "5m")}, r"unknown scale\(s\) 5m"),
    ],
)
def test_bad_sections_and_scales_are_refused(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        run_bench(corpus=["corpus"], work=tmp_path, gold=tmp_path / "g", dev=None, stackfaq=tmp_path, **kwargs)


def test_summary_rows_ratios_and_targets():
    results = {"sections": {
        "cold": {"ours": {"median_s": 0.5}, "naive": {"median_s": 10.0}, "bm25": {"median_s": 0.25}},
        "build": {"ours": {"passages_per_s": 100.0}, "naive": {"passages_per_s": 50.0}, "bm25": {"passages_per_s": 1000.0}},
        "scale": {"1000000": {
            "ours": {"p95_ms": 40.0, "recall@10": 0.97, "rss_mb": 900.0, "build_s": 60.0, "index_type": "ivf"},
            "naive": {"p95_ms": 200.0, "recall@10": 1.0, "rss_mb": 1600.0, "build_s": 5.0},
            "bm25": {"p95_ms": 50.0, "rss_mb": 2000.0, "build_s": 100.0},
        }},
    }}
    rows = {r["figure"]: r for r in summary_rows(results)}
    cold = rows["cold start: fresh process, 1 question (s, median)"]
    assert cold["naive/ours"] == pytest.approx(20.0) and cold["bm25/ours"] == pytest.approx(0.5) and cold["met"] == "yes"
    build = rows["index build (passages/s, ~60 words)"]
    assert build["naive/ours"] == pytest.approx(2.0) and build["met"] == "NO"
    assert rows["1M vectors: query p95 (ms)"]["met"] == "NO"
    assert rows["1M vectors: recall@10 vs exact"]["met"] == "yes"
    assert rows["1M vectors: recall@10 vs exact"]["bm25/ours"] is None  # BM25 has no recall vs dense search
    assert rows["1M vectors [ivf]: build (s)"]["target"] == ""


def test_the_cli_lists_the_benchmarks_sections_and_scales():
    from assistant.cli import bench as cli

    assert cli.SECTIONS == SECTIONS and cli.SCALES == tuple(SCALES)


def test_workers_run_as_modules_in_a_fresh_process(tmp_path, tiny_corpus):
    """``python -m benchmarks.workers``: a BM25 index built in one process answers in another."""
    built = run_worker("bm25-build", {"corpus": [str(tiny_corpus)], "out": str(tmp_path / "bm25")})
    assert built["passages"] == 5 and built["seconds"] > 0 and built["peak_rss_mb"] > 0
    assert run_worker("bm25-ask", {"dir": str(tmp_path / "bm25"), "question": "how long does shipping take"}) == {}
    with pytest.raises(RuntimeError, match="bench worker no-such-worker failed"):
        run_worker("no-such-worker", {})


@pytest.mark.slow
def test_profile_ask_times_each_stage_of_real_questions(tmp_path, tiny_corpus, model_cache):
    """scripts/profile_ask.py on the real model: every question's stages add up to no more than its time."""
    import json
    import subprocess
    import sys

    from .app_process import ROOT, child_env, index_dir_with_model

    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question": q}) + "\n" for q in
                                 ("How long does shippingg take?", "Can I return it and do you refund the postage?")))
    out = tmp_path / "profile.json"
    proc = subprocess.run(
        [sys.executable, "scripts/profile_ask.py", "--corpus", str(tiny_corpus), "--questions", str(questions),
         "--index-dir", str(index_dir_with_model(tmp_path / "index", model_cache)), "--verifier", "none",
         "--out", str(out)],
        cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert set(result) == {"pass1_cold_sentence_cache", "pass2_warm_sentence_cache"}
    for name, run in result.items():
        assert [r["question"] for r in run["rows"]] == ["How long does shippingg take?",
                                                         "Can I return it and do you refund the postage?"]
        for r in run["rows"]:
            assert {"clean", "typo correction", "encode question (MiniLM)", "BM25 scores", "compose"} <= set(r["stages"])
            assert sum(r["stages"].values()) <= r["ms"] * 1.01
        assert run["rows"][1]["parts"] == 2 and run["rows"][0]["unknown_words"] == 1
    assert "pass2_warm_sentence_cache: CPU time p50" in proc.stdout
