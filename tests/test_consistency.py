"""Contradicting near-duplicates: found by `assistant index` / `assistant lint` with the real model,
and never quoted side by side in an answer without a note."""

from __future__ import annotations

import json
import re

import pytest

from assistant.cli.main import main as cli_main
from assistant.core.pipeline import Assistant
from assistant.index.consistency import (
    conflict_between,
    disagreement,
    find_conflicts,
    overlap,
)
from assistant.index.store import open_index
from assistant.schema import Passage

from .app_process import index_dir_with_model
from .conftest import SEED_CORPUS

CANADA = [
    ("ship-ca-1", "Do you ship to Canada?", "No, we do not ship to Canada."),
    ("returns", "How long do I have to return an item?", "You can return items within 30 days for a refund."),
    ("payment", "Which payment methods do you accept?", "We accept Visa, MasterCard and PayPal."),
    ("ship-ca-2", "Do you ship to Canada?", "Yes, we ship to Canada."),
    ("gift", "Do you offer gift wrapping?", "Yes, gift wrapping costs 3 euros."),
    ("returns-2", "How many days do I have to return an item?", "You can return items within 14 days for a refund."),
]


def write_faq(folder, rows) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "faq.jsonl").write_text("".join(json.dumps({"id": i, "question": q, "answer": a}) + "\n" for i, q, a in rows))


@pytest.mark.parametrize(
    "a, b, reason",
    [
        ("No, we do not ship to Canada.", "Yes, we ship to Canada.", "one says no, the other yes"),
        ("We ship to Canada.", "We don't ship to Canada.", "one says no, the other yes"),
        ("Returns within 30 days.", "Returns within 14 days.", r"numbers differ \(30 vs 14\)"),
        ("Shipping costs 4.95 euros.", "Shipping costs 4.95 euros.", None),
        ("Yes, and there is no extra fee.", "Yes, we do.", None),  # a leading yes/no is the polarity
        ("We ship worldwide.", "Orders ship within 2 days.", None),  # numbers only on one side
    ],
)
def test_disagreement(a, b, reason):
    got = disagreement(a, b)
    assert (got is None) if reason is None else (got is not None and re.fullmatch(reason, got)), got


def _p(pid: str, text: str, kind: str = "faq", title: str = "Q?") -> Passage:
    return Passage(id=pid, doc_id=pid, title=title, text=text, source="faq.jsonl", line=1, kind=kind)


def test_conflict_between_needs_the_same_statement_not_just_different_numbers():
    assert overlap("Orders ship within 2 working days.", "Returns are accepted within 30 days.") < 0.5
    assert conflict_between(_p("a", "Orders ship within 2 working days."), _p("b", "Returns are accepted within 30 days.")) is None
    c = conflict_between(_p("a", "Returns are accepted within 30 days."), _p("b", "Returns are accepted within 60 days."))
    assert c is not None and c.reason == "numbers differ (30 vs 60)"
    assert conflict_between(_p("a", "x 1"), _p("a", "x 2")) is None  # a passage never contradicts itself


@pytest.mark.slow
def test_the_real_model_finds_the_contradicting_duplicates_and_nothing_in_the_bundled_corpus(tmp_path, onnx_encoder):
    write_faq(tmp_path / "faq", CANADA)
    index, _ = open_index([tmp_path / "faq"], tmp_path / "i", onnx_encoder)
    found = find_conflicts(index)
    assert [(c.first.id, c.second.id, c.reason) for c in found] == [
        ("ship-ca-1", "ship-ca-2", "one says no, the other yes"),
        ("returns", "returns-2", "numbers differ (30 vs 14)"),
    ]
    seed, _ = open_index([SEED_CORPUS.parent], tmp_path / "seed", onnx_encoder)
    assert find_conflicts(seed) == []


@pytest.mark.slow
def test_an_answer_quoting_both_sides_says_they_differ(tmp_path, onnx_encoder, seed_assistant):
    write_faq(tmp_path / "faq", CANADA)
    assistant, _ = Assistant.open([tmp_path / "faq"], tmp_path / "i", encoder=onnx_encoder)
    answer = assistant.ask("Do you ship to Canada?")
    assert answer.answered and {c.id for c in answer.citations} == {"ship-ca-1", "ship-ca-2"}
    assert "No, we do not ship to Canada." in answer.answer and "Yes, we ship to Canada." in answer.answer
    assert "Note: the store's policies state this differently in two places ([1] and [2])." in answer.answer
    one = assistant.ask("Which payment methods do you accept?")
    assert one.answered and "differently" not in one.answer
    cancel = seed_assistant.ask("Can I cancel my order?")  # the shipped corpus: no note
    assert cancel.answered and "differently" not in cancel.answer


@pytest.mark.slow
def test_lint_and_index_report_them_on_the_command_line(tmp_path, model_cache, capsys):
    write_faq(tmp_path / "faq", CANADA)
    idx = index_dir_with_model(tmp_path / "index", model_cache)
    args = ["--corpus", str(tmp_path / "faq"), "--index-dir", str(idx), "-q"]
    assert cli_main(["lint", *args]) == 1
    out = capsys.readouterr().out
    assert out.startswith("2 pair(s) of near-duplicate entries disagree in 6 passages:")
    assert "(ship-ca-1) and " in out and "(ship-ca-2) disagree: one says no, the other yes" in out
    assert '[ship-ca-2] "Yes, we ship to Canada."' in out
    assert cli_main(["lint", "--json", *args]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["first"], r["second"], r["reason"]) for r in rows][1] == ("returns", "returns-2", "numbers differ (30 vs 14)")
    assert cli_main(["index", "--verifier", "none", *args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("index up to date") and out[1].startswith("warning: 2 pair(s) of near-duplicate entries")

    write_faq(tmp_path / "faq", [r for r in CANADA if r[0] not in ("ship-ca-2", "returns-2")])
    assert cli_main(["lint", *args]) == 0
    assert capsys.readouterr().out == "no disagreeing near-duplicates in 4 passages\n"
