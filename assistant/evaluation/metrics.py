"""Evaluation metrics as pure functions: ranking metrics share one signature, answer checks are exact.

Ranking metrics take ``(relevant, ranked, k)``: the set of ids that count as relevant and
the ranked ids, best first. Nothing here logs, rounds or mutates its arguments.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from assistant.schema import Passage

RANK_KS = (1, 3, 5)  # the hit@k cut-offs every report shows
MRR_K = 10

# Typographic variants that a customer's keyboard and the FAQ author's editor disagree on.
_FOLD = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u00a0": " "})


def _check_k(k: int) -> None:
    if k <= 0:
        raise ValueError(f"k must be > 0, got {k}")


def hit_at_k(relevant: set[str], ranked: Sequence[str], k: int) -> float:
    """1.0 when any of the first ``k`` ranked ids is relevant, else 0.0."""
    _check_k(k)
    return 1.0 if any(r in relevant for r in ranked[:k]) else 0.0


def mrr_at_k(relevant: set[str], ranked: Sequence[str], k: int) -> float:
    """Reciprocal rank (1/rank) of the first relevant id within the first ``k``; 0.0 if none."""
    _check_k(k)
    for rank, r in enumerate(ranked[:k], 1):
        if r in relevant:
            return 1.0 / rank
    return 0.0


def precision_at_k(relevant: set[str], ranked: Sequence[str], k: int) -> float:
    """Share of the first ``k`` ranked ids (or of all, if fewer) that are relevant; NaN if none ranked."""
    _check_k(k)
    top = ranked[:k]
    if not top:
        return math.nan
    return sum(r in relevant for r in top) / len(top)


def first_relevant_rank(relevant: set[str], ranked: Sequence[str]) -> int | None:
    """1-based rank of the first relevant id, or None when no ranked id is relevant."""
    for rank, r in enumerate(ranked, 1):
        if r in relevant:
            return rank
    return None


def citation_precision(relevant: set[str], cited: Sequence[str]) -> float:
    """Share of cited ids that are relevant; NaN when nothing is cited (undefined, not zero)."""
    if not cited:
        return math.nan
    return sum(c in relevant for c in cited) / len(cited)


def normalize_text(text: str) -> str:
    """Case-folded, NFKC, typographic quotes/dashes folded, whitespace collapsed to single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_FOLD).casefold()
    return " ".join(text.split())


def contains_fact(text: str, fact: str) -> bool:
    """Whether ``fact`` occurs in ``text`` (case-insensitive, whitespace-normalised substring)."""
    return normalize_text(fact) in normalize_text(text)


def missing_facts(text: str, facts: Iterable[str]) -> list[str]:
    """The facts (in the given order) that ``text`` does not contain."""
    norm = normalize_text(text)
    return [f for f in facts if normalize_text(f) not in norm]


def lead_hit(sentences: Sequence[str], facts: Sequence[str]) -> float:
    """1.0 when the first quoted sentence contains at least one of ``facts``, else 0.0.

    NaN when there is nothing to judge: no sentence quoted, or no facts given.
    """
    if not sentences or not facts:
        return math.nan
    first = normalize_text(sentences[0])
    return 1.0 if any(normalize_text(f) in first for f in facts) else 0.0


def on_point_sentences(sentences: Sequence[str], facts: Sequence[str], support: Sequence[str] = ()) -> int:
    """How many quoted sentences hold an asked fact (one of ``facts``) or one of the ``support``
    texts (sentences that may rightly accompany the answer); matching as in :func:`contains_fact`."""
    wanted = [normalize_text(x) for x in (*facts, *support)]
    return sum(any(w in normalize_text(s) for w in wanted) for s in sentences)


def sentence_precision(sentences: Sequence[str], facts: Sequence[str], support: Sequence[str] = ()) -> float:
    """Share of quoted sentences that hold an asked fact or a ``support`` text; NaN when none quoted
    or no facts are given (nothing to judge them by)."""
    if not sentences or not facts:
        return math.nan
    return on_point_sentences(sentences, facts, support) / len(sentences)


def passage_is_relevant(passage: Passage, relevant_ids: Iterable[str], must_include: Sequence[str] = ()) -> bool:
    """Gold relevance of one passage.

    With ``relevant_ids``, the passage counts when its ``id`` or its ``doc_id`` is listed.
    With only ``must_include``, it counts when its text contains every fact.
    """
    ids = set(relevant_ids)
    if ids:
        return passage.id in ids or passage.doc_id in ids
    if must_include:
        return not missing_facts(passage.text, must_include)
    return False


def answer_correct(*, answerable: bool, answered: bool, facts_missing: int, cites_relevant: bool | None) -> bool:
    """The per-row verdict behind ``answer_accuracy``.

    An unanswerable row is right when refused. An answerable row is right when answered,
    with no ``must_include`` fact missing, and (where the gold lists ids, i.e.
    ``cites_relevant`` is not None) at least one cited passage relevant.
    """
    if not answerable:
        return not answered
    return answered and facts_missing == 0 and cites_relevant is not False


def auroc(pos_scores, neg_scores) -> float:
    """Probability that a random answerable question outscores a random unanswerable one."""
    pos = np.asarray(pos_scores, dtype=float)
    neg = np.asarray(neg_scores, dtype=float)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def refusal_scores(results: pd.DataFrame) -> np.ndarray:
    """The score the answer-or-refuse decision thresholds (p_answer), per question.

    A question refused for another reason (an instruction attack) scores 0: it is refused
    whatever the threshold.
    """
    p = results.get("evidence.p_answer", pd.Series(np.nan, index=results.index)).astype(float).to_numpy()
    forced = (~results["answered"].astype(bool).to_numpy()) & (np.nan_to_num(p, nan=0.0) >= 0.5)
    return np.where(forced | np.isnan(p), 0.0, p)
