"""Turn an answer into a reply draft for a support agent: greeting, cited answer, next steps, sources."""

from __future__ import annotations

import re
import unicodedata

from assistant.core.contact import refusal_message
from assistant.core.sentences import split_sentences
from assistant.schema import Answer, Draft

# Sentences in which the policy asks something of the customer.
NEXT_STEP_RE = re.compile(
    r"\b(?:please (?:email|contact|send|check|make sure|keep)|you must|you can contact|contact us|email to|must keep)\b",
    re.I,
)


def _clean_name(name: str | None) -> str | None:
    if not name:
        return None
    # Control, format and lone surrogate characters (category C) have no place in a greeting; a
    # lone surrogate would even make the reply impossible to encode as UTF-8.
    name = "".join(ch for ch in str(name) if unicodedata.category(ch)[0] != "C" or ch.isspace())
    name = " ".join(name.split())[:60]
    return name or None


def next_steps(answer: Answer) -> list[str]:
    """Sentences of the cited passages that ask the customer to do something, not already quoted."""
    quoted = {s.text for s in answer.sentences}
    steps: list[str] = []
    for c in answer.citations:
        for sent in split_sentences(c.text):
            if sent not in quoted and NEXT_STEP_RE.search(sent) and sent not in steps:
                steps.append(sent)
    return steps[:2]


def compose_draft(answer: Answer, *, customer_name: str | None = None, agent_name: str | None = None) -> Draft:
    customer = _clean_name(customer_name)
    agent = _clean_name(agent_name)
    greeting = f"Hi {customer}," if customer else "Hello,"
    sign_off = f"Best regards,\n{agent}" if agent else "Best regards,\nCustomer Support"
    lines = [greeting, "", "Thank you for reaching out."]
    steps: list[str] = []
    if answer.answered:
        lines.append(" ".join(f"{' '.join(s.text.split())} [{s.citation}]" for s in answer.sentences))
        steps = next_steps(answer)
        if steps:
            lines += ["", "Next step: " + " ".join(" ".join(s.split()) for s in steps)]
        lines += ["", "Let me know if there is anything else I can help with."]
    else:
        lines.append(
            "I couldn't find this covered in our store policies, so I don't want to give you a wrong answer. "
            "I'm passing your question to a colleague who can help."
        )
        contact = f" {refusal_message(answer.support_contact)}" if answer.support_contact else ""
        lines += ["", f"[Agent note: not covered by the policies - escalate.{contact}]"]
    lines += ["", sign_off]
    if answer.citations:
        lines += ["", "Sources:"]
        lines += [f"[{i}] {c.title}: {' '.join(c.text.split())}" for i, c in enumerate(answer.citations, 1)]
    return Draft(answer=answer, text="\n".join(lines), escalate=not answer.answered, next_steps=steps)
