"""The exception hierarchy: the library raises these; the CLI and web edges translate them."""


class AssistantError(Exception):
    """Base class for every error a user can cause and fix."""


class CorpusError(AssistantError):
    """The corpus is missing, empty, undecodable or malformed (message names file and line)."""


class IndexError_(AssistantError):
    """The index is missing, corrupt or does not match the corpus/model."""


class ModelError(AssistantError):
    """The embedding model cannot be found or loaded."""


class GoldError(AssistantError):
    """A gold question file is malformed (message names file and line)."""


class QuestionError(AssistantError):
    """The question is empty or otherwise unusable."""


class ConfigError(AssistantError):
    """A bad option value (message names the option and the value)."""


class LinkError(AssistantError):
    """A confirmed-links file is malformed (message names file and line), or a link names no passage."""


class FeedbackError(AssistantError):
    """The feedback database cannot be opened, or a rating names an unknown answer."""


class UnavailableError(AssistantError):
    """The assistant cannot answer right now: its index is being refreshed, or the edited corpus
    cannot be loaded. ``reason`` is ``"refreshing"`` or ``"corpus_error"``; retry after ``retry_after_s``."""

    def __init__(self, message: str, *, reason: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


class RatingRefusedError(FeedbackError):
    """A rating whose token does not match the answer it names (or names no answer: the two
    are told apart by nobody, so ids cannot be probed)."""


class StoreUnavailableError(FeedbackError, UnavailableError):
    """The feedback database failed or cannot be reached while serving: nothing is acknowledged
    that was not logged. ``str()`` is safe to show a customer; ``detail`` (for the server log)
    names the database (password redacted) and the cause."""

    def __init__(self, detail: str, *, retry_after_s: int = 5) -> None:
        UnavailableError.__init__(
            self, "the answer could not be saved just now; please try again shortly",
            reason="feedback_unavailable", retry_after_s=retry_after_s,
        )
        self.detail = detail
