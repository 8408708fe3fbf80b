"""Fit the answer-or-refuse decision to labelled questions: features, logistic fit, grouped cross-validation.

``assistant calibrate`` (assistant/cli/calibrate.py) drives it and stores the fitted
:class:`~assistant.core.refusal.RefusalModel` with the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from assistant.core.refusal import FEATURES, RefusalModel
from assistant.errors import ConfigError
from assistant.evaluation.gold import GoldQuestion
from assistant.evaluation.metrics import auroc
from assistant.evaluation.scoring import leave_out_ids

if TYPE_CHECKING:
    from assistant.core.pipeline import Assistant


@dataclass(frozen=True)
class CalibrationSet:
    """Feature rows for calibration: X (columns = FEATURES), labels y (1 answerable), CV groups."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    rows: list[dict[str, float]]
    n_simulated: int


def collect_features(
    assistant: Assistant,
    gold: Iterable[GoldQuestion],
    *,
    simulate_unanswerable: bool = False,
    progress: Callable[[Iterable[GoldQuestion]], Iterable[GoldQuestion]] = lambda xs: xs,
) -> CalibrationSet:
    """The refusal features of every gold question (and, with ``simulate_unanswerable``, of each
    answerable one asked again with its passages left out, labelled unanswerable)."""
    passages = list(assistant.index.passages)
    rows, labels, groups = [], [], []
    n_gold = 0
    for q in progress(gold):
        n_gold += 1
        left_out = leave_out_ids(q, passages) if q.answerable else []
        # One group per FAQ question (or per gold row): its paraphrases and leave-out copies share a fold.
        group = passages[assistant.index.by_id[left_out[0]]].title if left_out else q.id
        rows.append(assistant.features_for(q.question))
        labels.append(1 if q.answerable else 0)
        groups.append(group)
        if simulate_unanswerable and left_out and len(left_out) < len(passages):
            rows.append(assistant.features_for(q.question, leave_out=left_out))
            labels.append(0)
            groups.append(group)
    X = np.array([[r[f] for f in FEATURES] for r in rows], dtype=float).reshape(len(rows), len(FEATURES))
    return CalibrationSet(X, np.array(labels, dtype=int), np.array(groups), rows, len(rows) - n_gold)


def fit(
    X: np.ndarray,
    y: np.ndarray,
    *,
    source: str = "calibrated",
    C: float = 1.0,
    max_answerable_refused: float | None = None,
) -> RefusalModel:
    """Fit a class-balanced logistic regression on feature rows ``X`` (columns = FEATURES).

    With ``max_answerable_refused``, the bias is then moved so that at most that share of the
    answerable training rows is refused: the operating point a store chooses, instead of the
    balanced one.
    """
    from sklearn.linear_model import (
        LogisticRegression,  # heavy, optional ([eval] extra): only when fitting
    )

    if len(set(y.tolist())) < 2:
        raise ConfigError("calibration needs both answerable and unanswerable questions in the gold set")
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=1000)
    clf.fit(X, y)
    weights = {f: float(w) for f, w in zip(FEATURES, clf.coef_[0])}
    bias = float(clf.intercept_[0])
    if max_answerable_refused is not None:
        logits = X[y == 1] @ clf.coef_[0] + bias
        # refuse below the logit at that quantile of the answerable rows (a hair under it, so ties answer)
        cut = float(np.quantile(logits, max_answerable_refused, method="lower")) if len(logits) else 0.0
        bias -= cut - 1e-6
    return RefusalModel(weights=weights, bias=bias, source=source)


def cross_validate(
    X: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    groups: np.ndarray | None = None,
    max_answerable_refused: float | None = None,
) -> dict[str, float]:
    """Stratified k-fold figures for fitting on the rest and deciding on each held-out fold.

    ``groups`` keeps rows of one group in one fold (a question and its leave-out copy, or all
    paraphrases of one FAQ question), so no fold is scored by a model that saw its twin.
    """
    from sklearn.model_selection import (  # heavy, optional: only when fitting
        StratifiedGroupKFold,
        StratifiedKFold,
    )

    folds = max(2, min(folds, int(min(np.bincount(y.astype(int))))))
    if groups is not None:
        folds = max(2, min(folds, len(set(groups.tolist()))))
        splits = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y, groups)
    else:
        splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y)
    preds = np.full(len(y), np.nan, dtype=float)
    for train, test in splits:
        if len(set(y[train].tolist())) < 2:
            continue
        model = fit(X[train], y[train], max_answerable_refused=max_answerable_refused)
        preds[test] = [model.probability(dict(zip(FEATURES, row))) for row in X[test]]
    scored = ~np.isnan(preds)
    answered = preds >= 0.5
    pos, neg = (y == 1) & scored, (y == 0) & scored
    return {
        "folds": float(folds),
        "unanswerable_refused": float(np.mean(~answered[neg])) if neg.any() else float("nan"),
        "answerable_refused": float(np.mean(~answered[pos])) if pos.any() else float("nan"),
        "auroc": auroc(preds[pos], preds[neg]),
    }
