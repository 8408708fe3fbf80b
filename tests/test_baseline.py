"""Unit tests for assistant/evaluation/baseline.py: reading an earlier results.csv and the diff against it."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from assistant.errors import ConfigError
from assistant.evaluation.baseline import compare, load_results, results_csv_frame
from assistant.evaluation.scoring import summarize


def results(correct: dict[str, bool], **extra) -> pd.DataFrame:
    ids = list(correct)
    return pd.DataFrame({
        "id": ids, "question": [f"question {i}" for i in ids], "expected": ["e"] * len(ids),
        "got": [f"got {i} {'right' if correct[i] else 'wrong'}" for i in ids], "correct": list(correct.values()), **extra,
    })  # fmt: skip


def full(correct: dict[str, bool]) -> pd.DataFrame:
    """A results table with every column the summary needs."""
    n = len(correct)
    return results(
        correct, answerable=[True] * n, answered=[True] * n, n_citations=[1] * n, n_relevant_citations=[1.0] * n,
        latency_ms=[5.0] * n, **{"mrr@10": [1.0] * n, "hit@1": [1.0] * n, "hit@3": [1.0] * n, "hit@5": [1.0] * n},
        cited_ids=[["a", "b"]] + [[]] * (n - 1),
    )  # fmt: skip


def test_results_csv_round_trip(tmp_path):
    table = full({"1": True, "2": False})
    results_csv_frame(table).to_csv(tmp_path / "results.csv", index=False)
    back = load_results(tmp_path)  # a --out folder holding results.csv
    assert back["id"].tolist() == ["1", "2"]  # ids stay text
    assert back["correct"].tolist() == [True, False]
    assert back["cited_ids"].tolist() == [["a", "b"], []]
    pd.testing.assert_frame_equal(back[table.columns], table, check_dtype=False)


def test_results_csv_frame_joins_list_columns():
    assert results_csv_frame(full({"1": True}))["cited_ids"].tolist() == ["a|b"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"--baseline .*results\.csv: results file not found"),
        ("", r"--baseline .*results\.csv: not a results CSV \(No columns to parse"),
        ('id,correct\n"1,True\n', r"--baseline .*results\.csv: not a results CSV"),
        ("id,question\n1,q\n", r"--baseline .*results\.csv: results CSV lacks column\(s\) correct"),
        ("question\nq\n", r"lacks column\(s\) id, correct"),
        ("id,correct\n1,True\n2,maybe\n", r"--baseline .*results\.csv:3: 'correct' must be True or False, got 'maybe'"),
        ("id,correct\n1,True\n2,\n", r"results\.csv:3: 'correct' must be True or False, got nan"),
        ("id,correct\n1,True\n1,False\n", r"--baseline .*results\.csv: duplicate id '1'"),
    ],
)
def test_load_results_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "results.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_results(path)


def test_load_results_accepts_any_case_of_true_and_false(tmp_path):
    (tmp_path / "r.csv").write_text("id,correct\n007,TRUE\nb,false\n")
    assert load_results(tmp_path / "r.csv")[["id", "correct"]].values.tolist() == [["007", True], ["b", False]]


def test_compare_lists_regressions_fixes_added_and_removed():
    before = results({"a": True, "b": False, "c": True, "gone": True})
    now = results({"a": False, "b": True, "c": True, "new": False})
    diff = compare(now, before)
    assert diff.regressions.to_dict("records") == [
        {"id": "a", "question": "question a", "before": "got a right", "expected": "e", "now": "got a wrong"}
    ]
    assert diff.fixes.to_dict("records") == [
        {"id": "b", "question": "question b", "before": "got b wrong", "expected": "e", "now": "got b right"}
    ]
    assert (diff.added, diff.removed) == (["new"], ["gone"])
    assert diff.baseline_summary is None  # the baseline lacks the metric columns


def test_compare_against_a_baseline_without_got():
    before = results({"a": True}).drop(columns=["got"])
    diff = compare(results({"a": False}), before)
    assert diff.regressions["before"].tolist() == [""]


def test_compare_summarises_a_full_baseline():
    before = full({"a": True, "b": False})
    diff = compare(full({"a": True, "b": True}), before)
    assert diff.baseline_summary == summarize(before)
    assert diff.baseline_summary["answer_accuracy"] == 0.5
    assert len(diff.regressions) == 0 and diff.fixes["id"].tolist() == ["b"]


def test_compare_of_identical_runs_is_empty():
    table = full({"a": True, "b": False})
    diff = compare(table, table)
    assert (len(diff.regressions), len(diff.fixes), diff.added, diff.removed) == (0, 0, [], [])
    assert not math.isnan(diff.baseline_summary["hit@1"])
