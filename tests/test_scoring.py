"""Unit tests for assistant/evaluation/scoring.py on hand-made answers: rows, summary, breakdowns."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from assistant.errors import GoldError, QuestionError
from assistant.evaluation.gold import GoldQuestion
from assistant.evaluation.scoring import (
    COLUMNS,
    METRICS,
    UNANSWERABLE_SECTION,
    UNKNOWN_SECTION,
    breakdown,
    evaluate,
    expected_text,
    got_text,
    leave_out_ids,
    score_answer,
    simulated_summary,
    summarize,
)
from assistant.schema import Answer, AnswerSentence, Citation, Hit, Passage

P = [
    Passage("s:ship-1", "s", "Shipping", "All orders ship within 2 working days.", "s.txt", 1),
    Passage("s:returns-1", "s", "Returns", "You can return items within 30 days.", "s.txt", 5),
    Passage("s:pay-1", "s", "Payment", "We accept Visa and PayPal.", "s.txt", 9),
    Passage("f1", "f1", "Do you gift wrap?", "Yes, gift wrapping is free.", "f.jsonl", 1, "faq"),
    Passage("f2", "f2", "Do you gift wrap?", "Gift wrap costs nothing.", "f.jsonl", 2, "faq"),
]
BY_ID = {p.id: p for p in P}


def answer(question: str, ranked: list[str], cited: list[str], *, answered: bool = True, text: str = "",
           confidence: float = 0.9, reason: str | None = None, evidence: dict | None = None) -> Answer:  # fmt: skip
    hits = [Hit(BY_ID[i], 1.0 - n / 10) for n, i in enumerate(ranked)]
    return Answer(
        question=question, answered=answered, answer=text or " ".join(BY_ID[i].text for i in cited), confidence=confidence,
        citations=[Citation.from_hit(Hit(BY_ID[i], 0.5)) for i in cited],
        sentences=[AnswerSentence(BY_ID[i].text, i, n) for n, i in enumerate(cited, 1)],
        refusal_reason=reason, retrieved=hits, latency_ms=12.5, evidence=evidence or {},
    )  # fmt: skip


def gold(qid: str, question: str = "q?", *, answerable: bool = True, ids=(), facts=(), category="") -> GoldQuestion:
    return GoldQuestion(qid, question, answerable, tuple(ids), tuple(facts), metadata={"category": category} if category else {},
                        source="gold.jsonl", line=3)  # fmt: skip


def test_a_right_answer_scores_every_column():
    q = gold("g1", "How fast do you ship?", ids=["s:ship-1"], facts=["2 working days"], category="paraphrase")
    row = score_answer(q, answer(q.question, ["s:pay-1", "s:ship-1", "s:returns-1"], ["s:ship-1"], evidence={"p_answer": 0.9}),
                       BY_ID, section="Shipping")  # fmt: skip
    assert row == {
        "id": "g1", "question": "How fast do you ship?", "category": "paraphrase", "section": "Shipping",
        "answerable": True, "answered": True, "correct": True, "failure": "", "confidence": 0.9, "refusal_reason": "",
        "hit@1": 0.0, "hit@3": 1.0, "hit@5": 1.0, "mrr@10": 0.5, "first_relevant_rank": 2.0, "n_citations": 1,
        "n_relevant_citations": 1.0, "citation_precision": 1.0, "missing_facts": [], "cited_ids": ["s:ship-1"],
        "cited_section": "Shipping", "top_ids": ["s:pay-1", "s:ship-1", "s:returns-1"], "top_score": 1.0,
        "relevant_ids": ["s:ship-1"], "must_include": ["2 working days"],
        "expected": "says '2 working days'; cites s:ship-1", "got": "All orders ship within 2 working days.",
        "latency_ms": 12.5, "evidence.p_answer": 0.9,
        "n_sentences": 1, "lead_correct": 1.0, "n_on_point": 1, "first_sentence": "All orders ship within 2 working days.",
        "conversation": "single", "resolved_question": "How fast do you ship?", "clarify": [],
    }  # fmt: skip
    assert set(COLUMNS) <= set(row)


@pytest.mark.parametrize(
    ("q", "a", "correct", "failure"),
    [
        (gold("u", answerable=False), answer("q", ["s:pay-1"], ["s:pay-1"]), False, "answered an unanswerable question"),
        (gold("u", answerable=False), answer("q", ["s:pay-1"], [], answered=False, reason="not_covered"), True, ""),
        (gold("a", ids=["s:ship-1"]), answer("q", ["s:ship-1"], [], answered=False, reason="not_covered"), False,
         "refused an answerable question"),
        (gold("a", facts=["30 days", "receipt"]), answer("q", ["s:returns-1"], ["s:returns-1"]), False, "missing 'receipt'"),
        (gold("a", ids=["s:ship-1"]), answer("q", ["s:pay-1"], ["s:pay-1"]), False, "cites no relevant passage"),
        (gold("a", ids=["s:ship-1"], facts=["cash"]), answer("q", ["s:pay-1"], ["s:pay-1"]), False,
         "missing 'cash'; cites no relevant passage"),
        (gold("a", ids=["s"]), answer("q", ["s:pay-1"], ["s:pay-1"]), True, ""),  # a document id counts
        (gold("a", facts=["visa"]), answer("q", ["s:pay-1"], ["s:pay-1"]), True, ""),  # facts are matched case-insensitively
    ],
)  # fmt: skip
def test_verdict_and_failure(q, a, correct, failure):
    row = score_answer(q, a, BY_ID)
    assert (row["correct"], row["failure"]) == (correct, failure)


def test_unanswerable_rows_have_no_rank_metrics():
    row = score_answer(gold("u", answerable=False), answer("q", ["s:pay-1"], [], answered=False, reason="not_covered"), BY_ID)
    for col in ("hit@1", "hit@3", "hit@5", "mrr@10", "first_relevant_rank", "n_relevant_citations", "citation_precision"):
        assert math.isnan(row[col]), col
    assert row["got"] == "refused (not_covered)" and row["expected"] == "refuse and point to human support"
    assert row["missing_facts"] == [] and row["cited_section"] == ""


def test_a_row_without_retrieved_hits_has_no_top_score():
    row = score_answer(gold("a", ids=["s:ship-1"]), answer("q", [], [], answered=False, reason="no_match"), BY_ID)
    assert math.isnan(row["top_score"]) and row["top_ids"] == [] and row["hit@1"] == 0.0 and math.isnan(row["first_relevant_rank"])


def test_citation_precision_counts_cited_passages():
    row = score_answer(gold("a", ids=["s:ship-1"]), answer("q", ["s:ship-1"], ["s:ship-1", "s:pay-1"]), BY_ID)
    assert (row["n_citations"], row["n_relevant_citations"], row["citation_precision"]) == (2, 1.0, 0.5)


def test_metadata_becomes_meta_columns():
    q = GoldQuestion("m", "q", metadata={"category": "typo", "source_url": "x"})
    row = score_answer(q, answer("q", [], [], answered=False, reason="no_match"), BY_ID)
    assert row["category"] == "typo" and row["meta.source_url"] == "x" and "meta.category" not in row


@pytest.mark.parametrize(
    ("q", "text"),
    [
        (gold("a", answerable=False), "refuse and point to human support"),
        (gold("a", ids=["x", "y"]), "cites x or y"),
        (gold("a", facts=["a", "b"]), "says 'a', 'b'"),
        (gold("a"), ""),
    ],
)
def test_expected_text(q, text):
    assert expected_text(q) == text


@pytest.mark.parametrize(
    ("a", "text"),
    [
        (answer("q", [], [], answered=False, reason="instruction"), "refused (instruction)"),
        (answer("q", [], [], answered=False), "refused (no reason given)"),
        (answer("q", [], ["s:ship-1"], text="  Line one\n line two  "), "Line one line two"),
    ],
)
def test_got_text(a, text):
    assert got_text(a) == text


@pytest.mark.parametrize(
    ("q", "ids"),
    [
        (gold("a", ids=["s:ship-1"]), ["s:ship-1"]),
        (gold("a", ids=["s"]), ["s:pay-1", "s:returns-1", "s:ship-1"]),
        (gold("a", ids=["f1"]), ["f1", "f2"]),  # FAQ rows answering the same question go too
        (gold("a", facts=["Visa"]), ["s:pay-1"]),
        (gold("a"), []),
    ],
)
def test_leave_out_ids(q, ids):
    assert leave_out_ids(q, P) == ids


def frame(rows: list[tuple[bool, bool, bool, float]]) -> pd.DataFrame:
    """Rows of (answerable, answered, correct, hit@1) scored like score_answer would."""
    out = []
    for n, (answerable, answered, correct, hit) in enumerate(rows):
        out.append({
            "id": f"q{n}", "answerable": answerable, "answered": answered, "correct": correct,
            "hit@1": hit if answerable else math.nan, "hit@3": hit if answerable else math.nan,
            "hit@5": 1.0 if answerable else math.nan, "mrr@10": hit if answerable else math.nan,
            "n_citations": 1 if answered else 0,
            "n_relevant_citations": (1.0 if correct else 0.0) if answered and answerable else math.nan,
            "latency_ms": 10.0 * (n + 1), "confidence": 0.5 + n / 10, "section": "S" if n < 2 else "",
            "category": "c",
        })  # fmt: skip
    return pd.DataFrame(out)


def test_summarize():
    results = frame([(True, True, True, 1.0), (True, True, False, 0.0), (True, False, False, 1.0), (False, False, True, 0.0)])
    assert summarize(results) == {
        "answer_accuracy": 0.5, "answerable_accuracy": pytest.approx(1 / 3), "unanswerable_accuracy": 1.0,
        "over_refusal_rate": pytest.approx(1 / 3), "hit@1": pytest.approx(2 / 3), "hit@3": pytest.approx(2 / 3),
        "hit@5": 1.0, "mrr@10": pytest.approx(2 / 3), "citation_precision": 0.5,
        "latency_p50_ms": pytest.approx(25.0), "latency_p95_ms": pytest.approx(38.5),
        "n": 4, "n_answerable": 3, "n_unanswerable": 1,
        # the rows carry no sentence columns (a results table from before issue 12): undefined, not 0
        "lead_accuracy": None, "answer_precision": None, "mean_sentences": None,
    }  # fmt: skip
    assert set(METRICS) <= set(summarize(results))


def test_summarize_leaves_undefined_metrics_none():
    s = summarize(frame([(False, False, True, 0.0), (False, True, False, 0.0)]))
    assert s["unanswerable_accuracy"] == 0.5 and s["answer_accuracy"] == 0.5
    for name in ("answerable_accuracy", "over_refusal_rate", "hit@1", "mrr@10", "citation_precision"):
        assert s[name] is None, name
    assert (s["n_answerable"], s["n_unanswerable"]) == (0, 2)


def test_breakdown_groups_largest_first_with_none_for_empty():
    results = frame([(True, True, True, 1.0), (True, True, False, 0.0), (True, False, False, 1.0), (False, False, True, 0.0)])
    table = breakdown(results, "section")
    rows = {r["section"]: r for r in table.to_dict("records")}
    assert rows["S"] == {"section": "S", "n": 2, "accuracy": 0.5, "answered": 1.0, "hit@1": 0.5, "mrr@10": 0.5,
                         "mean_confidence": pytest.approx(0.55)}  # fmt: skip
    assert rows["(none)"]["n"] == 2 and rows["(none)"]["accuracy"] == 0.5 and rows["(none)"]["hit@1"] == 1.0
    assert table["section"].tolist() == ["(none)", "S"]  # equal sizes: by name


def test_breakdown_sorts_by_size():
    results = frame([(True, True, True, 1.0)] * 3).assign(category=["a", "b", "b"])
    assert breakdown(results, "category")[["category", "n"]].values.tolist() == [["b", 2], ["a", 1]]


def test_simulated_summary():
    results = pd.DataFrame({"answerable": [True, True, False], "answered": [True, True, False],
                            "evidence.p_answer": [0.9, 0.6, 0.1]})  # fmt: skip
    simulated = pd.DataFrame({"answerable": [False, False], "answered": [False, True], "evidence.p_answer": [0.2, 0.7]})
    assert simulated_summary(results, simulated) == {
        "simulated_unanswerable_refused": 0.5, "simulated_auroc": 0.75,
        "simulated_answerable_refused_at_90": 0.5,  # refusing p <= 0.7 refuses the 0.6 answerable question
        "n_simulated": 2,
    }  # fmt: skip
    assert simulated_summary(results, simulated.iloc[:0]) == {
        "simulated_unanswerable_refused": None, "simulated_auroc": None, "simulated_answerable_refused_at_90": None,
        "n_simulated": 0,
    }  # fmt: skip


class ScriptedAssistant:
    """Answers from a table; raises QuestionError for a question it is told to reject."""

    def __init__(self, answers: dict[str, Answer]) -> None:
        self.index = SimpleNamespace(passages=P)
        self.answers = answers
        self.asked: list[str] = []

    def ask(self, question: str, *, leave_out=()) -> Answer:
        self.asked.append(question)
        if question not in self.answers:
            raise QuestionError("the question is empty")
        return self.answers[question]


def test_evaluate_warms_up_then_scores_in_gold_order():
    a = ScriptedAssistant({"ship?": answer("ship?", ["s:ship-1"], ["s:ship-1"]), "cars?": answer("cars?", [], [], answered=False)})
    results = evaluate(a, [gold("g1", "ship?", ids=["s:ship-1"]), gold("g2", "cars?", answerable=False)])
    assert a.asked == ["ship?", "ship?", "cars?"]
    assert results["id"].tolist() == ["g1", "g2"] and results["correct"].tolist() == [True, True]
    assert results["section"].tolist() == ["Shipping", UNANSWERABLE_SECTION]


def test_evaluate_section_of_a_facts_only_row():
    a = ScriptedAssistant({"q?": answer("q?", [], [], answered=False)})
    results = evaluate(a, [gold("g1", "q?", facts=["Visa"]), gold("g2", "q?", facts=["nowhere"])], warm_up=False)
    assert results["section"].tolist() == ["Payment", UNKNOWN_SECTION] and a.asked == ["q?", "q?"]


def test_evaluate_rejects_relevant_ids_of_another_corpus_before_asking():
    a = ScriptedAssistant({})
    with pytest.raises(GoldError, match=r"gold\.jsonl:3: relevant_ids 'zz:1' of 'g1' match no passage or document id"):
        evaluate(a, [gold("g1", "q?", ids=["zz:1"])])
    assert a.asked == []


def test_evaluate_names_the_gold_row_of_an_unaskable_question():
    with pytest.raises(GoldError, match=r"gold\.jsonl:3: question 'g1' cannot be asked: the question is empty"):
        evaluate(ScriptedAssistant({}), [gold("g1", "   ")])
