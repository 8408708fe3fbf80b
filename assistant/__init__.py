"""An offline, cited customer-support assistant over a store's own FAQ.

    from assistant import Assistant

    bot, _ = Assistant.open(["corpus/"], ".index/my-faq", verifier="mpnet")
    answer = bot.ask("Do you take PayPal?")
    print(answer.answer, answer.citations[0].id if answer.answered else answer.support_contact.text)

``Assistant`` is imported on first use, so ``import assistant`` (and the CLI's ``--help``) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assistant.errors import (
    AssistantError,
    ConfigError,
    CorpusError,
    GoldError,
    QuestionError,
)
from assistant.schema import (
    Answer,
    AnswerSentence,
    Citation,
    Draft,
    Hit,
    Passage,
    SupportContact,
)

if TYPE_CHECKING:
    from assistant.core.pipeline import Assistant

__all__ = [
    "Answer", "AnswerSentence", "Assistant", "AssistantError", "Citation", "ConfigError", "CorpusError", "Draft",
    "GoldError", "Hit", "Passage", "QuestionError", "SupportContact",
]  # fmt: skip


def __getattr__(name: str):
    if name == "Assistant":
        # Deferred: the pipeline imports numpy and the model code; `import assistant` stays cheap.
        from assistant.core.pipeline import Assistant

        return Assistant
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")
