"""Unit tests for assistant/evaluation/report.py: the files write_report writes, and the renderers."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from assistant.evaluation.baseline import compare, load_results
from assistant.evaluation.gate import Bound, check_gate
from assistant.evaluation.gold import GoldQuestion
from assistant.evaluation.report import (
    ReportFigure,
    ReportSection,
    ReportTable,
    render_html,
    render_markdown,
    shorten,
    summary_table,
    write_report,
    write_summary_json,
)
from assistant.evaluation.run import EvalRun
from assistant.evaluation.scoring import METRICS, score_answer, summarize
from assistant.schema import Answer, Citation, Hit, Passage

P = [
    Passage("s:ship-1", "s", "Shipping", "All orders ship within 2 working days.", "s.txt", 1),
    Passage("s:pay-1", "s", "Payment <b>&</b> | cash", "We accept Visa and PayPal.", "s.txt", 5),
]
BY_ID = {p.id: p for p in P}


def row(qid, question, answerable, answered, cited, category=""):
    hits = [Hit(p, 0.8) for p in P]
    answer = Answer(
        question=question, answered=answered, answer=BY_ID[cited].text if answered else "I couldn't find this.",
        confidence=0.7, citations=[Citation.from_hit(Hit(BY_ID[cited], 0.8))] if answered else [],
        refusal_reason=None if answered else "not_covered", retrieved=hits, latency_ms=10.0,
        evidence={"p_answer": 0.7 if answered else 0.2},
    )  # fmt: skip
    q = GoldQuestion(qid, question, answerable, ("s:ship-1",) if answerable else (),
                     metadata={"category": category} if category else {})  # fmt: skip
    return score_answer(q, answer, BY_ID, section="Shipping" if answerable else "(not in the FAQ)")


def make_run(bounds=(), baseline=None, simulated=None) -> EvalRun:
    results = pd.DataFrame([
        row("g1", "How fast do you ship?", True, True, "s:ship-1", "paraphrase"),
        row("g2", "Shipping time <script>alert(1)</script>?", True, True, "s:pay-1", "typo"),
        row("g3", "Do you sell cars?", False, False, "s:ship-1"),
    ])  # fmt: skip
    summary = summarize(results)
    bounds = list(bounds)
    return EvalRun(results, summary, bounds, check_gate(summary, bounds),
                   compare(results, baseline) if baseline is not None else None, 1.5, simulated)  # fmt: skip


def test_write_report_writes_every_file(tmp_path):
    run = make_run([Bound("answer_accuracy", 0.9)])
    paths = write_report(tmp_path / "out", run, meta={"corpus": "tiny <corpus>"}, title="Tiny eval")
    assert set(paths) == {"results", "summary", "by_section", "by_category", "markdown", "html"}
    assert all(p.is_file() and p.parent == tmp_path / "out" for p in paths.values())

    back = load_results(paths["results"])
    assert back["id"].tolist() == ["g1", "g2", "g3"] and back["correct"].tolist() == [True, False, True]
    assert back["cited_ids"].tolist() == [["s:ship-1"], ["s:pay-1"], []]

    summary = json.loads(paths["summary"].read_text())
    assert summary["answer_accuracy"] == pytest.approx(2 / 3) and summary["n"] == 3
    assert summary["citation_precision"] == pytest.approx(0.5)

    assert pd.read_csv(paths["by_section"])["section"].tolist() == ["Shipping", "(not in the FAQ)"]
    assert sorted(pd.read_csv(paths["by_category"])["category"].tolist()) == ["(none)", "paraphrase", "typo"]

    md = paths["markdown"].read_text()
    assert md.startswith("# Tiny eval\n\n- **corpus**: tiny <corpus>\n")
    assert "Gate: FAILED: answer_accuracy = 0.6667 is below the gate (>= 0.9)" in md
    figures = sorted(p.name for p in (tmp_path / "out" / "figures").iterdir())
    assert figures == ["accuracy_by_category.png", "accuracy_by_section.png", "confidence.png"]
    assert all(f"(figures/{name})" in md for name in figures)
    assert (tmp_path / "out" / "figures" / "confidence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    page = paths["html"].read_text()
    assert page.startswith("<!doctype html>") and "<title>Tiny eval</title>" in page
    assert page.count("data:image/png;base64,") == 3
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page  # questions are escaped
    assert "tiny &lt;corpus&gt;" in page
    assert "<p class='fail'>Gate: FAILED" in page


def test_write_report_with_a_baseline_and_the_simulation(tmp_path):
    baseline = make_run().results.assign(correct=[True, True, True])
    simulated = pd.DataFrame([row("g1", "How fast do you ship?", False, False, "s:ship-1")]).assign(
        simulated=True, left_out=[["s:ship-1", "s:pay-1"]]
    )
    paths = write_report(tmp_path, make_run(baseline=baseline, simulated=simulated))
    assert pd.read_csv(paths["simulated"])["left_out"].tolist() == ["s:ship-1|s:pay-1"]
    md = paths["markdown"].read_text()
    assert "## Changes since the baseline" in md and "1 question(s) went from right to wrong, 0 from wrong to right" in md
    assert md.index("## Changes since the baseline") < md.index("## Failing questions")
    assert "Gate:" not in md  # no bounds, no gate line


def test_write_summary_json_writes_nan_as_null(tmp_path):
    write_summary_json(tmp_path / "s.json", {"hit@1": math.nan, "n": 3, "mrr@10": None, "answer_accuracy": 0.5})
    assert json.loads((tmp_path / "s.json").read_text()) == {"hit@1": None, "n": 3, "mrr@10": None, "answer_accuracy": 0.5}


def test_summary_table_with_gate_and_baseline():
    baseline = make_run().results.assign(correct=[True, True, True])
    run = make_run([Bound("answer_accuracy", 0.9), Bound("latency_p95_ms", 100.0, "max")], baseline=baseline)
    table = summary_table(run).set_index("metric")
    assert table.index.tolist() == list(METRICS)
    assert table.loc["answer_accuracy"].to_dict() == {
        "value": pytest.approx(2 / 3), "gate": ">= 0.9", "status": "FAIL", "baseline": 1.0, "change": pytest.approx(-1 / 3),
    }  # fmt: skip
    assert (table.loc["latency_p95_ms", "gate"], table.loc["latency_p95_ms", "status"]) == ("<= 100", "ok")
    assert (table.loc["hit@1", "gate"], table.loc["hit@1", "status"]) == ("", "")


def test_summary_table_without_baseline_has_no_change_columns():
    assert list(summary_table(make_run()).columns) == ["metric", "value", "gate", "status"]


@pytest.mark.parametrize(
    ("text", "width", "short"),
    [("abc", 3, "abc"), ("abcd", 3, "ab…"), ("", 1, ""), ("hello world", 6, "hello…"), ("x" * 10, 10, "x" * 10)],
)
def test_shorten(text, width, short):
    assert shorten(text, width) == short


SECTIONS = [
    ReportSection(
        "Extra: <numbers>", "First paragraph.\n\nSecond | paragraph.",
        figures=(ReportFigure("fig", "A figure", b"\x89PNG fake", caption="Cap"),),
        tables=(ReportTable("Table", pd.DataFrame({"a": ["x|y", "z"], "b": [1.23456, math.nan]}), max_rows=1),
                ReportTable("Empty", pd.DataFrame({"a": []}))),
    )
]  # fmt: skip


def test_render_markdown():
    md = render_markdown("T", {"k": "v"}, SECTIONS, figure_dir="figs")
    assert md.splitlines()[:3] == ["# T", "", "- **k**: v"]
    assert "## Extra: <numbers>" in md and "![A figure](figs/fig.png)" in md and "*Cap*" in md
    assert "x\\|y" in md and "1.235" in md and "| z" not in md  # cut to one row, pipes escaped
    assert "First 1 of 2 rows (see the CSV files)." in md
    assert "**Empty**\n\n(none)" in md
    assert md.endswith("\n") and not md.endswith("\n\n")


def test_render_html():
    page = render_html("T & co", {"k": "<v>"}, SECTIONS)
    assert "<title>T &amp; co</title>" in page and "<dd>&lt;v&gt;</dd>" in page
    assert "<a href='#extra-numbers'>Extra: &lt;numbers&gt;</a>" in page and "<section id='extra-numbers'>" in page
    assert "<p>First paragraph.</p>" in page and "<p>Second | paragraph.</p>" in page
    assert "src='data:image/png;base64,iVBORyBmYWtl'" in page and "<figcaption>Cap</figcaption>" in page
    assert "1.235" in page and "<td>z</td>" not in page and "First 1 of 2 rows" in page
    assert "<h3>Empty</h3>\n<p>(none)</p>" in page
