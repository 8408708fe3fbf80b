"""Unit tests for assistant/errors.py: every error a user can cause is an AssistantError (the CLI and
the server translate exactly those into one line / a friendly message)."""

from __future__ import annotations

import pytest

from assistant import errors


@pytest.mark.parametrize(
    "cls",
    [errors.CorpusError, errors.IndexError_, errors.ModelError, errors.GoldError, errors.QuestionError,
     errors.ConfigError, errors.FeedbackError, errors.UnavailableError],
)  # fmt: skip
def test_every_error_is_an_assistant_error(cls):
    assert issubclass(cls, errors.AssistantError) and issubclass(cls, Exception)
    assert not issubclass(cls, (LookupError, ValueError, OSError))  # never caught by accident as a builtin


def test_unavailable_error_carries_reason_and_retry():
    exc = errors.UnavailableError("busy", reason="refreshing")
    assert (str(exc), exc.reason, exc.retry_after_s) == ("busy", "refreshing", 5)
    exc = errors.UnavailableError("broken", reason="corpus_error", retry_after_s=30)
    assert (exc.reason, exc.retry_after_s) == ("corpus_error", 30)
    with pytest.raises(TypeError):
        errors.UnavailableError("no reason")  # reason is required
