"""Unit tests for assistant/cli/main.py: the parser and `main([...])` for index, ask and draft, with the
fake encoder (conftest's ``fake_model``); the real CLI runs end to end in test_end_to_end.py."""

from __future__ import annotations

import io
import json
import re

import pytest

from assistant.cli.main import build_parser, format_answer, main
from assistant.schema import Answer, Citation

ANSWER_KEYS = {"question", "answered", "answer", "confidence", "citations", "sentences", "support_contact",
               "refusal_reason", "latency_ms", "evidence", "related", "resolved_question", "clarify"}  # fmt: skip


@pytest.fixture
def flags(tiny_corpus, tmp_path):
    return ["--corpus", str(tiny_corpus), "--index-dir", str(tmp_path / "idx"), "--quiet"]


def test_parser_commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"index", "ask", "draft", "eval", "serve", "calibrate", "lint", "bench", "learn"}
    args = parser.parse_args(["draft", "--customer", "Ann", "--agent", "Bob", "--json", "hello", "there"])
    assert (args.command, args.customer, args.agent, args.json, args.question) == ("draft", "Ann", "Bob", True, ["hello", "there"])


@pytest.mark.parametrize("argv", [[], ["nope"], ["ask", "--bogus"]])
def test_parser_rejects_bad_command_lines(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and "usage: assistant" in capsys.readouterr().err


def test_index(flags, fake_model, tmp_path, capsys):
    assert main(["index", *flags]) == 0
    out = capsys.readouterr().out.strip()
    assert re.fullmatch(
        r"index built: 5 passages \(10 vectors, 10 embedded\) from 1 file\(s\) in \d+\.\ds -> "
        + re.escape(str(tmp_path / "idx")) + r" \[model fake-bow, 64-d\] \(no index yet\)", out,
    )  # fmt: skip
    assert main(["index", *flags]) == 0
    assert re.match(r"index up to date: 5 passages \(10 vectors, 0 embedded\)", capsys.readouterr().out)
    assert len(fake_model) == 2


def test_ask_text(flags, fake_model, capsys):
    assert main(["ask", *flags, "Do", "you", "accept", "PayPal?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("We accept Visa and PayPal. [1]\n\nconfidence: 0.")
    assert "Sources:\n  [1] Payment (tiny:payment-1)\n      \"We accept Visa and PayPal.\"" in out


def test_ask_json(flags, fake_model, capsys):
    assert main(["ask", *flags, "--json", "Do you accept PayPal?"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert set(obj) == ANSWER_KEYS
    assert (obj["question"], obj["answered"], obj["citations"][0]["id"]) == ("Do you accept PayPal?", True, "tiny:payment-1")
    assert obj["sentences"] == [{"text": "We accept Visa and PayPal.", "passage_id": "tiny:payment-1", "citation": 1}]


def test_ask_reads_one_question_per_stdin_line(flags, fake_model, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("Do you accept PayPal?\n\n\x00\nwhat is the weather in London\n"))
    assert main(["ask", *flags, "--json", "-"]) == 2  # one bad line: its slot holds the error, the rest are answered
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["question"] for r in rows] == ["Do you accept PayPal?", "\x00", "what is the weather in London"]
    assert rows[1] == {"question": "\x00", "error": "the question is empty"}
    assert rows[0]["answered"] is True and rows[2]["answered"] is False and set(rows[2]) == ANSWER_KEYS


def test_ask_text_batch_separates_answers(flags, fake_model, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("Do you accept PayPal?\nCan I return items for a refund?\n"))
    assert main(["ask", *flags, "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Q: Do you accept PayPal?\n") and "\n" + "-" * 60 + "\nQ: Can I return items for a refund?\n" in out


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["ask"], "", "error: no question given (pass it as an argument, or - to read one per line from stdin)"),
        (["ask", "-"], "\n\n", "error: no question given: standard input was empty"),
        (["ask", "   "], "", "error: the question is empty"),
        (["ask", "x" * 2001], "", "error: question is too long (2001 characters; the limit is 2000)"),
        (["draft"], "", "error: no question given (pass it as an argument, or - to read one per line from stdin)"),
        (["draft", "\x00"], "", "error: the question is empty"),
    ],
)
def test_bad_questions_exit_2_before_the_model_loads(flags, fake_model, monkeypatch, capsys, argv, stdin, message):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main([argv[0], *flags, *argv[1:]]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == message and captured.out == ""
    assert fake_model == []


def test_draft_text(flags, fake_model, capsys):
    assert main(["draft", *flags, "--customer", "Ann", "--agent", "Bob", "Do you accept PayPal?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Hi Ann,\n\nThank you for reaching out.\nWe accept Visa and PayPal. [1]\n")
    assert "Best regards,\nBob" in out and out.rstrip().endswith("[1] Payment: We accept Visa and PayPal.")


def test_draft_json(flags, fake_model, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("Do you accept PayPal?\nwhat is the weather in London\n"))
    assert main(["draft", *flags, "--json", "-"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(set(r) == ANSWER_KEYS | {"draft", "escalate", "next_steps"} for r in rows)
    assert [r["escalate"] for r in rows] == [False, True]
    assert rows[1]["draft"].startswith("Hello,") and "escalate" in rows[1]["draft"]


def test_a_missing_corpus_is_one_line_exit_2(tmp_path, fake_model, capsys):
    assert main(["index", "--corpus", str(tmp_path / "missing"), "--index-dir", str(tmp_path / "idx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "missing" in err[0]


def test_format_answer_cuts_long_sources():
    long = "word " * 100
    answer = Answer(question="q", answered=True, answer="A. [1]", confidence=0.456,
                    citations=[Citation("d:s-1", "d", "Section", long, 0.5)])  # fmt: skip
    text = format_answer(answer)
    assert text.splitlines()[:6] == ["A. [1]", "", "confidence: 0.46", "", "Sources:", "  [1] Section (d:s-1)"]
    assert text.splitlines()[6] == '      "' + " ".join(long.split())[:300] + '..."'


def test_format_answer_of_a_refusal():
    answer = Answer(question="q", answered=False, answer="No.", confidence=0.9)
    assert format_answer(answer) == "No.\n\nconfidence: 0.90 (not answered)"
