"""Unit tests for assistant/evaluation/retrieval_report.py: refusal curve, sections, fields, retrievers compared."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from assistant.core.pipeline import Assistant
from assistant.evaluation.gold import GoldQuestion
from assistant.evaluation.retrieval_report import (
    compare_retrievers,
    fields_used,
    refusal_curve,
    refusal_section,
    retriever_section,
    simulated_section,
)
from assistant.schema import Passage

RESULTS = pd.DataFrame({
    "answerable": [True, True, False, False],
    "answered": [True, False, False, True],
    "evidence.p_answer": [0.9, 0.4, 0.2, 0.6],
})  # fmt: skip


def test_refusal_curve_moves_the_threshold_over_every_score():
    curve = refusal_curve(RESULTS)
    assert curve["threshold"].tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.9, 1.0 + 1e-9])
    assert curve["answerable_refused"].tolist() == [0.0, 0.0, 0.0, 0.5, 0.5, 1.0]
    assert curve["unanswerable_refused"].tolist() == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]


def test_refusal_curve_counts_a_forced_refusal_as_refused_at_every_threshold():
    # an instruction refusal: not answered although p_answer would answer (or no p_answer at all)
    results = pd.DataFrame({"answerable": [True, False, False], "answered": [True, False, False],
                            "evidence.p_answer": [0.8, 0.9, math.nan]})  # fmt: skip
    curve = refusal_curve(results)
    assert curve["threshold"].tolist() == pytest.approx([0.0, 0.8, 1.0 + 1e-9])
    assert curve["unanswerable_refused"].tolist() == [0.0, 1.0, 1.0]


def test_refusal_curve_of_one_class_is_nan_for_the_other():
    curve = refusal_curve(RESULTS[RESULTS["answerable"]])
    assert curve["unanswerable_refused"].isna().all() and curve["answerable_refused"].notna().all()


def test_refusal_section():
    section = refusal_section(RESULTS)
    assert section.title == "Refusals" and section.figures[0].name == "refusal_curve"
    assert section.figures[0].title == "Refusal curve" and section.figures[0].png[:4] == b"\x89PNG"
    assert section.tables[0].frame.to_dict("records") == [{
        "AUROC": 0.75, "unanswerable questions refused": 0.5, "answerable refused": 0.5,
        "unanswerable questions": 2, "answerable": 2,
    }]  # fmt: skip


@pytest.mark.parametrize("answerable", [[True] * 4, [False] * 4])
def test_refusal_section_needs_both_kinds_of_question(answerable):
    assert refusal_section(RESULTS.assign(answerable=answerable)) is None


def test_simulated_section_sets_left_out_copies_against_answerable_questions():
    simulated = pd.DataFrame({"answerable": [False, False], "answered": [False, False], "evidence.p_answer": [0.1, 0.3],
                              "left_out": [["a"], ["b"]]})  # fmt: skip
    section = simulated_section(RESULTS, simulated)
    assert section.title == "Leave-out simulation" and section.figures[0].name == "simulated_refusal_curve"
    assert section.tables[0].title == "Leave-out simulation: operating point"
    assert section.tables[0].frame.to_dict("records") == [{
        "AUROC": 1.0, "left-out questions refused": 1.0, "answerable refused": 0.5, "left-out questions": 2, "answerable": 2,
    }]  # fmt: skip
    assert simulated_section(RESULTS, simulated.iloc[:0]) is None
    assert simulated_section(RESULTS[~RESULTS["answerable"]], simulated) is None


@pytest.mark.parametrize(
    ("kinds", "text"),
    [
        (["faq"], "FAQ rows: question, question + answer (answer sentences embedded when quoted); BM25 over title + text"),
        (["section"], "text passages: section title + passage, each title-prefixed sentence; BM25 over title + text"),
        (["faq", "section"], ("FAQ rows: question, question + answer (answer sentences embedded when quoted); "
                              "text passages: section title + passage, each title-prefixed sentence; BM25 over title + text")),
    ],
)  # fmt: skip
def test_fields_used(kinds, text):
    index = SimpleNamespace(passages=[Passage(f"p{i}", "d", "t", "x", "f", 1, kind) for i, kind in enumerate(kinds)])
    assert fields_used(index) == text


GOLD = [
    GoldQuestion("pay", "Do you accept PayPal?", relevant_ids=("tiny:payment-1",)),
    GoldQuestion("ret", "Can I return items for a refund?", relevant_ids=("tiny:returns-1",)),
    GoldQuestion("cash", "cash?", must_include=("do not accept cash",)),
    GoldQuestion("mars", "Do you ship to Mars?", answerable=False),
]


@pytest.fixture
def assistant(fake_assistant) -> Assistant:
    return fake_assistant


def test_compare_retrievers_scores_each_mode_on_answerable_questions(assistant):
    table = compare_retrievers(assistant, GOLD)
    assert table["retriever"].tolist() == ["hybrid, adaptive w=0.2 (default)", "dense only", "BM25 only"]
    assert table["n"].tolist() == [3, 3, 3]
    assert list(table.columns) == ["retriever", "n", "hit@1", "hit@3", "hit@5", "mrr@10"]
    for _, row in table.iterrows():
        assert 0 <= row["hit@1"] <= row["hit@3"] <= row["hit@5"] <= 1
        assert row["hit@1"] <= row["mrr@10"] <= 1
    hybrid = table.iloc[0]
    ranks = []
    for q in GOLD[:3]:
        ids = [h.passage.id for h in assistant.retriever.search(q.question, 10)]
        target = {"pay": "tiny:payment-1", "ret": "tiny:returns-1", "cash": "tiny:payment-2"}[q.id]
        ranks.append(ids.index(target) + 1)
    assert hybrid["hit@1"] == pytest.approx(round(np.mean([r == 1 for r in ranks]), 4))
    assert hybrid["mrr@10"] == pytest.approx(round(np.mean([1 / r for r in ranks]), 4))


def test_compare_retrievers_with_a_verifier_adds_the_reranked_row(assistant):
    class Verifier:
        name = "fake-verifier"

        def embed(self, text):
            return np.ones(2, dtype=np.float32)

        def embed_many(self, texts):
            return np.stack([self.embed(t) for t in texts])

        def passage_scores(self, qvec, indices):
            return np.linspace(0.9, 0.1, len(indices)).astype(np.float32)  # keeps the retriever's order

    checked = Assistant(assistant.index, assistant.encoder, verifier=Verifier())
    table = compare_retrievers(checked, GOLD, modes=("hybrid",))
    assert table["retriever"].tolist() == ["hybrid, adaptive w=0.2", "hybrid re-ranked by the verifier (fake-verifier, default)"]
    assert table.iloc[0].drop("retriever").tolist() == table.iloc[1].drop("retriever").tolist()


def test_compare_retrievers_of_no_answerable_question_is_nan(assistant):
    table = compare_retrievers(assistant, GOLD[3:], modes=("dense",))
    assert table.iloc[0]["n"] == 0 and math.isnan(table.iloc[0]["hit@1"])


def test_retriever_section_wraps_the_table():
    table = pd.DataFrame({"retriever": ["x"], "hit@1": [1.0]})
    section = retriever_section(table)
    assert section.title == "Retrievers compared" and section.tables[0].frame is table
