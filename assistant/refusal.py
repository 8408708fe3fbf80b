"""The answer-or-refuse decision: a logistic model over retrieval evidence, calibratable on a gold set.

Features of a question (all from retrieval, no labels needed):
- ``dense``: best passage cosine (max over a passage's question/full-text/sentence vectors);
- ``margin``: how far the best passage is ahead of the runner-up (dense);
- ``coverage``: share of the question's content words that the corpus uses at all;
- ``coverage_top``: share of them that the best passage uses;
- ``faq``: 1 when the best passage is an FAQ row with its own question (JSONL/CSV), else 0.

The default model, used for a corpus with no gold set, is a threshold on ``dense`` that
depends on what the question matched: a question is much closer to another phrasing of a
question (an FAQ row's title) than to a policy statement, so FAQ rows need a higher cosine
(0.58) than plain-text passages (0.41). See docs/retrieval.md for the runs behind both.
``assistant calibrate --gold FILE`` fits all the weights with logistic regression and
stores the model with the index.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError

FEATURES = ("dense", "margin", "coverage", "coverage_top", "faq")
DEFAULT_THRESHOLD = 0.41  # plain-text passages (question vs statement)
DEFAULT_FAQ_THRESHOLD = 0.58  # FAQ rows (question vs question)
DEFAULT_TEMPERATURE = 0.05
CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class RefusalModel:
    """p(answerable) = sigmoid(bias + sum(weights[f] * features[f])); answer when p >= 0.5."""

    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0
    source: str = "default"
    metrics: dict[str, float] = field(default_factory=dict)  # cross-validated figures from calibrate

    @classmethod
    def default(
        cls,
        threshold: float = DEFAULT_THRESHOLD,
        temperature: float = DEFAULT_TEMPERATURE,
        faq_threshold: float = DEFAULT_FAQ_THRESHOLD,
    ) -> "RefusalModel":
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        return cls(
            weights={"dense": 1.0 / temperature, "faq": -(faq_threshold - threshold) / temperature},
            bias=-threshold / temperature,
            source="default",
        )

    def logit(self, features: dict[str, float]) -> float:
        return self.bias + sum(w * float(features.get(f, 0.0)) for f, w in self.weights.items())

    def probability(self, features: dict[str, float]) -> float:
        z = max(-50.0, min(50.0, self.logit(features)))
        return 1.0 / (1.0 + math.exp(-z))

    def save(self, index_dir: Path) -> Path:
        path = Path(index_dir) / CALIBRATION_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, index_dir: Path) -> "RefusalModel | None":
        path = Path(index_dir) / CALIBRATION_FILE
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


def fit(X: np.ndarray, y: np.ndarray, *, source: str = "calibrated", C: float = 1.0) -> RefusalModel:
    """Fit a class-balanced logistic regression on feature rows ``X`` (columns = FEATURES)."""
    from sklearn.linear_model import LogisticRegression

    if len(set(y.tolist())) < 2:
        raise ConfigError("calibration needs both answerable and unanswerable questions in the gold set")
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=1000)
    clf.fit(X, y)
    return RefusalModel(
        weights={f: float(w) for f, w in zip(FEATURES, clf.coef_[0])}, bias=float(clf.intercept_[0]), source=source
    )


def cross_validate(X: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0) -> dict[str, float]:
    """Stratified k-fold figures for fitting on the rest and deciding on each held-out fold."""
    from sklearn.model_selection import StratifiedKFold

    folds = max(2, min(folds, int(min(np.bincount(y.astype(int))))))
    preds = np.zeros(len(y), dtype=float)
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y):
        model = fit(X[train], y[train])
        preds[test] = [model.probability(dict(zip(FEATURES, row))) for row in X[test]]
    answered = preds >= 0.5
    pos, neg = y == 1, y == 0
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
