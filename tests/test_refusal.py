"""Unit tests for assistant/core/refusal.py: the refusal model, its defaults, storage and features."""

from __future__ import annotations

import json
import math
import re

import pytest

from assistant.core.lexical import LexicalIndex
from assistant.core.refusal import (
    CALIBRATION_FILE,
    DEFAULT_FAQ_THRESHOLD,
    DEFAULT_TEMPERATURE,
    DEFAULT_THRESHOLD,
    FEATURES,
    VERIFIER_FAQ_THRESHOLD,
    VERIFIER_MARGIN_WEIGHT,
    VERIFIER_THRESHOLD,
    RefusalModel,
    features,
)
from assistant.errors import ConfigError
from assistant.schema import Hit, Passage


def test_default_is_a_threshold_on_dense():
    t = DEFAULT_TEMPERATURE
    assert RefusalModel.default() == RefusalModel(
        weights={"dense": pytest.approx(1 / t), "faq": pytest.approx(-(DEFAULT_FAQ_THRESHOLD - DEFAULT_THRESHOLD) / t)},
        bias=pytest.approx(-DEFAULT_THRESHOLD / t), source="default", metrics={}, verifier="none",
    )


@pytest.mark.parametrize(
    ("features_", "p"),
    [
        ({"dense": DEFAULT_THRESHOLD, "faq": 0.0}, 0.5),  # at the plain-text threshold
        ({"dense": DEFAULT_FAQ_THRESHOLD, "faq": 1.0}, 0.5),  # FAQ rows need the higher threshold
        ({"dense": DEFAULT_THRESHOLD + 0.05, "faq": 0.0}, 1 / (1 + math.exp(-1))),  # one temperature above
        ({"dense": DEFAULT_THRESHOLD - 0.05, "faq": 0.0}, 1 / (1 + math.exp(1))),
        ({"dense": 0.5, "faq": 1.0}, 1 / (1 + math.exp(-(0.5 - DEFAULT_FAQ_THRESHOLD) / DEFAULT_TEMPERATURE))),
        ({"dense": 10.0}, 1 / (1 + math.exp(-50))),  # the logit is clipped to +-50
        ({"dense": -10.0}, 1 / (1 + math.exp(50))),
        ({}, 1 / (1 + math.exp(min(50, DEFAULT_THRESHOLD / DEFAULT_TEMPERATURE)))),  # missing features count as 0
    ],
)
def test_default_probability(features_, p):
    assert RefusalModel.default().probability(features_) == pytest.approx(p)


def test_default_with_margin_weight_adds_a_margin_weight():
    model = RefusalModel.default(0.5, 0.1, 0.7, margin_weight=0.5, verifier="v")
    assert model == RefusalModel(
        weights={"dense": pytest.approx(10.0), "faq": pytest.approx(-2.0), "margin": pytest.approx(5.0)},
        bias=pytest.approx(-5.0), source="default", verifier="v",
    )
    assert model.probability({"dense": 0.4, "margin": 0.2}) == pytest.approx(0.5)  # 0.4 + 0.5 * 0.2 = 0.5


@pytest.mark.parametrize("temperature", [0.0, -0.05])
def test_default_rejects_a_non_positive_temperature(temperature):
    with pytest.raises(ConfigError, match=rf"temperature must be > 0, got {temperature}"):
        RefusalModel.default(temperature=temperature)


@pytest.mark.parametrize(
    ("verifier", "threshold", "expected"),
    [
        ("none", None, RefusalModel.default(DEFAULT_THRESHOLD)),
        ("none", 0.3, RefusalModel.default(0.3)),
        ("mpnet", None, RefusalModel.default(VERIFIER_THRESHOLD, faq_threshold=VERIFIER_FAQ_THRESHOLD,
                                             margin_weight=VERIFIER_MARGIN_WEIGHT, verifier="mpnet")),
        ("mpnet", 0.6, RefusalModel.default(0.6, faq_threshold=VERIFIER_FAQ_THRESHOLD,
                                            margin_weight=VERIFIER_MARGIN_WEIGHT, verifier="mpnet")),
    ],
)  # fmt: skip
def test_default_for(verifier, threshold, expected):
    assert RefusalModel.default_for(verifier, threshold) == expected


def test_default_for_the_verifier_answers_on_dense_plus_half_margin():
    model = RefusalModel.default_for("mpnet")
    assert model.probability({"dense": 0.43, "margin": 0.2, "faq": 0.0}) == pytest.approx(0.5)  # 0.53
    assert model.probability({"dense": 0.55, "margin": 0.2, "faq": 1.0}) == pytest.approx(0.5)  # 0.65


def test_logit_is_bias_plus_weighted_features():
    model = RefusalModel(weights={"dense": 2.0, "coverage": -1.0}, bias=0.5)
    assert model.logit({"dense": 1.0, "coverage": 0.5, "faq": 9.0}) == pytest.approx(2.0)


def test_save_then_load_is_the_same_model(tmp_path):
    model = RefusalModel(
        weights={f: float(i) - 2.0 for i, f in enumerate(FEATURES)}, bias=-0.25, source="calibrated on gold.jsonl",
        metrics={"auroc": 0.9, "folds": 5.0}, verifier="mpnet",
    )  # fmt: skip
    path = model.save(tmp_path)
    assert path == tmp_path / CALIBRATION_FILE
    assert RefusalModel.load(tmp_path) == model
    assert not (tmp_path / "calibration.tmp").exists()  # written through a temporary file, then renamed
    assert json.loads(path.read_text())["bias"] == -0.25


@pytest.mark.parametrize("content", ["[1, 2]", "null", "3"])
def test_load_of_a_calibration_that_is_not_an_object_names_the_file(tmp_path, content):
    (tmp_path / CALIBRATION_FILE).write_text(content)
    with pytest.raises(ConfigError, match=r"calibration\.json: unreadable calibration"):
        RefusalModel.load(tmp_path)


def test_load_of_a_non_numeric_weight_names_the_file(tmp_path):
    (tmp_path / CALIBRATION_FILE).write_text('{"weights": {"dense": "high"}, "bias": 0.0}')
    with pytest.raises(ConfigError, match=r"calibration\.json: unreadable calibration"):
        RefusalModel.load(tmp_path)


def test_load_without_a_file_is_none(tmp_path):
    assert RefusalModel.load(tmp_path) is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", r"Expecting property name"),
        ('{"weights": {"dense": 1.0, "mood": 2.0}}', r"unknown features \['mood'\]"),
        ('{"weights": {}, "colour": "red"}', r"unexpected keyword argument 'colour'"),
        ('{"weights": null}', r"'weights' must be an object"),
    ],
)
def test_load_of_a_corrupt_calibration_names_the_file(tmp_path, content, reason):
    (tmp_path / CALIBRATION_FILE).write_text(content)
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / CALIBRATION_FILE)) + r": unreadable calibration \(.*" + reason):
        RefusalModel.load(tmp_path)
    with pytest.raises(ConfigError, match=r"delete it or run `assistant calibrate` again"):
        RefusalModel.load(tmp_path)


# --- features() on hand-made hits --------------------------------------------------------------

PASSAGES = [
    Passage("s:ship-1", "s", "Shipping", "All orders ship within 2 working days.", "s.txt", 1),
    Passage("s:ship-2", "s", "Shipping", "Express orders ship the same day.", "s.txt", 3),
    Passage("s:returns-1", "s", "Returns", "You can return items within 30 days.", "s.txt", 5),
    Passage("q7", "q7", "Do you gift wrap?", "Yes, gift wrapping is free.", "f.jsonl", 1, "faq"),
]
BY_ID = {p.id: i for i, p in enumerate(PASSAGES)}


@pytest.fixture(scope="module")
def lexical():
    return LexicalIndex(PASSAGES)


def test_features_without_hits_are_zero(lexical):
    assert features("anything", [], lexical, BY_ID) == {f: 0.0 for f in FEATURES}


def test_features_margin_is_over_the_best_other_title(lexical):
    hits = [
        Hit(PASSAGES[0], 0.8, dense=0.7),
        Hit(PASSAGES[1], 0.7, dense=0.65),  # same title as the best: agreement, not ambiguity
        Hit(PASSAGES[2], 0.5, dense=0.4),
    ]
    assert features("how fast do orders ship to London", hits, lexical, BY_ID) == {
        "dense": pytest.approx(0.7),
        "margin": pytest.approx(0.3),
        "coverage": pytest.approx(2 / 4),  # order, ship known; fast, london not
        "coverage_top": pytest.approx(2 / 4),
        "faq": 0.0,
    }


def test_features_read_the_verifier_cosine_when_present(lexical):
    hits = [
        Hit(PASSAGES[0], 0.9, dense=0.9, verified=0.3),
        Hit(PASSAGES[3], 0.6, dense=0.2, verified=0.6),
    ]
    assert features("gift wrap", hits, lexical, BY_ID) == {
        "dense": pytest.approx(0.6),  # the FAQ row: best by the verifier
        "margin": pytest.approx(0.3),
        "coverage": pytest.approx(1.0),
        "coverage_top": pytest.approx(1.0),
        "faq": 1.0,
    }


def test_features_margin_is_the_cosine_when_every_hit_shares_the_title(lexical):
    hits = [Hit(PASSAGES[0], 0.8, dense=0.7), Hit(PASSAGES[1], 0.7, dense=0.6)]
    assert features("ship", hits, lexical, BY_ID)["margin"] == pytest.approx(0.7)


