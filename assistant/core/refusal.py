"""The answer-or-refuse decision: a logistic model over retrieval evidence, calibratable on a gold set.

Features of a question (all from retrieval, no labels needed):
- ``dense``: best passage cosine (max over a passage's question/full-text/sentence vectors);
- ``margin``: how far the best passage is ahead of the runner-up (dense);
- ``coverage``: share of the question's content words that the corpus uses at all;
- ``coverage_top``: share of them that the best passage uses;
- ``faq``: 1 when the best passage is an FAQ row with its own question (JSONL/CSV), else 0.

The default model, used for a corpus with no gold set, is a threshold that depends on what
the question matched: a question is much closer to another phrasing of a question (an FAQ
row's title) than to a policy statement, so FAQ rows need a higher cosine than plain-text
passages. With the verifier (the shipped default) the features are its cosines and the
model answers when ``dense + 0.5 * margin`` reaches 0.65 (FAQ rows) or 0.53 (plain text);
without it, when MiniLM's ``dense`` reaches 0.58 or 0.41. See docs/retrieval.md for the runs
behind all four.
``assistant calibrate --gold FILE`` fits all the weights with logistic regression and
stores the model with the index.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant.core.lexical import LexicalIndex
from assistant.errors import ConfigError
from assistant.index.layout import CALIBRATION_FILE, IndexLayout  # noqa: F401 - CALIBRATION_FILE kept importable here
from assistant.schema import Hit

FEATURES = ("dense", "margin", "coverage", "coverage_top", "faq")
DEFAULT_THRESHOLD = 0.41  # plain-text passages (question vs statement)
DEFAULT_FAQ_THRESHOLD = 0.58  # FAQ rows (question vs question)
# With the verifier (assistant/models/verifier.py), ``dense`` and ``margin`` are its cosines, on its own scale.
# Answer when dense + 0.5 * margin reaches 0.53 (plain text) or 0.65 (FAQ rows, chosen on
# StackFAQ's even threads with every question left out in turn: 7% of answerable questions
# refused there). The plain-text threshold was 0.48 (chosen on seed dev); 0.53 is the shift of it
# alone chosen leave-one-corpus-out over the four tuning corpora for the worst corpus
# (scripts/corpus_suite.py --tune, docs/retrieval.md section 7, third pass).
VERIFIER_THRESHOLD = 0.53
VERIFIER_FAQ_THRESHOLD = 0.65
VERIFIER_MARGIN_WEIGHT = 0.5
DEFAULT_TEMPERATURE = 0.05


@dataclass(frozen=True)
class RefusalModel:
    """p(answerable) = sigmoid(bias + sum(weights[f] * features[f])); answer when p >= 0.5."""

    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0
    source: str = "default"
    metrics: dict[str, float] = field(default_factory=dict)  # cross-validated figures from calibrate
    verifier: str = "none"  # the verifier whose cosines the features were read from ("none": the retriever's)
    # Its encoder's fingerprint (model and how many tokens it reads), when a calibration recorded it:
    # cosines from a differently built verifier index are not the ones the weights were fitted on.
    verifier_fingerprint: str = ""

    @classmethod
    def default(
        cls,
        threshold: float = DEFAULT_THRESHOLD,
        temperature: float = DEFAULT_TEMPERATURE,
        faq_threshold: float = DEFAULT_FAQ_THRESHOLD,
        *,
        margin_weight: float = 0.0,
        verifier: str = "none",
    ) -> "RefusalModel":
        """Answer when ``dense + margin_weight * margin`` reaches the threshold for what matched."""
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        weights = {"dense": 1.0 / temperature, "faq": -(faq_threshold - threshold) / temperature}
        if margin_weight:
            weights["margin"] = margin_weight / temperature
        return cls(weights=weights, bias=-threshold / temperature, source="default", verifier=verifier)

    @classmethod
    def default_for(cls, verifier: str = "none", threshold: float | None = None) -> "RefusalModel":
        """The default model for features read with ``verifier`` ("none": the retriever's cosines)."""
        if verifier == "none":
            return cls.default(DEFAULT_THRESHOLD if threshold is None else threshold)
        return cls.default(
            VERIFIER_THRESHOLD if threshold is None else threshold, faq_threshold=VERIFIER_FAQ_THRESHOLD,
            margin_weight=VERIFIER_MARGIN_WEIGHT, verifier=verifier,
        )  # fmt: skip

    def logit(self, features: dict[str, float]) -> float:
        return self.bias + sum(w * float(features.get(f, 0.0)) for f, w in self.weights.items())

    def probability(self, features: dict[str, float]) -> float:
        z = max(-50.0, min(50.0, self.logit(features)))
        return 1.0 / (1.0 + math.exp(-z))

    def save(self, index_dir: Path) -> Path:
        path = IndexLayout(index_dir).calibration
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, index_dir: Path) -> "RefusalModel | None":
        path = IndexLayout(index_dir).calibration
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            weights = data.get("weights", {})
            if not isinstance(weights, dict):
                raise ValueError("'weights' must be an object of feature -> number")
            unknown = set(weights) - set(FEATURES)
            if unknown:
                raise ValueError(f"unknown features {sorted(unknown)}")
            numbers = [*weights.values(), data.get("bias", 0.0)]
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
                raise ValueError("weights and bias must be numbers")
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: unreadable calibration ({exc}); delete it or run `assistant calibrate` again") from None


def features(query: str, hits: list[Hit], lexical: LexicalIndex, passage_index: Mapping[str, int]) -> dict[str, float]:
    """The refusal model's FEATURES for a (corrected) query and its ranked hits.

    ``dense`` and ``margin`` are the verifier's cosines when the hits carry them, else the
    retriever's. ``passage_index`` maps a passage id to its position in the index.
    """
    if not hits:
        return {f: 0.0 for f in FEATURES}

    def cos(h: Hit) -> float:
        return h.verified if h.verified is not None else h.dense

    best = max(hits, key=cos)
    # The runner-up is the best passage under a *different* title: several answers to one FAQ
    # question (or passages of one section) agreeing is not ambiguity.
    others = [cos(h) for h in hits if h.passage.title != best.passage.title]
    return {
        "dense": cos(best),
        "margin": cos(best) - (max(others) if others else 0.0),
        "coverage": lexical.coverage(query),
        "coverage_top": lexical.coverage(query, passage_index[best.passage.id]),
        "faq": 1.0 if best.passage.kind == "faq" else 0.0,
    }
