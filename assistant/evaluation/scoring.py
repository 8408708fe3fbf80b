"""Score an assistant on a gold set: one DataFrame row per question and their summary.

The gate is in ``gate.py``, the baseline diff in ``baseline.py``, and ``run.py`` puts them together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

import assistant.evaluation.metrics as m
from assistant.errors import GoldError, QuestionError
from assistant.evaluation.gold import GoldQuestion
from assistant.evaluation.metrics import MRR_K, RANK_KS, auroc, refusal_scores
from assistant.schema import Answer, Passage

if TYPE_CHECKING:
    from assistant.core.pipeline import Assistant

TOP_SHOWN = 5  # retrieved ids kept per row in the results table

# Summary metric -> whether higher is better. Order is the order of every printed table.
METRICS: dict[str, bool] = {
    "answer_accuracy": True,
    "answerable_accuracy": True,
    "unanswerable_accuracy": True,
    "over_refusal_rate": False,
    "hit@1": True,
    "hit@3": True,
    "hit@5": True,
    "mrr@10": True,
    "citation_precision": True,
    "lead_accuracy": True,
    "answer_precision": True,
    "mean_sentences": False,
    "latency_p50_ms": False,
    "latency_p95_ms": False,
}

# Figures of the leave-out simulation (``simulate=True``): every answerable question asked again
# with the passages that answer it left out, where it must be refused. Higher is better for the
# first two; present in the summary only when the simulation ran.
SIMULATED_METRICS: dict[str, bool] = {
    "simulated_unanswerable_refused": True,
    "simulated_auroc": True,
    "simulated_answerable_refused_at_90": False,
}

# Per-question result columns; rows may add evidence.<feature> and meta.<gold field> columns.
COLUMNS = [
    "id", "question", "category", "section", "answerable", "answered", "correct", "failure",
    "confidence", "refusal_reason", *[f"hit@{k}" for k in RANK_KS], f"mrr@{MRR_K}",
    "first_relevant_rank", "n_citations", "n_relevant_citations", "citation_precision",
    "missing_facts", "n_sentences", "lead_correct", "n_on_point", "first_sentence", "cited_ids", "cited_section",
    "top_ids", "top_score", "relevant_ids",
    "must_include", "expected", "got", "latency_ms", "conversation", "resolved_question", "clarify",
]  # fmt: skip
# ``conversation``: "follow-up" for a row with ``history``, else "single" (CONVERSATIONS).
CONVERSATIONS = ("single", "follow-up")

# Columns whose cells are lists of strings; results.csv joins them with "|".
LIST_COLUMNS = ("missing_facts", "cited_ids", "top_ids", "relevant_ids", "must_include", "clarify")

UNANSWERABLE_SECTION = "(not in the FAQ)"
UNKNOWN_SECTION = "(no passage has all facts)"


# --- per-question results -------------------------------------------------------------------


def evaluate(
    assistant: Assistant,
    gold: Sequence[GoldQuestion],
    *,
    on_result: Callable[[GoldQuestion, Answer], None] | None = None,
    warm_up: bool = True,
) -> pd.DataFrame:
    """Ask every gold question and score it; returns one row per question, in gold order.

    With ``warm_up`` the first question is asked once, untimed, before the run.

    Raises:
        GoldError: a row's ``relevant_ids`` name no passage or document of the corpus, or its
            question cannot be asked (names the file and line).
    """
    passages: list[Passage] = list(assistant.index.passages)
    by_id = {p.id: p for p in passages}
    doc_first: dict[str, Passage] = {}
    for p in passages:
        doc_first.setdefault(p.doc_id, p)
    sections = {q.id: _expected_section(q, by_id, doc_first, passages) for q in gold}  # validates ids first
    if warm_up and gold:
        # Lazy loads (model weights, BM25) would otherwise land in the first question's latency.
        _ask(assistant, gold[0])
    rows = []
    for q in gold:
        answer = _ask(assistant, q)
        rows.append(score_answer(q, answer, by_id, section=sections[q.id]))
        if on_result is not None:
            on_result(q, answer)
    extra = sorted({k for row in rows for k in row if k.startswith(("evidence.", "meta."))})
    return pd.DataFrame(rows, columns=[*COLUMNS, *extra])


def leave_out_ids(q: GoldQuestion, passages: Sequence[Passage]) -> list[str]:
    """The passages that answer ``q``: its relevant passages, and FAQ rows answering the same question.

    Several FAQ rows may share one question (a thread with several answers); leaving out only
    the one the gold names would leave the question answered by its siblings.
    """
    relevant = [p for p in passages if m.passage_is_relevant(p, q.relevant_ids, q.must_include)]
    titles = {p.title for p in relevant if p.kind == "faq"}
    return sorted({p.id for p in relevant} | {p.id for p in passages if p.kind == "faq" and p.title in titles})


def simulate_unanswerable(
    assistant: Assistant,
    gold: Sequence[GoldQuestion],
    *,
    on_result: Callable[[GoldQuestion, Answer], None] | None = None,
) -> pd.DataFrame:
    """Ask every answerable question again with the passages that answer it left out.

    Each such question is then unanswerable from what is left, so the right outcome is a
    refusal: a labelled set of "the FAQ doesn't say" questions on the store's own topics,
    made from a gold set that may hold none. Rows are scored as unanswerable rows, with
    ``simulated`` True and the ``left_out`` passage ids. Questions with no relevant ids and no
    facts (nothing to leave out) are skipped.
    """
    passages = list(assistant.index.passages)
    by_id = {p.id: p for p in passages}
    rows = []
    for q in gold:
        if not q.answerable:
            continue
        left_out = leave_out_ids(q, passages)
        if not left_out or len(left_out) == len(passages):
            continue
        unanswerable = replace(q, answerable=False, relevant_ids=(), must_include=())
        answer = _ask(assistant, q, leave_out=left_out)
        row = score_answer(unanswerable, answer, by_id, section=UNANSWERABLE_SECTION)
        row.update(simulated=True, left_out=left_out)
        rows.append(row)
        if on_result is not None:
            on_result(q, answer)
    extra = sorted({k for row in rows for k in row if k.startswith(("evidence.", "meta."))})
    return pd.DataFrame(rows, columns=[*COLUMNS, "simulated", "left_out", *extra])


def simulated_summary(results: pd.DataFrame, simulated: pd.DataFrame) -> dict[str, float | int | None]:
    """SIMULATED_METRICS: the simulated questions refused, and how well p_answer separates them
    from the real answerable questions (AUROC; the answerable share refused at the threshold
    that refuses 90% of the simulated ones)."""
    if not len(simulated):
        return {"simulated_unanswerable_refused": None, "simulated_auroc": None,
                "simulated_answerable_refused_at_90": None, "n_simulated": 0}  # fmt: skip
    answerable = results[results["answerable"].astype(bool)]
    pos, neg = refusal_scores(answerable), refusal_scores(simulated)
    at_90 = None
    if len(pos):
        threshold = float(np.sort(neg)[max(0, math.ceil(0.9 * len(neg)) - 1)])  # refuse p <= this
        at_90 = float(np.mean(pos <= threshold))
    return {
        "simulated_unanswerable_refused": _mean(~simulated["answered"].astype(bool)),
        "simulated_auroc": auroc(pos, neg) if len(pos) else None,
        "simulated_answerable_refused_at_90": at_90,
        "n_simulated": int(len(simulated)),
    }


def _ask(assistant: Assistant, q: GoldQuestion, *, leave_out: Sequence[str] = ()) -> Answer:
    try:
        if q.history:  # a follow-up, read with the customer's earlier messages
            return assistant.ask(q.question, leave_out=leave_out, history=q.history)
        return assistant.ask(q.question, leave_out=leave_out) if leave_out else assistant.ask(q.question)
    except QuestionError as exc:
        raise GoldError(f"{q.where}: question {q.id!r} cannot be asked: {exc}") from None


def score_answer(q: GoldQuestion, answer: Answer, by_id: dict[str, Passage], *, section: str = "") -> dict[str, Any]:
    """Every per-question figure for one answer (the row ``evaluate`` builds)."""
    retrieved = [h.passage for h in answer.retrieved]
    ranked = [p.id for p in retrieved]
    relevant = {p.id for p in retrieved if m.passage_is_relevant(p, q.relevant_ids, q.must_include)}
    cited = [by_id[c.id] for c in answer.citations if c.id in by_id]
    cited_relevant = {p.id for p in cited if m.passage_is_relevant(p, q.relevant_ids)}
    ids_given = bool(q.relevant_ids)
    missing = m.missing_facts(answer.answer, q.must_include) if answer.answered else list(q.must_include)
    cites_relevant = (bool(cited_relevant) if ids_given else None) if answer.answered else None
    correct = m.answer_correct(
        answerable=q.answerable, answered=answer.answered, facts_missing=len(missing), cites_relevant=cites_relevant
    )
    row: dict[str, Any] = {
        "id": q.id,
        "question": q.question,
        "category": q.category,
        "section": section,
        "answerable": q.answerable,
        "answered": answer.answered,
        "correct": correct,
        "failure": "" if correct else _failure(q, answer, missing, cites_relevant),
        "confidence": float(answer.confidence),
        "refusal_reason": answer.refusal_reason or "",
    }
    for k in RANK_KS:
        row[f"hit@{k}"] = m.hit_at_k(relevant, ranked, k) if q.answerable else math.nan
    row[f"mrr@{MRR_K}"] = m.mrr_at_k(relevant, ranked, MRR_K) if q.answerable else math.nan
    rank = m.first_relevant_rank(relevant, ranked) if q.answerable else None
    scored_citations = ids_given and answer.answered
    quoted = [s.text for s in answer.sentences] if answer.answered else []
    # Sentence precision is judged on answered answerable rows that name their facts.
    judged = answer.answered and q.answerable and bool(q.must_include) and bool(quoted)
    row.update(
        {
            "first_relevant_rank": float(rank) if rank is not None else math.nan,
            "n_citations": len(answer.citations),
            "n_relevant_citations": float(len(cited_relevant)) if scored_citations else math.nan,
            "citation_precision": m.citation_precision(cited_relevant, [p.id for p in cited]) if scored_citations else math.nan,
            "missing_facts": missing if answer.answered else [],
            "n_sentences": float(len(quoted)) if answer.answered else math.nan,
            "lead_correct": m.lead_hit(quoted, q.must_include) if judged else math.nan,
            "n_on_point": float(m.on_point_sentences(quoted, q.must_include, q.support)) if judged else math.nan,
            "first_sentence": " ".join(quoted[0].split()) if quoted else "",
            "cited_ids": [c.id for c in answer.citations],
            "cited_section": answer.citations[0].title if answer.citations else "",
            "top_ids": ranked[:TOP_SHOWN],
            "top_score": float(answer.retrieved[0].score) if answer.retrieved else math.nan,
            "relevant_ids": list(q.relevant_ids),
            "must_include": list(q.must_include),
            "expected": expected_text(q),
            "got": got_text(answer),
            "latency_ms": float(answer.latency_ms),
            "conversation": CONVERSATIONS[bool(q.history)],
            "resolved_question": answer.resolved_question or answer.question,
            "clarify": list(answer.clarify),
        }
    )
    for key, value in answer.evidence.items():  # the answer's own refusal evidence (e.g. p_answer)
        row[f"evidence.{key}"] = float(value)
    for key, value in q.metadata.items():
        if key != "category":
            row[f"meta.{key}"] = value
    return row


def expected_text(q: GoldQuestion) -> str:
    """What a right answer looks like, in one line (for failure listings)."""
    if not q.answerable:
        return "refuse and point to human support"
    parts = []
    if q.must_include:
        parts.append("says " + ", ".join(repr(f) for f in q.must_include))
    if q.relevant_ids:
        parts.append("cites " + " or ".join(q.relevant_ids))
    return "; ".join(parts)


def got_text(answer: Answer) -> str:
    if not answer.answered:
        return f"refused ({answer.refusal_reason or 'no reason given'})"
    return " ".join(answer.answer.split())


def _failure(q: GoldQuestion, answer: Answer, missing: list[str], cites_relevant: bool | None) -> str:
    if not q.answerable:
        return "answered an unanswerable question"
    if not answer.answered:
        return "refused an answerable question"
    reasons = []
    if missing:
        reasons.append("missing " + ", ".join(repr(f) for f in missing))
    if cites_relevant is False:
        reasons.append("cites no relevant passage")
    return "; ".join(reasons)


def _expected_section(
    q: GoldQuestion, by_id: dict[str, Passage], doc_first: dict[str, Passage], passages: list[Passage]
) -> str:
    if not q.answerable:
        return UNANSWERABLE_SECTION
    if q.relevant_ids:
        unknown = [i for i in q.relevant_ids if i not in by_id and i not in doc_first]
        if unknown:
            raise GoldError(
                f"{q.where}: relevant_ids {', '.join(map(repr, unknown))} of {q.id!r} match no passage or document id "
                f"in the corpus (is this gold set for another corpus?)"
            )
        first = q.relevant_ids[0]
        return (by_id.get(first) or doc_first[first]).title
    for p in passages:
        if m.passage_is_relevant(p, (), q.must_include):
            return p.title
    return UNKNOWN_SECTION


# --- summaries ------------------------------------------------------------------------------


def summarize(results: pd.DataFrame) -> dict[str, float | int | None]:
    """The summary object: every name in METRICS (None where undefined) plus row counts.

    ``citation_precision`` is pooled over all answered rows whose gold lists ids (cited
    relevant passages / cited passages); hit@k and MRR are means over answerable rows.
    """
    answerable = results["answerable"].astype(bool)
    answered = results["answered"].astype(bool)
    correct = results["correct"].astype(bool)
    a = results[answerable]
    out: dict[str, float | int | None] = {
        "answer_accuracy": _mean(correct),
        "answerable_accuracy": _mean(correct[answerable]),
        "unanswerable_accuracy": _mean(~answered[~answerable]),
        "over_refusal_rate": _mean(~answered[answerable]),
    }
    for k in RANK_KS:
        out[f"hit@{k}"] = _mean(a[f"hit@{k}"])
    out[f"mrr@{MRR_K}"] = _mean(a[f"mrr@{MRR_K}"])
    scored = results["n_relevant_citations"].notna()
    cited = float(results.loc[scored, "n_citations"].sum())
    out["citation_precision"] = float(results.loc[scored, "n_relevant_citations"].sum()) / cited if cited else None
    out.update(precision_summary(results))
    lat = results["latency_ms"].dropna()
    out["latency_p50_ms"] = float(lat.quantile(0.5)) if len(lat) else None
    out["latency_p95_ms"] = float(lat.quantile(0.95)) if len(lat) else None
    out["n"] = int(len(results))
    out["n_answerable"] = int(answerable.sum())
    out["n_unanswerable"] = int((~answerable).sum())
    return out


def clarify_count(results: pd.DataFrame) -> int:
    """Rows answered with topics to choose from (a vague message; ``refusal_reason`` "clarify"): their own outcome."""
    if "refusal_reason" not in results:
        return 0
    return int((results["refusal_reason"].fillna("").astype(str) == "clarify").sum())


def precision_summary(results: pd.DataFrame) -> dict[str, float | None]:
    """lead_accuracy, answer_precision and mean_sentences (None where no row measures them,
    e.g. a results.csv written before these columns existed).

    ``lead_accuracy``: answered answerable rows with ``must_include`` whose first quoted
    sentence holds one of the facts; ``answer_precision``: of all sentences quoted in those
    answers, the share holding an asked fact or a ``support`` text (pooled);
    ``mean_sentences``: quoted sentences per answered question.
    """
    nan = pd.Series(math.nan, index=results.index)
    lead = results.get("lead_correct", nan)
    on_point = results.get("n_on_point", nan)
    n_sent = results.get("n_sentences", nan)
    judged = on_point.notna()
    total = float(n_sent[judged].sum())
    return {
        "lead_accuracy": _mean(lead),
        "answer_precision": float(on_point[judged].sum()) / total if total else None,
        "mean_sentences": _mean(n_sent),
    }


def breakdown(results: pd.DataFrame, by: str) -> pd.DataFrame:
    """Accuracy per value of column ``by`` (e.g. ``section``, ``category``), largest groups first."""
    df = results.assign(
        _correct=results["correct"].astype(bool).astype(float),
        _answered=results["answered"].astype(bool).astype(float),
        _group=results[by].fillna("").astype(str).replace("", "(none)"),
    )
    g = df.groupby("_group", sort=False)
    out = pd.DataFrame(
        {
            "n": g.size(),
            "accuracy": g["_correct"].mean(),
            "answered": g["_answered"].mean(),
            "hit@1": g["hit@1"].mean(),
            "mrr@10": g[f"mrr@{MRR_K}"].mean(),
            "mean_confidence": g["confidence"].mean(),
        }
    )
    out.index.name = by
    return out.reset_index().sort_values(["n", by], ascending=[False, True], kind="stable").reset_index(drop=True)


def _mean(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.astype(float).mean()) if len(values) else None
