"""Unit tests for assistant/core/draft.py: the agent's reply draft around an Answer."""

from __future__ import annotations

import pytest

from assistant.core.draft import compose_draft, next_steps
from assistant.schema import Answer, AnswerSentence, Citation, Draft, SupportContact

CONTACT = SupportContact("help@shop.example", "email", "s:contact-1")
RETURNS = Citation(
    "s:returns-1", "s", "Returns",
    "You can return items within 30 days. Please email help@shop.example with your order number. "
    "Items must be unworn. You must keep the receipt.",
    0.8,
)  # fmt: skip
SHIPPING = Citation("s:shipping-1", "s", "Shipping", "All orders ship within\n2 working days. Contact us for express.", 0.7)


def answered(*citations: Citation, quoted: tuple[str, ...] = ("You can return items within 30 days.",)) -> Answer:
    return Answer(
        question="Can I return my ring?", answered=True, answer=" ".join(f"{q} [1]" for q in quoted), confidence=0.9,
        citations=list(citations), sentences=[AnswerSentence(q, citations[0].id, 1) for q in quoted],
        support_contact=CONTACT,
    )  # fmt: skip


REFUSED = Answer(
    question="Do you sell cars?", answered=False, answer="I couldn't find this.", confidence=0.8,
    support_contact=CONTACT, refusal_reason="not_covered",
)  # fmt: skip


def test_next_steps_are_unquoted_sentences_that_ask_something_of_the_customer():
    assert next_steps(answered(RETURNS)) == [
        "Please email help@shop.example with your order number.",
        "You must keep the receipt.",
    ]


def test_next_steps_skip_quoted_sentences_and_keep_at_most_two():
    quoted = ("You can return items within 30 days.", "Please email help@shop.example with your order number.")
    assert next_steps(answered(RETURNS, SHIPPING, quoted=quoted)) == ["You must keep the receipt.", "Contact us for express."]
    assert len(next_steps(answered(RETURNS, SHIPPING))) == 2


def test_next_steps_are_not_repeated_across_citations():
    assert next_steps(answered(RETURNS, RETURNS)) == next_steps(answered(RETURNS))


def test_no_next_steps_without_citations():
    assert next_steps(REFUSED) == []


def test_draft_of_an_answer():
    answer = answered(RETURNS)
    draft = compose_draft(answer, customer_name="Ann", agent_name="Bob")
    assert draft == Draft(
        answer=answer,
        text="\n".join([
            "Hi Ann,", "", "Thank you for reaching out.", "You can return items within 30 days. [1]", "",
            "Next step: Please email help@shop.example with your order number. You must keep the receipt.", "",
            "Let me know if there is anything else I can help with.", "", "Best regards,\nBob", "", "Sources:",
            "[1] Returns: " + " ".join(RETURNS.text.split()),
        ]),
        escalate=False,
        next_steps=["Please email help@shop.example with your order number.", "You must keep the receipt."],
    )  # fmt: skip


def test_draft_of_a_refusal_escalates_with_the_contact():
    lines = [
        "Hello,", "", "Thank you for reaching out.",
        ("I couldn't find this covered in our store policies, so I don't want to give you a wrong answer. "
         "I'm passing your question to a colleague who can help."), "",
        "[Agent note: not covered by the policies - escalate. Please contact the store's support team at help@shop.example.]",
        "", "Best regards,", "Customer Support",
    ]  # fmt: skip
    assert compose_draft(REFUSED) == Draft(answer=REFUSED, text="\n".join(lines), escalate=True, next_steps=[])


def test_draft_of_a_refusal_without_a_contact_has_a_bare_note():
    answer = Answer(question="q", answered=False, answer="no", confidence=0.5, refusal_reason="not_covered")
    assert "[Agent note: not covered by the policies - escalate.]" in compose_draft(answer).text.split("\n")


def test_sources_fold_whitespace():
    text = compose_draft(answered(SHIPPING, quoted=("All orders ship within\n2 working days.",))).text
    assert "[1] Shipping: All orders ship within 2 working days. Contact us for express." in text.split("\n")
    assert "All orders ship within 2 working days. [1]" in text.split("\n")


@pytest.mark.parametrize(
    ("name", "greeting"),
    [
        (None, "Hello,"),
        ("", "Hello,"),
        ("   ", "Hello,"),
        ("Ann\x00 Lee", "Hi Ann Lee,"),  # control characters dropped
        ("Ann\u200b\u202eLee", "Hi AnnLee,"),  # format characters (zero-width, bidi override) dropped
        ("\ud800Ann", "Hi Ann,"),  # a lone surrogate could not even be encoded as UTF-8
        ("Ann\n\tLee", "Hi Ann Lee,"),  # whitespace folded
        ("x" * 100, "Hi " + "x" * 60 + ","),  # at most 60 characters
        ("\x00\x01", "Hello,"),  # nothing left
    ],
)
def test_customer_name_is_cleaned(name, greeting):
    draft = compose_draft(REFUSED, customer_name=name)
    assert draft.text.split("\n")[0] == greeting
    draft.text.encode("utf-8")


@pytest.mark.parametrize(
    ("name", "sign_off"),
    [(None, "Customer Support"), ("Bob\x07", "Bob"), ("  Bob   Smith ", "Bob Smith"), ("\u200b", "Customer Support")],
)
def test_agent_name_is_cleaned(name, sign_off):
    lines = compose_draft(REFUSED, agent_name=name).text.split("\n")
    assert lines[-2:] == ["Best regards,", sign_off]


def test_draft_to_dict_extends_the_answer_object():
    draft = compose_draft(answered(RETURNS), customer_name="Ann")
    d = draft.to_dict()
    assert {k: v for k, v in d.items() if k not in ("draft", "escalate", "next_steps")} == draft.answer.to_dict()
    assert (d["draft"], d["escalate"], d["next_steps"]) == (draft.text, False, draft.next_steps)
