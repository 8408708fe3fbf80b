"""Unit tests for assistant/schema.py: the public JSON objects (extend them, never rename fields)."""

from __future__ import annotations

import dataclasses

import pytest

from assistant.schema import (
    Answer,
    AnswerSentence,
    Citation,
    Draft,
    Hit,
    Passage,
    SupportContact,
)

PASSAGE = Passage("d:s-1", "d", "Section", "Some text.", "d.txt", 3)
CONTACT = SupportContact("help@shop.example", "email", "d:c-1")


def test_citation_from_hit_rounds_the_score():
    assert Citation.from_hit(Hit(PASSAGE, 0.123456789, dense=0.1)) == Citation("d:s-1", "d", "Section", "Some text.", 0.1235)


def test_hit_defaults():
    assert Hit(PASSAGE, 0.5) == Hit(PASSAGE, 0.5, dense=0.0, lexical=0.0, verified=None, lexical_term=0.0)
    assert PASSAGE.kind == "section"


@pytest.mark.parametrize("cls", [Passage, Hit, Citation, AnswerSentence, SupportContact, Answer, Draft])
def test_dataclasses_are_frozen(cls):
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen


ANSWER = Answer(
    question="q?", answered=True, answer="Some text. [1]", confidence=0.876543, citations=[Citation.from_hit(Hit(PASSAGE, 0.9))],
    sentences=[AnswerSentence("Some text.", "d:s-1", 1)], support_contact=CONTACT, refusal_reason=None,
    retrieved=[Hit(PASSAGE, 0.9)], latency_ms=12.34567, evidence={"dense": 0.812345, "p_answer": 0.9},
)  # fmt: skip


def test_answer_to_dict_is_the_public_json_object():
    assert ANSWER.to_dict() == {
        "question": "q?",
        "answered": True,
        "answer": "Some text. [1]",
        "confidence": 0.8765,
        "citations": [{"id": "d:s-1", "doc_id": "d", "title": "Section", "text": "Some text.", "score": 0.9}],
        "sentences": [{"text": "Some text.", "passage_id": "d:s-1", "citation": 1}],
        "support_contact": {"text": "help@shop.example", "kind": "email", "passage_id": "d:c-1", "email": None,
                            "phone": None, "hours": None, "passage_ids": [], "chat": None, "address": None},
        "refusal_reason": None,
        "latency_ms": 12.35,
        "evidence": {"dense": 0.8123, "p_answer": 0.9},
        "related": [],
        "resolved_question": "q?",  # the question itself: no conversation was needed
        "clarify": [],
    }  # the retrieved hits stay out of the JSON


def test_a_refusal_without_contact_has_null_contact():
    refused = Answer(question="q", answered=False, answer="No.", confidence=0.5, refusal_reason="not_covered")
    d = refused.to_dict()
    assert (d["support_contact"], d["citations"], d["sentences"], d["evidence"]) == (None, [], [], {})


def test_draft_to_dict_adds_the_draft_fields():
    draft = Draft(answer=ANSWER, text="Hi,\n...", escalate=False, next_steps=["Email us."])
    assert draft.to_dict() == ANSWER.to_dict() | {"draft": "Hi,\n...", "escalate": False, "next_steps": ["Email us."]}
    assert draft.to_dict()["next_steps"] is not draft.next_steps  # a copy
