"""Unit tests for assistant/evaluation/calibration.py: refusal features of a gold set, the fit, grouped CV."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assistant.core.pipeline import Assistant
from assistant.core.refusal import FEATURES
from assistant.errors import ConfigError
from assistant.evaluation.calibration import (
    CalibrationSet,
    collect_features,
    cross_validate,
    fit,
)
from assistant.evaluation.gold import GoldQuestion

GOLD = [
    GoldQuestion("pay", "Do you accept PayPal?", relevant_ids=("tiny:payment-1",)),
    GoldQuestion("pay2", "Can I pay with Visa?", relevant_ids=("tiny:payment-1",)),
    GoldQuestion("ret", "Can I return items for a refund?", relevant_ids=("tiny:returns-1",)),
    GoldQuestion("mars", "Do you ship to Mars?", answerable=False),
]


@pytest.fixture
def assistant(fake_assistant) -> Assistant:
    return fake_assistant


def test_collect_features_one_row_per_question(assistant):
    data = collect_features(assistant, GOLD)
    assert isinstance(data, CalibrationSet)
    assert data.X.shape == (4, len(FEATURES)) and data.n_simulated == 0
    assert data.y.tolist() == [1, 1, 1, 0]
    assert data.rows == [assistant.features_for(q.question) for q in GOLD]
    np.testing.assert_allclose(data.X, [[r[f] for f in FEATURES] for r in data.rows])
    # one group per FAQ question: both payment questions share the title of the passage they need
    assert data.groups.tolist() == ["Payment", "Payment", "Returns", "mars"]


def test_collect_features_simulates_unanswerable_copies(assistant):
    seen = []
    data = collect_features(assistant, GOLD, simulate_unanswerable=True, progress=lambda xs: [seen.append(q) or q for q in xs])
    assert seen == GOLD
    assert data.n_simulated == 3 and len(data.rows) == 7
    assert data.y.tolist() == [1, 0, 1, 0, 1, 0, 0]
    assert data.groups.tolist() == ["Payment", "Payment", "Payment", "Payment", "Returns", "Returns", "mars"]
    left = assistant.features_for("Do you accept PayPal?", leave_out=["tiny:payment-1"])
    assert data.rows[1] == left


def test_collect_features_of_an_empty_gold_set(assistant):
    data = collect_features(assistant, [])
    assert data.X.shape == (0, len(FEATURES)) and data.y.tolist() == [] and data.n_simulated == 0


def separable(n: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.array([1, 0] * (n // 2))
    X = rng.uniform(0, 0.1, size=(n, len(FEATURES)))
    X[:, 0] += np.where(y == 1, 0.7, 0.2)  # dense separates the classes
    return X, y


def test_fit_learns_the_separating_feature():
    X, y = separable()
    model = fit(X, y, source="calibrated on x")
    assert model.source == "calibrated on x" and set(model.weights) == set(FEATURES)
    assert model.weights["dense"] > 0 and model.weights["dense"] == max(model.weights.values())
    p = np.array([model.probability(dict(zip(FEATURES, row))) for row in X])
    assert ((p >= 0.5) == (y == 1)).all()


def test_fit_with_an_operating_point_refuses_at_most_that_share_of_answerable_rows():
    X, y = separable(40)
    X[y == 1, 0] = np.linspace(0.3, 0.9, 20)  # overlap with the unanswerable rows
    for share in (0.0, 0.1, 0.25):
        model = fit(X, y, max_answerable_refused=share)
        p = np.array([model.probability(dict(zip(FEATURES, row))) for row in X[y == 1]])
        assert np.mean(p < 0.5) <= share + 1e-9


@pytest.mark.parametrize("y", [[1, 1, 1], [0, 0], []])
def test_fit_needs_both_classes(y):
    X = np.zeros((len(y), len(FEATURES)))
    with pytest.raises(ConfigError, match=r"calibration needs both answerable and unanswerable questions"):
        fit(X, np.array(y, dtype=int))


def test_cross_validate_on_separable_rows():
    X, y = separable(20)
    cv = cross_validate(X, y, folds=5)
    assert cv == {"folds": 5.0, "unanswerable_refused": 1.0, "answerable_refused": 0.0, "auroc": 1.0}


def test_cross_validate_caps_folds_by_the_smaller_class_and_the_groups():
    X, y = separable(20)
    assert cross_validate(X, y, folds=50)["folds"] == 10.0  # ten rows of each class
    groups = np.array(["a", "b", "c"] * 6 + ["a", "b"])
    assert cross_validate(X, y, folds=5, groups=groups)["folds"] == 3.0
    assert cross_validate(X, y, folds=1)["folds"] == 2.0


@pytest.mark.parametrize("grouped", [True, False])
def test_cross_validate_keeps_a_group_in_one_fold(monkeypatch, grouped):
    from assistant.evaluation import calibration

    X, y = separable(24)
    X[:, 1] = np.arange(24)  # a row id, to see which rows each fold trained on
    groups = np.array([f"g{i // 4}" for i in range(24)])  # six groups of four (two of each class)
    trained: list[set[int]] = []
    real_fit = calibration.fit

    def spy(X_train, y_train, **kwargs):
        trained.append({int(r) for r in X_train[:, 1]})
        return real_fit(X_train, y_train, **kwargs)

    monkeypatch.setattr(calibration, "fit", spy)
    cv = cross_validate(X, y, folds=3, groups=groups if grouped else None, seed=3)
    assert cv["folds"] == 3.0 and len(trained) == 3
    split_groups = 0
    for rows in trained:
        held_out = set(range(24)) - rows
        split_groups += len({groups[i] for i in rows} & {groups[i] for i in held_out})
    assert (split_groups == 0) is grouped  # no fold is scored by a model that saw its twin


def test_cross_validate_scores_every_row_of_a_small_set():
    X, y = separable(4)
    cv = cross_validate(X, y, folds=2)
    assert set(cv) == {"folds", "unanswerable_refused", "answerable_refused", "auroc"}
    assert all(not math.isnan(v) for v in cv.values())
