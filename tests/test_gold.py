"""Loading gold sets: JSONL and CSV, and every way a row can be unscorable."""

from __future__ import annotations

import json
import re

import pytest

from assistant.errors import GoldError
from assistant.evaluation.gold import GoldQuestion, load_gold

ROW = {"id": "q1", "question": "Do you ship abroad?", "relevant_ids": ["faq:shipping-1"], "must_include": ["5 to 14"]}


def write_jsonl(tmp_path, rows, name="gold.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_load_jsonl_with_defaults_and_metadata(tmp_path):
    path = write_jsonl(
        tmp_path,
        [
            {**ROW, "reference_answer": "Yes, 5 to 14 working days.", "category": "formal"},
            "",  # blank lines are allowed
            {"id": "q2", "question": "Gift wrap?", "answerable": False, "relevant_ids": [], "must_include": []},
            {"id": "q3", "question": "  Visa ok?  ", "must_include": ["Visa"], "reference_answer": None},
        ],
    )
    got = load_gold(path)
    assert got == [
        GoldQuestion(
            id="q1", question="Do you ship abroad?", answerable=True, relevant_ids=("faq:shipping-1",),
            must_include=("5 to 14",), reference_answer="Yes, 5 to 14 working days.",
            metadata={"category": "formal"}, source=str(path), line=1,
        ),
        GoldQuestion(id="q2", question="Gift wrap?", answerable=False, source=str(path), line=3),
        GoldQuestion(id="q3", question="Visa ok?", must_include=("Visa",), source=str(path), line=4),
    ]  # fmt: skip
    assert got[0].category == "formal" and got[1].category == ""
    assert got[0].where == f"{path}:1"


def test_integer_ids_read_as_text_like_the_corpus_loader(tmp_path):
    path = write_jsonl(tmp_path, [{"id": 7, "question": "Hi?", "relevant_ids": [12, "x"]}])
    assert load_gold(path) == [GoldQuestion(id="7", question="Hi?", relevant_ids=("12", "x"), source=str(path), line=1)]


def test_load_csv_with_pipe_lists(tmp_path):
    path = tmp_path / "gold.csv"
    path.write_text(
        "id,question,answerable,relevant_ids,must_include,reference_answer,category\n"
        'q1,"Do you ship abroad, and how fast?",true,faq:shipping-1|faq:shipping-2,5 to 14| 3 to 10 ,,multi-part\n'
        "q2,Gift wrap?,FALSE,,,Not in the FAQ,nearby-topic\n"
        'q3,"Multi\nline question",,faq,,,\n'
        "q4,Visa?,yes,,Visa|,,\n",
        encoding="utf-8",
    )
    got = load_gold(path)
    assert [(q.id, q.line) for q in got] == [("q1", 2), ("q2", 3), ("q3", 4), ("q4", 6)]
    assert got[0].relevant_ids == ("faq:shipping-1", "faq:shipping-2")
    assert got[0].must_include == ("5 to 14", "3 to 10")
    assert got[0].reference_answer is None and got[0].metadata == {"category": "multi-part"}
    assert got[1].answerable is False and got[1].reference_answer == "Not in the FAQ"
    assert got[2].question == "Multi\nline question" and got[2].answerable is True and got[2].metadata == {}
    assert got[3].must_include == ("Visa",)


def test_support_sentences_are_read_as_a_list(tmp_path):
    path = write_jsonl(tmp_path, [{**ROW, "support": ["Tracking numbers are emailed.", " We ship daily. "]}])
    assert load_gold(path)[0].support == ("Tracking numbers are emailed.", "We ship daily.")
    csv_path = tmp_path / "g.csv"
    csv_path.write_text("id,question,must_include,support\nc1,Cards?,Visa,We also accept PayPal.|No cash.\n", encoding="utf-8")
    assert load_gold(csv_path)[0].support == ("We also accept PayPal.", "No cash.")
    assert load_gold(csv_path)[0].metadata == {}


def test_csv_needs_only_id_and_question_columns(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("question,id,must_include\nWhat cards?,c1,Visa\n", encoding="utf-8")
    assert load_gold(path) == [GoldQuestion(id="c1", question="What cards?", must_include=("Visa",), source=str(path), line=2)]


def test_bundled_gold_sets_load(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "evals"
    test = load_gold(root / "test.jsonl")  # held out: scored by `assistant eval`, never tuned on
    tuning = load_gold(root / "gold.jsonl") + load_gold(root / "dev.jsonl")
    assert len(test) >= 120 and sum(not q.answerable for q in test) >= len(test) / 4
    assert {"typo", "multi-part", "paraphrase", "near-topic"} <= {q.category for q in test}
    assert any(q.support for q in test)
    # The held-out set stays held out: no question of it is a tuning question.
    assert not {q.question.casefold() for q in test} & {q.question.casefold() for q in tuning}


def test_extra_fields_of_any_json_type_are_kept_as_metadata(tmp_path):
    # The README promises extra fields are kept as metadata; a number was rejected (exit 2).
    extra = {"source_pairs": 1, "weight": 0.5, "reviewed": True, "tags": ["a", "b"], "origin": {"batch": 3}}
    path = write_jsonl(tmp_path, [{**ROW, **extra, "category": 3, "note": None}])
    (q,) = load_gold(path)
    assert q.metadata == {**extra, "category": 3}  # null means absent, as for the known fields
    assert q.category == "3"  # the report groups by it as text


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([ROW, "{not json"], r":2: invalid JSON \(Expecting property name"),
        ([ROW, "[1, 2]"], r":2: expected a JSON object, got a list"),
        ([{"question": "Hi?", "must_include": ["x"]}], r":1: missing required field 'id'"),
        ([{"id": "q1", "must_include": ["x"]}], r":1: missing required field 'question'"),
        ([{"id": "q1", "question": "   ", "must_include": ["x"]}], r":1: field 'question' is empty"),
        ([{"id": 7.5, "question": "Hi?", "must_include": ["x"]}], r":1: field 'id' must be a string, got a number"),
        ([{"id": True, "question": "Hi?", "must_include": ["x"]}], r":1: field 'id' must be a string, got a boolean"),
        ([{**ROW, "relevant_ids": ["a", 2.0]}], r":1: field 'relevant_ids' item 1 must be a string, got a number"),
        ([{**ROW, "answerable": "yes"}], r":1: field 'answerable' must be true or false, got a string 'yes'"),
        ([{**ROW, "relevant_ids": "faq:shipping-1"}], r":1: field 'relevant_ids' must be a list of strings, got a string"),
        ([{**ROW, "must_include": ["ok", 3]}], r":1: field 'must_include' item 1 must be a string, got a number"),
        ([{**ROW, "must_include": ["ok", " "]}], r":1: field 'must_include' item 1 is empty"),
        ([{**ROW, "reference_answer": ["a"]}], r":1: field 'reference_answer' must be a string, got a list"),
        ([ROW, {"id": "q2", "question": "Hi?"}], r":2: answerable row 'q2' has neither 'relevant_ids' nor 'must_include'"),
        (
            [{"id": "q2", "question": "Hi?", "relevant_ids": [], "must_include": []}],
            r":1: answerable row 'q2' has neither",
        ),
        ([{"id": "u", "question": "Hi?", "answerable": False, "relevant_ids": ["x"]}], r":1: row 'u' is unanswerable .* lists 'relevant_ids'"),
        ([{"id": "u", "question": "Hi?", "answerable": False, "must_include": ["x"]}], r":1: row 'u' is unanswerable .* lists 'must_include'"),
        ([{"id": "u", "question": "Hi?", "answerable": False, "support": ["x"]}], r":1: row 'u' is unanswerable .* lists 'support'"),
        ([{**ROW, "support": "We ship."}], r":1: field 'support' must be a list of strings, got a string"),
        ([{**ROW, "support": ["We ship.", 1]}], r":1: field 'support' item 1 must be a string, got a number"),
        ([{**ROW, "support": [""]}], r":1: field 'support' item 0 is empty"),
        ([ROW, "", {**ROW, "question": "Again?"}], r":3: duplicate id 'q1' \(first used on line 1\)"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, lines, message):
    path = write_jsonl(tmp_path, lines)
    with pytest.raises(GoldError, match=re.escape(str(path)) + message):
        load_gold(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,question,must_include\nq1,Hi?,x\nq2,Hello?\n", r":3: fewer cells than header columns"),
        ("id,question,must_include\nq1,Hi?,x,extra\n", r":2: more cells than header columns"),
        ("id,must_include\nq1,x\n", r":1: CSV header lacks column\(s\) 'question'"),
        ("id,question,id\nq1,Hi?,q1\n", r":1: CSV header repeats column\(s\) 'id'"),
        ("id,question,answerable,must_include\nq1,Hi?,maybe,x\n", r":2: field 'answerable' must be true or false, got 'maybe'"),
        ("id,question,relevant_ids\nq1,Hi?,\n", r":2: answerable row 'q1' has neither"),
        ("id,question,must_include\nq1,Hi?,x\nq1,Again?,y\n", r":3: duplicate id 'q1' \(first used on line 2\)"),
        ('id,question,must_include\nq1,"Hi?,x\n', r":2: bad CSV \(unexpected end of data\)"),
        ("id,question,must_include\n,Hi?,x\n", r":2: field 'id' is empty"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "gold.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GoldError, match=re.escape(str(path)) + message):
        load_gold(path)


def test_file_level_errors(tmp_path):
    with pytest.raises(GoldError, match=r"missing\.jsonl: gold file not found"):
        load_gold(tmp_path / "missing.jsonl")
    (tmp_path / "gold.txt").write_text("x", encoding="utf-8")
    with pytest.raises(GoldError, match=r"gold\.txt: unsupported gold file type '\.txt'; use \.jsonl or \.csv"):
        load_gold(tmp_path / "gold.txt")
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(GoldError, match=r"empty\.jsonl: no gold questions in the file"):
        load_gold(tmp_path / "empty.jsonl")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(GoldError, match=r"empty\.csv: no gold questions in the file"):
        load_gold(tmp_path / "empty.csv")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"id": "q", "question": "ok"}\n{"id": "r", "question": "caf\xe9?"}\n')
    with pytest.raises(GoldError, match=r"latin1\.jsonl:2: not UTF-8 text \(invalid continuation byte at byte 58\)"):
        load_gold(tmp_path / "latin1.jsonl")
