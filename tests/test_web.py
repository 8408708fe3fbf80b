"""Unit tests for the pure helpers of assistant/server/web.py (escaping and formatting; no browser,
no server: the Gradio UI itself is driven in test_browser.py)."""

from __future__ import annotations

import os
import time

import pytest

from assistant.schema import Answer, Citation, SupportContact

web = pytest.importorskip("assistant.server.web")  # needs gradio (the [web] extra)

EMAIL = SupportContact("help@shop.example", "email", "s:contact-1")


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain words", "plain words"),
        ("a*b_c", "a\\*b\\_c"),
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert\\(1\\)&gt;"),
        ("[link](http://evil.example)", "\\[link\\]\\(http\\://evil\\.example\\)"),
        ("# heading", "\\# heading"),
        ("1. item", "1\\. item"),
        ("- bullet + plus", "\\- bullet \\+ plus"),
        ("$x$ ~y~ `code` | pipe ! {b}", "\\$x\\$ \\~y\\~ \\`code\\` \\| pipe \\! \\{b\\}"),
        ("back\\slash", "back\\\\slash"),
        ("Tom & Jerry's \"quote\"", "Tom &amp; Jerry's \"quote\""),  # quotes stay: text, not an attribute
        ("a:b", "a\\:b"),  # no autolinks (javascript:...)
    ],
)
def test_md_escape(text, escaped):
    assert web.md_escape(text) == escaped


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("one line", "> one line"),
        ("a\n\n<b>", "> a\n>\n> &lt;b&gt;"),
        ("first\n  \nsecond*", "> first\n>\n> second\\*"),
    ],
)
def test_md_quote(text, quoted):
    assert web.md_quote(text) == quoted


CITATIONS = [
    Citation("s:ret-1", "s", "Returns *policy*", "Return within 30 days.\nKeep the receipt.", 0.8),
    Citation("s:<x>", "s", "Payment", "We accept Visa.", 0.7),
]
ANSWERED = Answer(question="q", answered=True, answer="Return within 30 days. [1]", confidence=0.876,
                  citations=CITATIONS, support_contact=EMAIL)  # fmt: skip
REFUSED = Answer(question="q", answered=False, answer="I couldn't find this.", confidence=0.6, support_contact=EMAIL,
                 refusal_reason="not_covered")  # fmt: skip


def test_answer_messages_of_an_answer_with_sources():
    assert web.answer_messages(ANSWERED) == [
        {"role": "assistant", "content": "Return within 30 days\\. \\[1\\]\n\n*Confidence: 88%*"},
        {"role": "assistant", "content": "> Return within 30 days\\.\n> Keep the receipt\\.",
         "metadata": {"title": "Source \\[1\\]: Returns \\*policy\\*", "status": "done"}},
        {"role": "assistant", "content": "> We accept Visa\\.",
         "metadata": {"title": "Source \\[2\\]: Payment", "status": "done"}},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("contact", "answer_text", "body"),
    [
        (EMAIL, "I couldn't find this.", "I couldn't find this\\.\n\n**Contact our support team:** help@shop\\.example"),
        (EMAIL, "Write to help@shop.example.", "Write to help@shop\\.example\\."),  # already in the answer
        (SupportContact("the store's customer support team", "none"), "Sorry.", "Sorry\\."),
        (None, "Sorry.", "Sorry\\."),
    ],
)
def test_answer_messages_of_a_refusal(contact, answer_text, body):
    refused = Answer(question="q", answered=False, answer=answer_text, confidence=0.6, support_contact=contact)
    assert web.answer_messages(refused) == [{"role": "assistant", "content": body}]


def test_sources_markdown():
    assert web.sources_markdown(ANSWERED) == (
        "**\\[1\\] Returns \\*policy\\*** ` s:ret-1 `\n\n> Return within 30 days\\.\n> Keep the receipt\\.\n\n"
        "**\\[2\\] Payment** ` s:<x> `\n\n> We accept Visa\\."
    )
    assert web.sources_markdown(REFUSED) == "*No policy passage covers this message.*"


@pytest.mark.parametrize(
    ("answer", "text"),
    [
        (ANSWERED, "**Covered by the policies** · confidence 88%"),
        (REFUSED, "**Not covered by the policies: escalate** (help@shop\\.example) · confidence 60%"),
        (Answer(question="q", answered=False, answer="x", confidence=0.5, support_contact=SupportContact("team", "none")),
         "**Not covered by the policies: escalate** · confidence 50%"),
        (Answer(question="q", answered=False, answer="x", confidence=0.5), "**Not covered by the policies: escalate** · confidence 50%"),
    ],
)  # fmt: skip
def test_draft_status_markdown(answer, text):
    assert web.draft_status_markdown(answer) == text


@pytest.mark.parametrize(
    ("length", "shown"),
    [(10, "x" * 10), (500, "x" * 500), (501, "x" * 500 + " … (501 characters)"), (12345, "x" * 500 + " … (12,345 characters)")],
)
def test_short_question_display(length, shown):
    assert web._short("x" * length) == shown


@pytest.mark.parametrize(
    ("text", "limit", "clipped"),
    [("short", 240, "short"), ("abcdef", 6, "abcdef"), ("abcdefg", 6, "abcde…"), ("abc   defg", 7, "abc…")],
)
def test_clip(text, limit, clipped):
    assert web._clip(text, limit) == clipped


def test_write_export_writes_the_csv_and_removes_old_exports(tmp_path, monkeypatch):
    monkeypatch.setattr(web.gr.utils, "get_upload_folder", lambda: str(tmp_path))

    class Store:
        def export_csv(self, f):
            f.write("id,question\n1,q\n")
            return 1

    old = tmp_path / "exports" / "old"
    old.mkdir(parents=True)
    stale = time.time() - web.EXPORT_KEEP_S - 10
    os.utime(old, (stale, stale))
    out = web._write_export(Store())
    assert out.name == "feedback.csv" and out.parent.parent == tmp_path / "exports"
    assert out.read_text(encoding="utf-8") == "id,question\n1,q\n"
    assert not old.exists()
    second = web._write_export(Store())
    assert second.parent != out.parent and out.exists()  # a recent export is kept
