"""Unit tests for assistant/evaluation/gate.py: bounds from flags and gate files, and the check."""

from __future__ import annotations

import json

import pytest

from assistant.errors import ConfigError
from assistant.evaluation.gate import (
    Bound,
    GateFailure,
    check_gate,
    load_gate,
    make_bound,
    merge_bounds,
    parse_bound,
)


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("answer_accuracy=0.9", "min", Bound("answer_accuracy", 0.9, "min")),
        (" hit@1 = 1 ", "min", Bound("hit@1", 1.0, "min")),
        ("mrr@10=0", "min", Bound("mrr@10", 0.0, "min")),
        ("over_refusal_rate=0.1", "max", Bound("over_refusal_rate", 0.1, "max")),
        ("latency_p95_ms=250", "max", Bound("latency_p95_ms", 250.0, "max")),
        ("simulated_auroc=0.8", "min", Bound("simulated_auroc", 0.8, "min")),
        ("simulated_answerable_refused_at_90=0.2", "max", Bound("simulated_answerable_refused_at_90", 0.2, "max")),
        ("hit@3=1e-1", "min", Bound("hit@3", 0.1, "min")),
    ],
)
def test_parse_bound(text, kind, expected):
    assert parse_bound(text, kind) == expected


@pytest.mark.parametrize(
    ("text", "kind", "option", "message"),
    [
        ("answer_accuracy", "min", "--fail-under", r"--fail-under expects METRIC=VALUE, got 'answer_accuracy'"),
        ("=0.5", "min", "--fail-under", r"--fail-under expects METRIC=VALUE, got '=0.5'"),
        ("hit@1=", "min", "--fail-under", r"--fail-under expects METRIC=VALUE, got 'hit@1='"),
        ("hit@1=  ", "min", "--fail-under", r"expects METRIC=VALUE"),
        ("hit@1=high", "min", "--fail-under", r"--fail-under 'hit@1=high': 'high' is not a number"),
        ("accuracy=1", "min", "--fail-under", r"--fail-under 'accuracy=1': unknown metric 'accuracy'; choose from answer_accuracy, "),
        ("hit@1=nan", "min", "--fail-under", r"bound must be a finite number, got nan"),
        ("hit@1=inf", "min", "--fail-under", r"bound must be a finite number, got inf"),
        ("over_refusal_rate=0.1", "min", "--fail-under", r"over_refusal_rate is lower-is-better; give it a maximum \(--fail-over\)"),
        ("hit@1=0.5", "max", "--fail-over", r"--fail-over 'hit@1=0.5': hit@1 is higher-is-better; give it a minimum \(--fail-under\)"),
    ],
)
def test_parse_bound_rejects(text, kind, option, message):
    with pytest.raises(ConfigError, match=message):
        parse_bound(text, kind, option=option)


def test_make_bound_names_where_the_bound_came_from():
    assert make_bound("hit@5", 1, "min", where="x") == Bound("hit@5", 1.0, "min")
    with pytest.raises(ConfigError, match=r"^evals/gate\.json: unknown metric 'f1'"):
        make_bound("f1", 0.5, "min", where="evals/gate.json")


def test_load_gate(tmp_path):
    path = tmp_path / "gate.json"
    path.write_text(json.dumps({"answer_accuracy": 0.8, "hit@1": 1, "simulated_auroc": 0.75}))
    assert load_gate(path) == [Bound("answer_accuracy", 0.8), Bound("hit@1", 1.0), Bound("simulated_auroc", 0.75)]
    assert load_gate(str(path)) == load_gate(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"gate\.json: gate file not found"),
        ("{not json", r"gate\.json: gate file is not valid JSON \(Expecting property name"),
        (b"\xff\xfe{", r"gate\.json: gate file is not valid JSON"),
        ("[0.9]", r"gate\.json: gate file must be a JSON object of metric -> bound"),
        ('{"hit@1": "0.9"}', r"gate\.json: bound for 'hit@1' must be a number, got '0\.9'"),
        ('{"hit@1": true}', r"gate\.json: bound for 'hit@1' must be a number, got True"),
        ('{"hit@1": null}', r"bound for 'hit@1' must be a number, got None"),
        ('{"accuracy": 0.9}', r"gate\.json: unknown metric 'accuracy'"),
        ('{"hit@1": NaN}', r"gate\.json: bound must be a finite number, got nan"),
    ],
)
def test_load_gate_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "gate.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_gate(path)


def test_merge_bounds_later_replace_earlier_per_metric_and_kind():
    gate = [Bound("hit@1", 0.9), Bound("answer_accuracy", 0.8)]
    flags = [Bound("hit@1", 0.95), Bound("over_refusal_rate", 0.1, "max")]
    assert merge_bounds(gate, flags) == [Bound("hit@1", 0.95), Bound("answer_accuracy", 0.8), Bound("over_refusal_rate", 0.1, "max")]
    assert merge_bounds() == [] and merge_bounds(gate) == gate


SUMMARY = {"answer_accuracy": 0.8, "hit@1": 0.9, "over_refusal_rate": 0.1, "citation_precision": None}


@pytest.mark.parametrize(
    ("bounds", "failures"),
    [
        ([Bound("answer_accuracy", 0.8)], []),  # equal to a minimum passes
        ([Bound("over_refusal_rate", 0.1, "max")], []),  # equal to a maximum passes
        ([Bound("answer_accuracy", 0.81)], [GateFailure(Bound("answer_accuracy", 0.81), 0.8)]),
        ([Bound("over_refusal_rate", 0.05, "max")], [GateFailure(Bound("over_refusal_rate", 0.05, "max"), 0.1)]),
        ([Bound("citation_precision", 0.0)], [GateFailure(Bound("citation_precision", 0.0), None)]),  # undefined
        ([Bound("simulated_auroc", 0.5)], [GateFailure(Bound("simulated_auroc", 0.5), None)]),  # absent
        ([Bound("hit@1", 0.5), Bound("answer_accuracy", 0.9)], [GateFailure(Bound("answer_accuracy", 0.9), 0.8)]),
        ([], []),
    ],
)
def test_check_gate(bounds, failures):
    assert check_gate(SUMMARY, bounds) == failures


@pytest.mark.parametrize(
    ("failure", "text"),
    [
        (GateFailure(Bound("answer_accuracy", 0.81), 0.8), "answer_accuracy = 0.8000 is below the gate (>= 0.81)"),
        (GateFailure(Bound("over_refusal_rate", 0.05, "max"), 0.1), "over_refusal_rate = 0.1000 is above the gate (<= 0.05)"),
        (GateFailure(Bound("citation_precision", 0.5), None),
         "citation_precision is undefined for this gold set (no rows measure it), but the gate needs it"),
    ],
)  # fmt: skip
def test_gate_failure_text(failure, text):
    assert str(failure) == text


def test_a_gate_file_bounds_a_lower_is_better_metric_from_above_and_skips_notes(tmp_path):
    path = tmp_path / "gate.json"
    path.write_text('{"_origin": "a note", "hit@1": 0.9, "mean_sentences": 2.5}')
    assert load_gate(path) == [Bound("hit@1", 0.9, "min"), Bound("mean_sentences", 2.5, "max")]
