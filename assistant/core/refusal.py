"""The answer-or-refuse decision: a logistic model over retrieval evidence, calibratable on a gold set.

Features of a question (all from retrieval, no labels needed):
- ``dense``: best passage cosine (max over a passage's question/full-text/sentence vectors);
- ``margin``: how far the best passage is ahead of the runner-up (dense);
- ``coverage``: share of the question's content words that the corpus uses at all;
- ``coverage_top``: share of them that the best passage uses;
- ``faq``: 1 when the best passage is an FAQ row with its own question (JSONL/CSV), else 0.

The default model, used for a corpus with no gold set, is a threshold that depends on what
the question matched: a question is much closer to another phrasing of a question (an FAQ
row's title) than to a policy statement, so FAQ rows need a higher cosine than plain-text
passages. With the verifier (the shipped default) the features are its cosines and the
model answers when ``dense + 0.5 * margin`` reaches 0.65 (FAQ rows) or 0.48 (plain text);
without it, when MiniLM's ``dense`` reaches 0.58 or 0.41. See docs/retrieval.md for the runs
behind all four.
``assistant calibrate --gold FILE`` fits all the weights with logistic regression and
stores the model with the index.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from assistant.errors import ConfigError
from assistant.index.layout import CALIBRATION_FILE, IndexLayout  # noqa: F401 - CALIBRATION_FILE kept importable here

FEATURES = ("dense", "margin", "coverage", "coverage_top", "faq")
DEFAULT_THRESHOLD = 0.41  # plain-text passages (question vs statement)
DEFAULT_FAQ_THRESHOLD = 0.58  # FAQ rows (question vs question)
# With the verifier (assistant/verifier.py), ``dense`` and ``margin`` are its cosines, on its own scale.
# Answer when dense + 0.5 * margin reaches 0.48 (plain text, chosen on seed dev) or 0.65 (FAQ
# rows, chosen on StackFAQ's even threads with every question left out in turn: 7% of
# answerable questions refused there).
VERIFIER_THRESHOLD = 0.48
VERIFIER_FAQ_THRESHOLD = 0.65
VERIFIER_MARGIN_WEIGHT = 0.5
DEFAULT_TEMPERATURE = 0.05


@dataclass(frozen=True)
class RefusalModel:
    """p(answerable) = sigmoid(bias + sum(weights[f] * features[f])); answer when p >= 0.5."""

    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0
    source: str = "default"
    metrics: dict[str, float] = field(default_factory=dict)  # cross-validated figures from calibrate
    verifier: str = "none"  # the verifier whose cosines the features were read from ("none": the retriever's)

    @classmethod
    def default(
        cls,
        threshold: float = DEFAULT_THRESHOLD,
        temperature: float = DEFAULT_TEMPERATURE,
        faq_threshold: float = DEFAULT_FAQ_THRESHOLD,
        *,
        margin_weight: float = 0.0,
        verifier: str = "none",
    ) -> "RefusalModel":
        """Answer when ``dense + margin_weight * margin`` reaches the threshold for what matched."""
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        weights = {"dense": 1.0 / temperature, "faq": -(faq_threshold - threshold) / temperature}
        if margin_weight:
            weights["margin"] = margin_weight / temperature
        return cls(weights=weights, bias=-threshold / temperature, source="default", verifier=verifier)

    @classmethod
    def default_for(cls, verifier: str = "none", threshold: float | None = None) -> "RefusalModel":
        """The default model for features read with ``verifier`` ("none": the retriever's cosines)."""
        if verifier == "none":
            return cls.default(DEFAULT_THRESHOLD if threshold is None else threshold)
        return cls.default(
            VERIFIER_THRESHOLD if threshold is None else threshold, faq_threshold=VERIFIER_FAQ_THRESHOLD,
            margin_weight=VERIFIER_MARGIN_WEIGHT, verifier=verifier,
        )  # fmt: skip

    def logit(self, features: dict[str, float]) -> float:
        return self.bias + sum(w * float(features.get(f, 0.0)) for f, w in self.weights.items())

    def probability(self, features: dict[str, float]) -> float:
        z = max(-50.0, min(50.0, self.logit(features)))
        return 1.0 / (1.0 + math.exp(-z))

    def save(self, index_dir: Path) -> Path:
        path = IndexLayout(index_dir).calibration
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, index_dir: Path) -> "RefusalModel | None":
        path = IndexLayout(index_dir).calibration
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            unknown = set(data.get("weights", {})) - set(FEATURES)
            if unknown:
                raise ValueError(f"unknown features {sorted(unknown)}")
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: unreadable calibration ({exc}); delete it or run `assistant calibrate` again") from None


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
    from sklearn.linear_model import LogisticRegression

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
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

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


def auroc(pos_scores, neg_scores) -> float:
    """Probability that a random answerable question outscores a random unanswerable one."""
    pos = np.asarray(pos_scores, dtype=float)
    neg = np.asarray(neg_scores, dtype=float)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))
