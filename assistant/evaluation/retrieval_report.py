"""Eval report sections about retrieval and refusals: the refusal curve with AUROC, per-retriever hit@k."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

import assistant.evaluation.metrics as m
from assistant.core.retrieval import MODES, Retriever
from assistant.evaluation.gold import GoldQuestion
from assistant.evaluation.metrics import RANK_KS, auroc, refusal_scores
from assistant.evaluation.report import (
    ReportFigure,
    ReportSection,
    ReportTable,
    figure_png,
    new_figure,
)


def refusal_curve(results: pd.DataFrame) -> pd.DataFrame:
    """Share of unanswerable vs answerable questions refused as the threshold moves from 0 to 1."""
    score = refusal_scores(results)
    y = results["answerable"].astype(bool).to_numpy()
    rows = []
    for t in np.unique(np.concatenate([[0.0, 1.0 + 1e-9], score])):
        refused = score < t
        rows.append({
            "threshold": float(t),
            "answerable_refused": float(refused[y].mean()) if y.any() else math.nan,
            "unanswerable_refused": float(refused[~y].mean()) if (~y).any() else math.nan,
        })
    return pd.DataFrame(rows)


def refusal_section(
    results: pd.DataFrame,
    *,
    title: str = "Refusals",
    name: str = "refusal_curve",
    unanswerable_label: str = "unanswerable questions",
    text: str | None = None,
) -> ReportSection | None:
    """The refusal curve with the operating point (the assistant's actual decisions) and AUROC."""
    y = results["answerable"].astype(bool).to_numpy()
    if y.all() or not y.any():
        return None
    score = refusal_scores(results)
    area = auroc(score[y], score[~y])
    answered = results["answered"].astype(bool).to_numpy()
    op_x, op_y = float((~answered[y]).mean()), float((~answered[~y]).mean())
    curve = refusal_curve(results)
    fig = new_figure(5.2, 4.2)
    ax = fig.add_subplot()
    ax.plot(curve["answerable_refused"], curve["unanswerable_refused"], color="#2b6cb0", drawstyle="steps-post")
    ax.plot([0, 1], [0, 1], color="#a0aec0", linestyle=":", linewidth=1)
    ax.scatter([op_x], [op_y], color="#e53e3e", zorder=3, label=f"operating point ({op_y:.0%} / {op_x:.0%})")
    ax.set_xlabel("answerable questions refused")
    ax.set_ylabel(f"{unanswerable_label} refused")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    curve_name = "Refusal curve" if title == "Refusals" else f"{title}: refusal curve"
    ax.set_title(f"{curve_name} (AUROC {area:.3f})")
    ax.legend(loc="lower right")
    table = pd.DataFrame(
        [{"AUROC": round(area, 4), f"{unanswerable_label} refused": round(op_y, 4), "answerable refused": round(op_x, 4),
          unanswerable_label: int((~y).sum()), "answerable": int(y.sum())}]
    )
    return ReportSection(
        title=title,
        text=text or (
            "Each point of the curve is one threshold on the refusal model's probability that a question is "
            "answerable (evidence.p_answer): the share of unanswerable questions refused against the share of "
            "answerable ones refused. The red point is where the assistant operates (p_answer < 0.5 refuses). "
            "Questions refused as attempts to change the assistant's rules are refused at every threshold."
        ),
        figures=[ReportFigure(name, curve_name, figure_png(fig))],
        tables=[ReportTable("Refusal operating point" if title == "Refusals" else f"{title}: operating point", table)],
    )


def simulated_section(results: pd.DataFrame, simulated: pd.DataFrame) -> ReportSection | None:
    """The refusal curve of the real answerable questions against their left-out copies."""
    answerable = results[results["answerable"].astype(bool)]
    if not len(simulated) or not len(answerable):
        return None
    both = pd.concat([answerable, simulated[[c for c in simulated.columns if c in results.columns]]], ignore_index=True)
    return refusal_section(
        both,
        title="Leave-out simulation",
        name="simulated_refusal_curve",
        unanswerable_label="left-out questions",
        text=(
            "Every answerable question asked again with the passages that answer it left out of the corpus "
            "(its relevant passages, and FAQ rows with the same question), so that the right outcome is a refusal. "
            "These are the hardest unanswerable questions a store gets: on its own topics, close to what the FAQ "
            "does say. The curve sets them against the real answerable questions; simulated.csv lists every one."
        ),
    )


def compare_retrievers(assistant, gold: list[GoldQuestion], modes=MODES) -> pd.DataFrame:
    """hit@k and MRR@10 of each retrieval mode over the answerable gold questions.

    With a verifier, one more row: the shipped ranking, the hybrid candidates re-ranked by it.
    """
    base = assistant.retriever.config
    answerable = [q for q in gold if q.answerable]
    rows = []
    queries = [assistant.corrector.correct(q.question) for q in answerable]
    vecs = assistant.encoder.encode(queries) if queries else []
    verifier = getattr(assistant, "verifier", None)

    def score(search) -> dict[str, float]:
        scores = {f"hit@{k}": [] for k in RANK_KS} | {"mrr@10": []}
        for q, text, vec in zip(answerable, queries, vecs):
            hits = search(text, vec)[:10]
            ranked = [h.passage.id for h in hits]
            relevant = {h.passage.id for h in hits if m.passage_is_relevant(h.passage, q.relevant_ids, q.must_include)}
            for k in RANK_KS:
                scores[f"hit@{k}"].append(m.hit_at_k(relevant, ranked, k))
            scores["mrr@10"].append(m.mrr_at_k(relevant, ranked, 10))
        return {k: round(float(np.mean(v)), 4) if v else math.nan for k, v in scores.items()}

    for mode in modes:
        retriever = Retriever(assistant.index, assistant.encoder, replace(base, mode=mode))
        label = {"dense": "dense only", "lexical": "BM25 only", "hybrid": "hybrid"}.get(mode, mode)
        if mode == "hybrid" and base.mode == "hybrid":
            label = f"hybrid, adaptive w={base.lexical_weight:g}" if base.adaptive else f"hybrid, w={base.lexical_weight:g}"
            if verifier is None:
                label += " (default)"
        rows.append({"retriever": label, "n": len(answerable),
                     **score(lambda text, vec, r=retriever: r.search(text, 10, qvec=vec))})  # fmt: skip
    if verifier is not None:
        rows.append({
            "retriever": f"hybrid re-ranked by the verifier ({verifier.name}, default)", "n": len(answerable),
            **score(lambda text, vec: assistant.verify(text, assistant.retriever.search(text, assistant.candidates, qvec=vec))),
        })
    return pd.DataFrame(rows)


def retriever_section(table: pd.DataFrame) -> ReportSection:
    return ReportSection(
        title="Retrievers compared",
        text="Retrieval alone (no answer or refusal) over the answerable questions, per retriever.",
        tables=[ReportTable("hit@k per retriever", table)],
    )


def fields_used(index) -> str:
    """Which passage fields the retriever matched, for the report header."""
    kinds = {p.kind for p in index.passages}
    parts = []
    if "faq" in kinds:
        parts.append("FAQ rows: question, question + answer (answer sentences embedded when quoted)")
    if "section" in kinds:
        parts.append("text passages: section title + passage, each title-prefixed sentence")
    return "; ".join(parts) + "; BM25 over title + text"
