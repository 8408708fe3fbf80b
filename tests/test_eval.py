"""The eval harness: scoring plumbing, summaries, gate, baseline, reports, the CLI, and the bundled gate."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import assistant.evaluation as ev
from assistant.cli.main import main
from assistant.errors import ConfigError, GoldError, QuestionError
from assistant.evaluation.gold import GoldQuestion, load_gold
from assistant.evaluation.report import (
    ReportFigure,
    ReportSection,
    ReportTable,
    figure_png,
    new_figure,
    write_report,
)
from assistant.schema import Answer, AnswerSentence, Citation, Hit, Passage

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "evals" / "test.jsonl"  # the held-out set `assistant eval` scores by default
GATE = ROOT / "evals" / "gate.json"

# --- a scripted assistant: exact answers, so every figure below is computed by hand ----------

S1 = Passage("faq:shipping-1", "faq", "Shipping", "All orders ship within 2 working days.", "faq.txt", 3)
R1 = Passage("faq:returns-1", "faq", "Returns", "You can return items within 30 days for a refund.", "faq.txt", 7)
P1 = Passage("pay:payment-1", "pay", "Payment", "We accept Visa and PayPal.", "pay.txt", 3)
P2 = Passage("pay:payment-2", "pay", "Payment", "We do not accept cash.", "pay.txt", 5)


def hits(*passages: Passage) -> list[Hit]:
    return [Hit(p, 0.9 - 0.1 * i) for i, p in enumerate(passages)]


def answered(text: str, cited: list[Passage], retrieved: list[Passage], latency: float) -> Answer:
    hs = hits(*retrieved)
    by_id = {h.passage.id: h for h in hs}
    return Answer("", True, text, 0.9, [Citation.from_hit(by_id.get(p.id, Hit(p, 0.1))) for p in cited],
                  retrieved=hs, latency_ms=latency)  # fmt: skip


def refused(retrieved: list[Passage], latency: float) -> Answer:
    return Answer("", False, "I couldn't find this.", 0.2, refusal_reason="not_covered", retrieved=hits(*retrieved), latency_ms=latency)


def g(qid: str, *, answerable=True, ids=(), facts=(), category="formal", line=1) -> GoldQuestion:
    return GoldQuestion(qid, f"question {qid}?", answerable, tuple(ids), tuple(facts),
                        metadata={"category": category}, source="gold.jsonl", line=line)  # fmt: skip


GOLD_ROWS = [
    g("q1", ids=["faq:shipping-1"], facts=["2 working days"]),
    g("q2", ids=["pay"], facts=["visa"], category="typo"),  # a document id: every 'pay' passage is relevant
    g("q3", facts=["30 days"], category="typo"),  # facts only: relevance by the passage text
    g("q4", ids=["faq:returns-1"], facts=["refund"]),
    g("q5", answerable=False, category="off-topic"),
    replace(g("q6", answerable=False, category="off-topic"), metadata={"category": "off-topic", "author": "ana"}),
    g("q7", ids=["faq:shipping-1"], facts=["2 working days"]),
]
ANSWERS = {
    "q1": answered("All orders ship within 2 working days. [1]", [S1], [S1, R1, P1], 10),
    "q2": answered("Returns... We accept Visa and PayPal. [2]", [R1, P1], [R1, P2, P1], 20),
    "q3": answered("All orders ship within 2 working days. [1]", [S1], [S1, P1, R1], 30),
    "q4": refused([R1, S1], 40),
    "q5": replace(refused([P2], 50), evidence={"p_answer": 0.25}),
    "q6": answered("All orders ship within 2 working days. [1]", [S1], [S1], 60),
    "q7": answered("We do not accept cash, and ship in 2 working days [1]", [P2], [P2, P1, R1, S1, S1], 70),
}


class Scripted:
    def __init__(self, answers: dict[str, Answer], passages=(S1, R1, P1, P2)):
        self.index = SimpleNamespace(passages=list(passages))
        self.answers = answers
        self.asked: list[str] = []

    def ask(self, question: str) -> Answer:
        self.asked.append(question)
        if question not in self.answers:
            raise QuestionError("the question is empty")
        return self.answers[question]


@pytest.fixture
def scripted():
    return Scripted({f"question {k}?": a for k, a in ANSWERS.items()})


def test_per_question_rows_are_scored_exactly(scripted):
    df = ev.evaluate(scripted, GOLD_ROWS)
    assert scripted.asked[0] == scripted.asked[1] == "question q1?"  # one untimed warm-up ask
    assert list(df["id"]) == [q.id for q in GOLD_ROWS]
    assert list(df["correct"]) == [True, True, False, False, True, False, False]
    assert list(df["hit@1"].fillna(-1)) == [1, 0, 0, 1, -1, -1, 0]
    assert list(df["hit@3"].fillna(-1)) == [1, 1, 1, 1, -1, -1, 0]
    assert list(df["hit@5"].fillna(-1)) == [1, 1, 1, 1, -1, -1, 1]
    assert list(df["mrr@10"].fillna(-1)) == pytest.approx([1, 1 / 2, 1 / 3, 1, -1, -1, 1 / 4])
    assert list(df["first_relevant_rank"].fillna(-1)) == [1, 2, 3, 1, -1, -1, 4]
    assert list(df["citation_precision"].fillna(-1)) == [1, 0.5, -1, -1, -1, -1, 0]
    assert list(df["section"]) == ["Shipping", "Payment", "Returns", "Returns", ev.UNANSWERABLE_SECTION,
                                   ev.UNANSWERABLE_SECTION, "Shipping"]  # fmt: skip
    assert list(df["cited_section"]) == ["Shipping", "Returns", "Shipping", "", "", "Shipping", "Payment"]
    assert list(df["category"]) == ["formal", "typo", "typo", "formal", "off-topic", "off-topic", "formal"]
    assert list(df["failure"]) == [
        "", "", "missing '30 days'", "refused an answerable question", "",
        "answered an unanswerable question", "cites no relevant passage",
    ]  # fmt: skip
    assert df.loc[2, "missing_facts"] == ["30 days"] and df.loc[6, "missing_facts"] == []
    assert df.loc[3, "got"] == "refused (not_covered)"
    assert df.loc[4, "expected"] == "refuse and point to human support"
    assert df.loc[1, "expected"] == "says 'visa'; cites pay"
    assert df.loc[0, "top_ids"] == ["faq:shipping-1", "faq:returns-1", "pay:payment-1"]
    assert df.loc[1, "cited_ids"] == ["faq:returns-1", "pay:payment-1"] and df.loc[1, "relevant_ids"] == ["pay"]
    assert list(df.columns) == [*ev.COLUMNS, "evidence.p_answer", "meta.author"]
    assert df["evidence.p_answer"].fillna(-1).tolist() == [-1, -1, -1, -1, 0.25, -1, -1]
    assert df["meta.author"].fillna("").tolist() == ["", "", "", "", "", "ana", ""]


def test_summary_is_computed_by_hand(scripted):
    summary = ev.summarize(ev.evaluate(scripted, GOLD_ROWS))
    # These scripted answers quote no sentences: nothing to judge precision by.
    assert (summary.pop("lead_accuracy"), summary.pop("answer_precision"), summary.pop("mean_sentences")) == (None, None, 0.0)
    assert summary == pytest.approx(
        {
            "answer_accuracy": 3 / 7,
            "answerable_accuracy": 2 / 5,
            "unanswerable_accuracy": 1 / 2,
            "over_refusal_rate": 1 / 5,
            "hit@1": 2 / 5,
            "hit@3": 4 / 5,
            "hit@5": 1.0,
            "mrr@10": (1 + 1 / 2 + 1 / 3 + 1 + 1 / 4) / 5,
            "citation_precision": 2 / 4,  # pooled over q1 (1/1), q2 (1/2), q7 (0/1)
            "latency_p50_ms": 40.0,
            "latency_p95_ms": 67.0,
            "n": 7,
            "n_answerable": 5,
            "n_unanswerable": 2,
        }
    )
    assert set(ev.METRICS) - {"lead_accuracy", "answer_precision", "mean_sentences"} | {"n"} <= set(summary)


def quoting(*sentences: tuple[str, Passage]) -> Answer:
    """An answer quoting ``sentences`` ((text, passage) pairs), as compose builds it."""
    cited = list(dict.fromkeys(p for _, p in sentences))
    quoted = [AnswerSentence(t, p.id, cited.index(p) + 1) for t, p in sentences]
    text = " ".join(f"{q.text} [{q.citation}]" for q in quoted)
    return replace(answered(text, cited, cited, 10), sentences=quoted)


def test_precision_metrics_are_computed_by_hand():
    rows = [
        g("p1", ids=["pay"], facts=["Visa"]),  # lead right, 1 of 2 on point
        replace(g("p2", ids=["pay"], facts=["Visa"]), support=("We do not accept cash.",)),  # lead wrong, 2 of 2
        g("p3", ids=["faq:returns-1"], facts=["30 days"]),  # refused: not judged, no sentences counted
        g("p4", ids=["faq:shipping-1"]),  # ids only: lead and precision not judged, sentences counted
        g("p5", answerable=False),  # answered wrongly: counts in mean_sentences only
    ]
    answers = {
        "p1": quoting(("We accept Visa and PayPal.", P1), ("You can return items within 30 days for a refund.", R1)),
        "p2": quoting(("We do not accept cash.", P2), ("We accept Visa and PayPal.", P1)),
        "p3": refused([R1], 10),
        "p4": quoting(("All orders ship within 2 working days.", S1),),
        "p5": quoting(("All orders ship within 2 working days.", S1), ("We do not accept cash.", P2)),
    }
    df = ev.evaluate(Scripted({f"question {k}?": a for k, a in answers.items()}), rows)
    assert df["n_sentences"].fillna(-1).tolist() == [2, 2, -1, 1, 2]
    assert df["lead_correct"].fillna(-1).tolist() == [1, 0, -1, -1, -1]
    assert df["n_on_point"].fillna(-1).tolist() == [1, 2, -1, -1, -1]
    assert df["first_sentence"].tolist() == ["We accept Visa and PayPal.", "We do not accept cash.", "",
                                             "All orders ship within 2 working days.", "All orders ship within 2 working days."]  # fmt: skip
    summary = ev.summarize(df)
    assert summary["lead_accuracy"] == pytest.approx(1 / 2)
    assert summary["answer_precision"] == pytest.approx(3 / 4)  # pooled over p1 and p2
    assert summary["mean_sentences"] == pytest.approx(7 / 4)  # every answered row
    # A results table from before these columns existed summarises them as undefined.
    old = ev.summarize(df.drop(columns=["n_sentences", "lead_correct", "n_on_point"]))
    assert (old["lead_accuracy"], old["answer_precision"], old["mean_sentences"]) == (None, None, None)
    failures = ev.check_gate(summary, [ev.Bound("lead_accuracy", 0.8), ev.Bound("mean_sentences", 1.5, "max")])
    assert [str(f) for f in failures] == ["lead_accuracy = 0.5000 is below the gate (>= 0.8)",
                                          "mean_sentences = 1.7500 is above the gate (<= 1.5)"]  # fmt: skip


def test_undefined_metrics_are_none_not_zero(scripted):
    only_unanswerable = [q for q in GOLD_ROWS if not q.answerable]
    s = ev.summarize(ev.evaluate(scripted, only_unanswerable))
    assert s["hit@1"] is None and s["mrr@10"] is None and s["answerable_accuracy"] is None
    assert s["citation_precision"] is None and s["unanswerable_accuracy"] == 0.5


def test_breakdown_by_category(scripted):
    table = ev.breakdown(ev.evaluate(scripted, GOLD_ROWS), "category")
    assert list(table["category"]) == ["formal", "off-topic", "typo"]
    assert list(table["n"]) == [3, 2, 2]
    assert list(table["accuracy"]) == pytest.approx([1 / 3, 1 / 2, 1 / 2])
    assert math.isnan(table.loc[1, "hit@1"])


def test_unknown_relevant_id_names_the_gold_line(scripted):
    rows = [*GOLD_ROWS, g("q8", ids=["faq:shipping-9"], facts=["x"], line=12)]
    with pytest.raises(GoldError, match=r"gold\.jsonl:12: relevant_ids 'faq:shipping-9' of 'q8' match no passage or document"):
        ev.evaluate(scripted, rows)
    assert scripted.asked == []  # checked before any question is asked


def test_question_error_names_the_gold_line(scripted):
    rows = [GOLD_ROWS[0], g("q9", ids=["faq"], line=5)]
    with pytest.raises(GoldError, match=r"gold\.jsonl:5: question 'q9' cannot be asked: the question is empty"):
        ev.evaluate(scripted, rows)


# --- gate -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("answer_accuracy", "min", r"--fail-under expects METRIC=VALUE, got 'answer_accuracy'"),
        ("answer_accuracy=", "min", r"--fail-under expects METRIC=VALUE"),
        ("answer_accuracy=high", "min", r"'high' is not a number"),
        ("accuracy=0.5", "min", r"unknown metric 'accuracy'; choose from answer_accuracy, "),
        ("hit@1=nan", "min", r"bound must be a finite number"),
        ("over_refusal_rate=0.1", "min", r"over_refusal_rate is lower-is-better; give it a maximum \(--fail-over\)"),
        ("hit@1=0.5", "max", r"hit@1 is higher-is-better; give it a minimum \(--fail-under\)"),
    ],
)
def test_parse_bound_errors(text, kind, message):
    with pytest.raises(ConfigError, match=message):
        ev.parse_bound(text, kind)


def test_check_gate():
    summary = {"answer_accuracy": 0.8, "hit@1": 0.9, "over_refusal_rate": 0.1, "unanswerable_accuracy": None}
    bounds = [
        ev.parse_bound("answer_accuracy=0.8"),  # equal passes
        ev.parse_bound("hit@1=0.95"),
        ev.parse_bound("over_refusal_rate=0.05", "max"),
        ev.parse_bound("unanswerable_accuracy=0.5"),
    ]
    failures = ev.check_gate(summary, bounds)
    assert [f.bound.metric for f in failures] == ["hit@1", "over_refusal_rate", "unanswerable_accuracy"]
    assert str(failures[0]) == "hit@1 = 0.9000 is below the gate (>= 0.95)"
    assert str(failures[1]) == "over_refusal_rate = 0.1000 is above the gate (<= 0.05)"
    assert "undefined for this gold set" in str(failures[2])
    merged = ev.merge_bounds([ev.Bound("hit@1", 0.9)], [ev.Bound("hit@1", 0.5)])
    assert merged == [ev.Bound("hit@1", 0.5)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", r"gate file is not valid JSON"),
        ("[0.5]", r"gate file must be a JSON object of metric -> bound"),
        ('{"hit@1": "0.5"}', r"bound for 'hit@1' must be a number, got '0.5'"),
        ('{"hit@1": true}', r"bound for 'hit@1' must be a number"),
        ('{"hit@2": 0.5}', r"unknown metric 'hit@2'"),
    ],
)
def test_load_gate_errors(tmp_path, content, message):
    path = tmp_path / "gate.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"gate\.json: " + message):
        ev.load_gate(path)


def test_gate_file_bounds_lower_is_better_metrics_from_above(tmp_path):
    path = tmp_path / "gate.json"
    path.write_text('{"_origin": "notes are not bounds", "hit@1": 0.9, "mean_sentences": 2.1, "latency_p95_ms": 500}')
    assert ev.load_gate(path) == [ev.Bound("hit@1", 0.9), ev.Bound("mean_sentences", 2.1, "max"),
                                  ev.Bound("latency_p95_ms", 500.0, "max")]  # fmt: skip


def test_bundled_gate_file_is_valid():
    bounds = ev.load_gate(GATE)
    assert {b.metric for b in bounds} >= {"answer_accuracy", "hit@1", "mrr@10", "unanswerable_accuracy",
                                          "lead_accuracy", "answer_precision", "mean_sentences"}  # fmt: skip
    assert all(0 < b.value <= 1 for b in bounds if b.kind == "min")
    assert [b for b in bounds if b.kind == "max"] == [b for b in bounds if b.metric == "mean_sentences"]


# --- baseline and reports ---------------------------------------------------------------------


def test_report_round_trip_and_baseline_compare(scripted, tmp_path):
    run = ev.run_eval(scripted, GOLD_ROWS, bounds=[ev.parse_bound("answer_accuracy=0.5")])
    assert [f.bound.metric for f in run.failures] == ["answer_accuracy"]
    paths = write_report(tmp_path / "out", run, meta={"gold": "gold.jsonl"})
    assert json.loads(paths["summary"].read_text()) == pytest.approx(run.summary)
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 3  # by section, by category, confidence
    assert "Gate: FAILED: answer_accuracy = 0.4286 is below the gate (&gt;= 0.5)" in html
    md = paths["markdown"].read_text()
    assert "![Accuracy by section](figures/accuracy_by_section.png)" in md
    assert (tmp_path / "out" / "figures" / "confidence.png").read_bytes()[:4] == b"\x89PNG"
    assert "| q7   | formal" in md  # the failing questions table

    assert "faq:shipping-1|faq:returns-1|pay:payment-1" in paths["results"].read_text()
    baseline = ev.load_results(tmp_path / "out")  # a folder finds its results.csv
    for col in ev.LIST_COLUMNS:  # list cells survive the CSV round trip
        assert baseline[col].tolist() == run.results[col].tolist(), col
    same = ev.compare(run.results, baseline)
    assert same.regressions.empty and same.fixes.empty and not same.added and not same.removed
    assert same.baseline_summary == pytest.approx(run.summary)

    edited = baseline.copy()
    edited.loc[edited["id"] == "q6", "correct"] = True  # q6 is wrong now: a regression
    edited.loc[edited["id"] == "q2", "correct"] = False  # q2 is right now: a fix
    edited = pd.concat([edited[edited["id"] != "q7"], edited[edited["id"] == "q1"].assign(id="q0")])
    c = ev.compare(run.results, edited)
    assert list(c.regressions["id"]) == ["q6"] and list(c.fixes["id"]) == ["q2"]
    assert c.added == ["q7"] and c.removed == ["q0"]
    assert c.regressions.loc[0, "before"] == ANSWERS["q6"].answer


def test_extra_sections_are_rendered(scripted, tmp_path):
    fig = new_figure(3, 2)
    fig.add_subplot().plot([0, 1], [0, 1])
    extra = ReportSection(
        "Refusal curve",
        "AUROC 0.91",
        figures=(ReportFigure("refusal_curve", "Refusal curve", figure_png(fig)),),
        tables=(ReportTable("Per retriever", pd.DataFrame({"retriever": ["bm25"], "hit@1": [0.5]})),),
    )
    paths = write_report(tmp_path, ev.run_eval(scripted, GOLD_ROWS), extra_sections=[extra])
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 4
    assert html.index("Refusal curve") < html.index("<h2>Failing questions")
    assert "<td>bm25</td>" in html and "AUROC 0.91" in html
    assert (tmp_path / "figures" / "refusal_curve.png").is_file()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,question\nq1,hi\n", r"results CSV lacks column\(s\) correct"),
        ("id,correct\nq1,True\nq2,maybe\n", r"results\.csv:3: 'correct' must be True or False, got 'maybe'"),
        ("id,correct\nq1,True\nq1,False\n", r"duplicate id 'q1'"),
    ],
)
def test_load_results_errors(tmp_path, content, message):
    (tmp_path / "results.csv").write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        ev.load_results(tmp_path)


def test_load_results_missing(tmp_path):
    with pytest.raises(ConfigError, match=r"--baseline .*nope\.csv: results file not found"):
        ev.load_results(tmp_path / "nope.csv")


# --- the real pipeline on the tiny corpus, and the CLI (fake encoder) ---------------------------

TINY_GOLD = [
    {"id": "t-ship", "question": "How fast do orders ship?", "relevant_ids": ["tiny:shipping-1"], "must_include": ["2 working days"], "category": "formal"},
    {"id": "t-ret", "question": "Can I return items for a refund?", "relevant_ids": ["tiny"], "must_include": ["30 days"], "category": "formal"},
    {"id": "t-cash", "question": "do you accept cash", "must_include": ["do not accept cash"], "category": "informal"},
    {"id": "t-mars", "question": "What is the weather on Mars?", "answerable": False, "category": "off-topic"},
    # Mislabelled on purpose: the FAQ answers it, so answering it scores wrong.
    {"id": "t-wrong", "question": "Where can I email you?", "answerable": False, "category": "off-topic"},
]  # fmt: skip


@pytest.fixture
def tiny_gold(tmp_path) -> Path:
    path = tmp_path / "tiny-gold.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in TINY_GOLD), encoding="utf-8")
    return path


def test_tiny_corpus_end_to_end(tiny_corpus, tiny_gold, fake_encoder, tmp_path):
    from assistant.core.answer import AnswerConfig
    from assistant.core.pipeline import Assistant
    from assistant.core.refusal import RefusalModel

    # The bag-of-words fake encoder's cosines run lower than MiniLM's: a threshold for its scale.
    assistant, _ = Assistant.open([tiny_corpus], tmp_path / "idx", encoder=fake_encoder, answer=AnswerConfig(part_min_dense=0.3), default_refusal=RefusalModel.default(0.3))
    run = ev.run_eval(assistant, load_gold(tiny_gold))
    df = run.results.set_index("id")
    assert df.loc["t-ship", "correct"] and df.loc["t-ship", "hit@1"] == 1.0
    assert df.loc["t-ret", "section"] == "Shipping"  # a document id: the section of its first passage
    assert df.loc["t-cash", "section"] == "Payment" and df.loc["t-cash", "hit@1"] == 1.0
    assert df.loc["t-mars", "correct"] and not df.loc["t-mars", "answered"]
    assert not df.loc["t-wrong", "correct"] and df.loc["t-wrong", "failure"] == "answered an unanswerable question"
    assert run.summary["n"] == 5 and run.summary["unanswerable_accuracy"] == 0.5
    assert (run.results["latency_ms"] > 0).all()


def test_too_long_gold_question_is_a_gold_error(tiny_corpus, fake_encoder, tmp_path):
    from assistant.core.pipeline import Assistant

    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"id": "long", "question": "why " * 3000, "must_include": ["x"]}) + "\n")
    assistant, _ = Assistant.open([tiny_corpus], tmp_path / "idx", encoder=fake_encoder)
    with pytest.raises(GoldError, match=r"g\.jsonl:1: question 'long' cannot be asked: question is too long"):
        ev.evaluate(assistant, load_gold(path))


def cli(tiny_corpus, tmp_path, *args):
    return main(["eval", "--corpus", str(tiny_corpus), "--index-dir", str(tmp_path / "idx"), "-q", *args])


def test_cli_writes_reports_and_prints_failures(tiny_corpus, tiny_gold, tmp_path, fake_model, capsys):
    out, js = tmp_path / "out", tmp_path / "summary.json"
    assert cli(tiny_corpus, tmp_path, "--gold", str(tiny_gold), "--out", str(out), "--json", str(js)) == 0
    stdout = capsys.readouterr().out
    assert "answer_accuracy" in stdout and "mrr@10" in stdout
    assert "failing questions (1 of 5)" in stdout
    assert "t-wrong" in stdout and "refuse and point to human support" in stdout and "t-mars" not in stdout.split("failing")[1]
    summary = json.loads(js.read_text())
    assert set(summary) == set(ev.METRICS) | {"n", "n_answerable", "n_unanswerable"} and summary["n"] == 5
    assert json.loads((out / "summary.json").read_text()) == summary
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert len(pd.read_csv(out / "results.csv")) == 5
    assert len(fake_model) == 1


def test_cli_fail_under_exits_1(tiny_corpus, tiny_gold, tmp_path, fake_model, capsys):
    rc = cli(tiny_corpus, tmp_path, "--gold", str(tiny_gold), "--fail-under", "answer_accuracy=1.01",
             "--fail-under", "hit@1=0.5")  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "GATE FAILED" in err and re.search(r"answer_accuracy = [01]\.\d{4} is below the gate \(>= 1\.01\)", err)
    assert "hit@1" not in err


def test_cli_fail_over(tiny_corpus, tiny_gold, tmp_path, fake_model, capsys):
    assert cli(tiny_corpus, tmp_path, "--gold", str(tiny_gold), "--fail-over", "latency_p95_ms=0.0001") == 1
    assert "latency_p95_ms = " in capsys.readouterr().err


def test_cli_baseline_regression(tiny_corpus, tiny_gold, tmp_path, fake_model, capsys):
    assert cli(tiny_corpus, tmp_path, "--gold", str(tiny_gold), "--out", str(tmp_path / "base")) == 0
    results = pd.read_csv(tmp_path / "base" / "results.csv")
    results.loc[results["id"] == "t-wrong", "correct"] = True  # pretend it used to be right
    results.to_csv(tmp_path / "base.csv", index=False)
    capsys.readouterr()
    assert cli(tiny_corpus, tmp_path, "--gold", str(tiny_gold), "--baseline", str(tmp_path / "base.csv")) == 1
    captured = capsys.readouterr()
    assert "1 right -> wrong, 0 wrong -> right" in captured.out and "t-wrong" in captured.out
    assert "REGRESSED: 1 question(s)" in captured.err
    args = ("--gold", str(tiny_gold), "--baseline", str(tmp_path / "base.csv"), "--allow-regressions")
    assert cli(tiny_corpus, tmp_path, *args) == 0
    assert "allowed by --allow-regressions" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("gold_text", "message"),
    [
        ('{"id": "a", "question": "Hi?", "must_include": ["x"]}\n{"id": "b", "question": \n', r"gold\.jsonl:2: invalid JSON"),
        ('{"id": "a", "must_include": ["x"]}\n', r"gold\.jsonl:1: missing required field 'question'"),
    ],
)
def test_cli_bad_gold_file_is_one_line_exit_2(tiny_corpus, tmp_path, fake_model, capsys, gold_text, message):
    path = tmp_path / "gold.jsonl"
    path.write_text(gold_text, encoding="utf-8")
    assert cli(tiny_corpus, tmp_path, "--gold", str(path)) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}")
    assert re.search(message, lines[0])
    assert captured.out == "" and fake_model == []  # rejected before any model is loaded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--fail-under", "accuracy=1"), r"unknown metric 'accuracy'"),
        (("--fail-under", "over_refusal_rate=0.1"), r"lower-is-better"),
        (("--max-failures", "-1"), r"--max-failures must be >= 0, got -1"),
        (("--baseline", "missing.csv"), r"--baseline missing\.csv: results file not found"),
        (("--gate", "missing-gate.json"), r"missing-gate\.json: gate file not found"),
    ],
)
def test_cli_bad_options_exit_2(tiny_corpus, tiny_gold, tmp_path, fake_model, capsys, args, message):
    assert cli(tiny_corpus, tmp_path, "--gold", str(tiny_gold), *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err)


def test_cli_other_corpus_needs_gold(tiny_corpus, tmp_path, fake_model, capsys):
    assert cli(tiny_corpus, tmp_path) == 2
    assert "--gold is required with a corpus other than the bundled one" in capsys.readouterr().err


def test_default_eval_never_scores_the_held_out_set_with_a_calibration_fitted_on_it(fake_model, monkeypatch, tmp_path, capsys):
    """`assistant eval` with no --gold scores evals/test.jsonl; a calibration fitted on that file
    must not decide its refusals (before, the guard only looked at an explicit --gold)."""
    from assistant.cli import common
    from assistant.cli.evaluate import BUNDLED_GOLD
    from assistant.core.refusal import RefusalModel
    from assistant.evaluation.gold import gold_digest

    opened = common.open_assistant  # the fake_model opener

    def open_calibrated(args):
        assistant, stats, index_dir = opened(args)
        fitted = RefusalModel.default(0.3)
        assistant.refusal = RefusalModel(weights=fitted.weights, bias=fitted.bias - 5,
                                         source=f"calibrated on test.jsonl sha256:{gold_digest(BUNDLED_GOLD)}")  # fmt: skip
        return assistant, stats, index_dir

    monkeypatch.setattr(common, "open_assistant", open_calibrated)
    rc = main(["eval", "--corpus", str(ROOT / "corpus"), "--index-dir", str(tmp_path / "idx"), "--no-gate",
               "--json", str(tmp_path / "s.json")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0
    assert f"the stored calibration was fitted on {BUNDLED_GOLD}; scoring it with the default refusal model" in err
    assert fake_model[0].refusal.source == "default"
    assert json.loads((tmp_path / "s.json").read_text())["n"] == len(load_gold(BUNDLED_GOLD))


# --- the bundled gate: the real model over evals/test.jsonl (the held-out set) -------------------------------------


@pytest.mark.eval
@pytest.mark.slow
def test_bundled_eval_passes_its_gate(seed_assistant, seed_index_dir, monkeypatch, tmp_path, capsys):
    """``assistant eval`` on the bundled corpus and gold set as a user runs it, on the real model and index."""
    from assistant.settings import resolve_corpus_args

    def open_assistant(args):
        assert resolve_corpus_args(args)[0] == [str(ROOT / "corpus")]
        return seed_assistant, None, seed_index_dir

    monkeypatch.setattr("assistant.cli.common.open_assistant", open_assistant)
    rc = main(["eval", "--corpus", str(ROOT / "corpus"), "-q",
               "--json", str(tmp_path / "summary.json"), "--out", str(tmp_path / "out")])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, f"bundled eval failed its gate:\n{captured.err}\n{captured.out}"
    bounds = ev.load_gate(GATE)
    assert f"gate passed ({len(bounds)} bound(s))" in captured.out  # the default gate was applied
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n"] == len(load_gold(GOLD))
    for b in bounds:
        assert (summary[b.metric] >= b.value) if b.kind == "min" else (summary[b.metric] <= b.value), b
    assert "data:image/png;base64," in (tmp_path / "out" / "report.html").read_text()
