"""Leave-out simulation: asking with passages left out, the simulated refusal figures, and calibrate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import assistant.evaluation as ev
from assistant.cli.main import main
from assistant.core.answer import AnswerConfig
from assistant.core.pipeline import Assistant
from assistant.core.refusal import FEATURES, RefusalModel
from assistant.evaluation.calibration import cross_validate, fit
from assistant.evaluation.gold import GoldQuestion, load_gold

# Two FAQ questions with two answers each (one "thread" per question), and one more.
FAQ_ROWS = [
    {"id": "ship-a", "question": "How long does shipping take?", "answer": "Orders ship within 2 working days."},
    {"id": "ship-b", "question": "How long does shipping take?", "answer": "Delivery takes 3 to 5 days after that."},
    {"id": "pay-a", "question": "Which payment methods do you accept?", "answer": "We accept Visa and PayPal."},
    {"id": "pay-b", "question": "Which payment methods do you accept?", "answer": "We do not accept cash."},
    {"id": "ret-a", "question": "Can I return an item?", "answer": "Returns are accepted within 30 days."},
]
GOLD_ROWS = [
    {"id": "g-ship", "question": "how long does shipping take", "relevant_ids": ["ship-a"]},
    {"id": "g-pay", "question": "which payment methods do you accept", "relevant_ids": ["pay-a", "pay-b"]},
    {"id": "g-ret", "question": "can I return an item", "must_include": ["30 days"]},
    {"id": "g-none", "question": "what is the weather on mars", "answerable": False},
]


@pytest.fixture
def faq(tmp_path):
    path = tmp_path / "faq.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in FAQ_ROWS), encoding="utf-8")
    return path


@pytest.fixture
def gold_file(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in GOLD_ROWS), encoding="utf-8")
    return path


@pytest.fixture
def assistant(faq, tmp_path, fake_encoder):
    a, _ = Assistant.open([faq], tmp_path / "idx", encoder=fake_encoder, answer=AnswerConfig(part_min_dense=0.3), default_refusal=RefusalModel.default(0.3))
    return a


def test_search_never_returns_left_out_passages(assistant):
    r = assistant.retriever
    full = r.search("which payment methods do you accept", 5)
    assert full[0].passage.id.startswith("pay-")
    left = assistant.passage_indices(["pay-a", "pay-b"])
    hits = r.search("which payment methods do you accept", 5, exclude=left)
    assert {h.passage.id for h in hits}.isdisjoint({"pay-a", "pay-b"}) and len(hits) == 3
    # k larger than what is left; everything left out
    assert len(r.search("payment", 10, exclude=left)) == 3
    assert r.search("payment", 3, exclude=np.arange(5)) == []


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_left_out_search_ranks_like_a_corpus_without_them(faq, tmp_path, fake_encoder, mode):
    from assistant.core.retrieval import RetrievalConfig

    rows = [r for r in FAQ_ROWS if not r["id"].startswith("pay-")]
    smaller = tmp_path / "smaller.jsonl"
    smaller.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = RetrievalConfig(mode=mode)
    full, _ = Assistant.open([faq], tmp_path / "i1", encoder=fake_encoder, retrieval=cfg)
    small, _ = Assistant.open([smaller], tmp_path / "i2", encoder=fake_encoder, retrieval=cfg)
    q = "do you accept returns of payment by visa"
    left = full.retriever.search(q, 5, exclude=full.passage_indices(["pay-a", "pay-b"]))
    alone = small.retriever.search(q, 5)
    assert [h.passage.id for h in left] == [h.passage.id for h in alone]
    if mode == "dense":  # BM25 idf is the full corpus's, so only dense scores are identical
        assert [round(h.score, 5) for h in left] == [round(h.score, 5) for h in alone]


def test_ask_with_leave_out_refuses_or_cites_something_else(assistant):
    answered = assistant.ask("which payment methods do you accept")
    assert answered.answered and {c.id for c in answered.citations} & {"pay-a", "pay-b"}
    left = assistant.ask("which payment methods do you accept", leave_out=["pay-a", "pay-b"])
    assert not {c.id for c in left.citations} & {"pay-a", "pay-b"}
    assert all(h.passage.id not in ("pay-a", "pay-b") for h in left.retrieved)


def test_leave_out_ids_take_the_whole_faq_question(assistant, gold_file):
    gold = {q.id: q for q in load_gold(gold_file)}
    passages = assistant.index.passages
    # the gold names one answer; its sibling answers the same question, so it goes too
    assert ev.leave_out_ids(gold["g-ship"], passages) == ["ship-a", "ship-b"]
    assert ev.leave_out_ids(gold["g-pay"], passages) == ["pay-a", "pay-b"]
    assert ev.leave_out_ids(gold["g-ret"], passages) == ["ret-a"]  # found by its facts
    assert ev.leave_out_ids(GoldQuestion("x", "anything"), passages) == []


def test_simulation_rows_and_summary(assistant, gold_file):
    gold = load_gold(gold_file)
    run = ev.run_eval(assistant, gold, simulate=True)
    sim = run.simulated
    assert list(sim["id"]) == ["g-ship", "g-pay", "g-ret"]  # answerable rows only
    assert sim["simulated"].all() and not sim["answerable"].any()
    assert sim.set_index("id").loc["g-pay", "left_out"] == ["pay-a", "pay-b"]
    for row in sim.to_dict("records"):
        assert set(row["cited_ids"]).isdisjoint(row["left_out"])
        assert row["correct"] == (not row["answered"])
    s = run.summary
    assert s["n_simulated"] == 3
    assert s["simulated_unanswerable_refused"] == pytest.approx(float((~sim["answered"]).mean()))
    assert 0 <= s["simulated_auroc"] <= 1 and 0 <= s["simulated_answerable_refused_at_90"] <= 1
    # without simulate the summary keeps its documented keys only
    plain = ev.run_eval(assistant, gold)
    assert plain.simulated is None and not any(k.startswith(("simulated_", "n_simulated")) for k in plain.summary)


def test_simulated_summary_by_hand():
    def rows(p, answered, answerable):
        return pd.DataFrame({"evidence.p_answer": p, "answered": answered, "answerable": answerable})

    results = rows([0.9, 0.8, 0.3, 0.7], [True, True, False, True], [True, True, True, False])
    simulated = rows([0.2, 0.6, 0.1, 0.4], [False, True, False, False], [False] * 4)
    s = ev.simulated_summary(results, simulated)
    assert s["simulated_unanswerable_refused"] == 0.75
    # answerable p: .9 .8 .3 ; simulated p: .2 .6 .1 .4 -> 3*4 pairs, .3 loses to .6 and .4
    assert s["simulated_auroc"] == pytest.approx(10 / 12)
    # refusing 90% of the simulated (all 4: p <= 0.6) also refuses the answerable 0.3
    assert s["simulated_answerable_refused_at_90"] == pytest.approx(1 / 3)


def test_cli_simulation_writes_csv_and_gates(faq, gold_file, tmp_path, fake_model, capsys):
    out, js = tmp_path / "out", tmp_path / "s.json"
    args = ["eval", "--corpus", str(faq), "--index-dir", str(tmp_path / "idx"), "-q", "--gold", str(gold_file)]
    assert main([*args, "--simulate-unanswerable", "--out", str(out), "--json", str(js)]) == 0
    stdout = capsys.readouterr().out
    assert "leave-out simulation" in stdout and "simulated_auroc" in stdout
    summary = json.loads(js.read_text())
    assert set(ev.METRICS) <= set(summary) and set(ev.SIMULATED_METRICS) <= set(summary) and summary["n_simulated"] == 3
    sim = pd.read_csv(out / "simulated.csv")
    assert list(sim["id"]) == ["g-ship", "g-pay", "g-ret"] and sim.loc[1, "left_out"] == "pay-a|pay-b"
    html = (out / "report.html").read_text()
    assert "Leave-out simulation" in html and html.count("data:image/png;base64,") >= 2
    # a simulated metric can gate, and a bound on one runs the simulation it needs
    assert main([*args, "--simulate-unanswerable", "--fail-under", "simulated_auroc=1.01"]) == 1
    capsys.readouterr()
    assert main([*args, "--fail-under", "simulated_unanswerable_refused=0.01", "--json", str(js)]) == 0
    assert "leave-out simulation" in capsys.readouterr().out and json.loads(js.read_text())["n_simulated"] == 3
    assert main([*args, "--fail-under", "simulated_answerable_refused_at_90=0.1"]) == 2
    assert "lower-is-better" in capsys.readouterr().err


def test_fit_moves_the_operating_point():
    rng = np.random.default_rng(0)
    n = 400
    y = np.r_[np.ones(n, int), np.zeros(n, int)]
    dense = np.r_[rng.normal(0.7, 0.1, n), rng.normal(0.5, 0.1, n)]
    X = np.c_[dense, rng.normal(0.1, 0.05, 2 * n), np.ones(2 * n), rng.uniform(0, 1, 2 * n), np.ones(2 * n)]
    assert X.shape[1] == len(FEATURES)
    for share in (0.02, 0.08, 0.2):
        m = fit(X, y, max_answerable_refused=share)
        p = np.array([m.probability(dict(zip(FEATURES, r))) for r in X])
        assert abs(np.mean(p[y == 1] < 0.5) - share) <= 1 / n + 1e-9
    balanced = fit(X, y)
    strict = fit(X, y, max_answerable_refused=0.02)
    assert strict.bias > balanced.bias  # answering more means a lower bar
    cv = cross_validate(X, y, groups=np.r_[np.arange(n), np.arange(n)], max_answerable_refused=0.08)
    assert cv["answerable_refused"] < 0.15 and cv["auroc"] > 0.8


def test_cross_validation_keeps_groups_in_one_fold(monkeypatch):
    from sklearn.model_selection import StratifiedGroupKFold

    seen = []
    real_split = StratifiedGroupKFold.split

    def split(self, X, y, groups):
        for train, test in real_split(self, X, y, groups):
            seen.append((set(groups[train]), set(groups[test])))
            yield train, test

    monkeypatch.setattr(StratifiedGroupKFold, "split", split)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, len(FEATURES)))
    y = np.r_[np.ones(30, int), np.zeros(30, int)]
    groups = np.r_[np.arange(30), np.arange(30)]  # each question with its left-out copy
    cross_validate(X, y, groups=groups, folds=5)
    assert len(seen) == 5 and all(not (train & test) for train, test in seen)


def calibrate(faq, tmp_path, *args):
    return main(["calibrate", "--corpus", str(faq), "--index-dir", str(tmp_path / "idx"), "-q", *args])


def test_calibrate_with_only_answerable_gold_needs_the_simulation(faq, tmp_path, fake_model, capsys):
    rows = [r for r in GOLD_ROWS if r.get("answerable", True)] * 3
    gold = tmp_path / "answerable.jsonl"
    gold.write_text("".join(json.dumps({**r, "id": f"{r['id']}-{i}"}) + "\n" for i, r in enumerate(rows)), encoding="utf-8")
    assert calibrate(faq, tmp_path, "--gold", str(gold)) == 2
    assert "needs both answerable and unanswerable rows (or add --simulate-unanswerable)" in capsys.readouterr().err
    assert calibrate(faq, tmp_path, "--gold", str(gold), "--simulate-unanswerable", "--folds", "2") == 0
    out = capsys.readouterr().out
    assert "9 answerable, 9 unanswerable rows (9 of them answerable questions with their passages left out)" in out
    saved = RefusalModel.load(tmp_path / "idx")
    assert saved is not None and saved.source.startswith("calibrated on answerable.jsonl") and set(saved.weights) == set(FEATURES)


@pytest.mark.parametrize("value", ["1", "-0.1", "1.5"])
def test_calibrate_rejects_a_bad_share(faq, gold_file, tmp_path, fake_model, capsys, value):
    assert calibrate(faq, tmp_path, "--gold", str(gold_file), "--max-answerable-refused", value) == 2
    assert "--max-answerable-refused must be in [0, 1)" in capsys.readouterr().err


def test_calibrate_dry_run_saves_nothing(faq, gold_file, tmp_path, fake_model, capsys):
    assert calibrate(faq, tmp_path, "--gold", str(gold_file), "--simulate-unanswerable", "--dry-run",
                     "--max-answerable-refused", "0.1", "--folds", "2") == 0  # fmt: skip
    assert "dry run: nothing saved" in capsys.readouterr().out
    assert RefusalModel.load(tmp_path / "idx") is None
