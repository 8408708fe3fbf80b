"""Unit tests for assistant/evaluation/console.py: the terminal tables of `assistant eval`."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from assistant.evaluation.baseline import Comparison
from assistant.evaluation.console import (
    _fmt,
    format_comparison,
    format_failures,
    format_summary,
    format_table,
)
from assistant.evaluation.gate import Bound, check_gate
from assistant.evaluation.run import EvalRun
from assistant.evaluation.scoring import METRICS

SUMMARY = {name: 0.5 for name in METRICS} | {"hit@1": None, "latency_p50_ms": 12.3456, "n": 7, "n_answerable": 5, "n_unanswerable": 2}


def run(bounds=(), comparison=None) -> EvalRun:
    bounds = list(bounds)
    return EvalRun(pd.DataFrame(), SUMMARY, bounds, check_gate(SUMMARY, bounds), comparison, 0.1)


def table_rows(text: str) -> dict[str, list[str]]:
    lines = text.splitlines()
    return {line.split()[0]: line.split()[1:] for line in lines[2:]}


def test_format_summary_without_gate():
    text = format_summary(run())
    header = text.splitlines()[0].split()
    assert header == ["metric", "value"]
    rows = table_rows(text)
    assert list(rows) == [*METRICS, "n"]
    assert rows["answer_accuracy"] == ["0.500"] and rows["latency_p50_ms"] == ["12.346"]
    assert rows["hit@1"] == ["n/a"] and rows["n"] == ["7"]


def test_format_summary_with_gate_marks_failures():
    text = format_summary(run([Bound("answer_accuracy", 0.6), Bound("over_refusal_rate", 0.6, "max")]))
    assert text.splitlines()[0].split() == ["metric", "value", "gate", "status"]
    rows = table_rows(text)
    assert rows["answer_accuracy"] == ["0.500", ">=", "0.6", "FAIL"]
    assert rows["over_refusal_rate"] == ["0.500", "<=", "0.6", "ok"]
    assert rows["hit@3"] == ["0.500"]  # no bound: empty gate and status cells


def test_format_summary_with_baseline_shows_the_change():
    base = dict(SUMMARY, answer_accuracy=0.25)
    comparison = Comparison(pd.DataFrame(), pd.DataFrame(), [], [], base)
    rows = table_rows(format_summary(run(comparison=comparison)))
    assert rows["answer_accuracy"] == ["0.500", "0.250", "+0.250"]
    assert rows["hit@1"] == ["n/a"]  # undefined now and before: baseline and change cells left blank


@pytest.mark.parametrize(
    ("value", "column", "text"),
    [
        (None, "value", "n/a"), (math.nan, "value", "n/a"), ("", "value", "n/a"),
        (None, "gate", ""), (None, "status", ""), (None, "baseline", ""), (math.nan, "change", ""),
        (0.12345, "value", "0.123"), (-0.12345, "change", "-0.123"), (0.5, "change", "+0.500"),
        (7, "value", "7"), ("FAIL", "status", "FAIL"),
    ],
)  # fmt: skip
def test_fmt(value, column, text):
    assert _fmt(value, column) == text


RESULTS = pd.DataFrame({
    "id": ["a", "b", "c", "d"],
    "question": ["q a", "q b", "q c", "q d"],
    "expected": ["e a", "e b", "e c", "e d"],
    "got": ["g a", "x" * 200, "g c", "g d"],
    "correct": [True, False, False, False],
})  # fmt: skip


def test_format_failures_lists_wrong_rows_with_a_limit():
    text = format_failures(RESULTS, 2)
    assert text.startswith("\nfailing questions (3 of 4):\n")
    assert "q b" in text and "q c" in text and "q d" not in text and "q a" not in text
    assert text.endswith("... and 1 more (--max-failures 0 prints all; --out writes them all)")
    assert "x" * 160 not in text.replace("\n", "")  # long answers are shortened


def test_format_failures_zero_prints_all():
    text = format_failures(RESULTS, 0)
    assert all(f"q {i}" in text for i in "bcd") and "more" not in text


def test_format_failures_when_everything_is_right():
    assert format_failures(RESULTS.assign(correct=True), 20) == "\nno failing questions"


def test_format_comparison():
    regressions = pd.DataFrame({"id": ["a"], "question": ["q a"], "before": ["right"], "expected": ["e"], "now": ["wrong"]})
    empty = regressions.iloc[:0]
    text = format_comparison(Comparison(regressions, empty, ["n1", "n2"], ["gone"], None))
    lines = text.splitlines()
    assert lines[1] == "against the baseline: 1 right -> wrong, 0 wrong -> right, 2 new, 1 removed"
    assert "right -> wrong:" in lines and "wrong -> right:" not in lines
    assert lines[-1].split() == ["a", "q", "a", "right", "wrong"]


def test_format_comparison_without_changes_is_one_line():
    empty = pd.DataFrame(columns=["id", "question", "before", "expected", "now"])
    assert format_comparison(Comparison(empty, empty, [], [], None)) == "\nagainst the baseline: 0 right -> wrong, 0 wrong -> right"


def test_format_table():
    text = format_table(pd.DataFrame({"retriever": ["hybrid", "dense"], "hit@1": [0.5, 1.0]}))
    assert text.splitlines()[0].split() == ["retriever", "hit@1"]
    assert [line.split() for line in text.splitlines()[2:]] == [["hybrid", "0.5"], ["dense", "1.0"]]
