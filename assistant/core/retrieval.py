"""Find the passages for a question: field-aware dense scores, optionally fused with BM25."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from assistant.core.lexical import LexicalIndex
from assistant.core.sentences import sentence_spans
from assistant.errors import ConfigError
from assistant.index.store import Index, learned_offsets
from assistant.models.embeddings import Encoder
from assistant.schema import Hit

MODES = ("hybrid", "dense", "lexical")
LEARNED_OFFSET = 0.15
LEARNED_SECTION_OFFSET = 0.25
RERANK_DENSE_WEIGHT = 0.0
LEARNED_RANK_SHARE = 0.25  # docs/learning.md: chosen on the tuning halves

# Words of a question the encoders read. An encoder's cost grows with the text's length (a
# 2,000-character question cost ~360 ms in MiniLM and ~480 ms in the verifier, against ~5 and
# ~20 ms for a usual one); no question of any tuning set or StackFAQ has more than 35 words, and
# BM25, typo correction and multi-part splitting still read the whole question.
ENCODED_WORDS = 96
_WORD = re.compile(r"\S+")


def encoder_text(text: str, *, max_words: int | None = None) -> str:
    """``text`` cut after its first ``max_words`` (default ENCODED_WORDS) words (unchanged when it
    has no more)."""
    max_words = ENCODED_WORDS if max_words is None else max_words
    if max_words <= 0:
        raise ValueError(f"max_words must be > 0, got {max_words}")
    for n, m in enumerate(_WORD.finditer(text), start=1):
        if n == max_words:
            return text[: m.end()]
    return text


@dataclass(frozen=True)
class RetrievalConfig:
    """How passage scores are made (see docs/retrieval.md for the runs behind the defaults).

    ``dense`` is the best cosine over a passage's units (FAQ question, question + answer,
    title-prefixed sentences). ``lexical`` is BM25 divided by the best BM25 for the query.
    In hybrid mode the final score is ``dense + lexical_weight * lexical``, a score fusion
    that keeps dense cosines as the scale, so refusal thresholds mean the same in every mode.
    """

    mode: str = "hybrid"
    lexical_weight: float = 0.2
    sentence_weight: float = 1.0  # multiplier on sentence-unit cosines before the max
    candidates: int = 50  # units fetched from FAISS on large indexes
    adaptive: bool = True  # scale the lexical weight by the query's lexical evidence strength
    # Subtracted from the cosine of a confirmed question (a learned key): customers' questions are
    # closer to each other than to policy text or FAQ titles, so a learned key must match more
    # closely to count as much: more on plain-text passages, whose refusal threshold is set for
    # questions against statements (docs/learning.md: the values that keep unanswerable refusals).
    learned_offset: float = LEARNED_OFFSET  # learned keys of FAQ rows
    learned_section_offset: float = LEARNED_SECTION_OFFSET  # learned keys of plain-text passages
    # The share of those offsets taken when the verifier *orders* the candidates (the refusal
    # decision always takes all of it): 0 ranks a confirmed question at its full cosine.
    learned_rank_share: float = LEARNED_RANK_SHARE
    # When the verifier re-ranks the candidates, this share of the retriever's own cosine is added
    # to the verifier's: the two models' evidence combined (docs/learning.md).
    rerank_dense_weight: float = RERANK_DENSE_WEIGHT

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"retrieval mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not 0 <= self.lexical_weight <= 10:
            raise ConfigError(f"lexical_weight must be in [0, 10], got {self.lexical_weight}")
        if not 0 <= self.rerank_dense_weight <= 10:
            raise ConfigError(f"rerank_dense_weight must be in [0, 10], got {self.rerank_dense_weight}")
        if not 0 <= self.learned_rank_share <= 1:
            raise ConfigError(f"learned_rank_share must be in [0, 1], got {self.learned_rank_share}")
        for name in ("learned_offset", "learned_section_offset"):
            if not 0 <= getattr(self, name) <= 2:
                raise ConfigError(f"{name} must be in [0, 2], got {getattr(self, name)}")

    @property
    def offsets(self) -> tuple[float, float]:
        """(FAQ rows, plain-text passages): what a learned key's cosine counts less."""
        return self.learned_offset, self.learned_section_offset


class Retriever:
    """Owns the index, the encoder and the BM25 index; ``search`` ranks passages."""

    SENTENCE_CACHE = 4096  # passages whose lazily embedded sentences are kept

    def __init__(self, index: Index, encoder: Encoder, config: RetrievalConfig | None = None) -> None:
        self.index = index
        self.encoder = encoder
        self.config = config or RetrievalConfig()
        self._lexical: LexicalIndex | None = None
        self._sentence_cache: dict[int, tuple[list[tuple[int, int]], np.ndarray]] = {}
        n = len(index.units)
        self._weights = np.ones(n, dtype=np.float32)
        self._weights[index.unit_kind == 2] = self.config.sentence_weight
        self._offsets = learned_offsets(index, *self.config.offsets)

    @property
    def lexical(self) -> LexicalIndex:
        if self._lexical is None:
            self._lexical = LexicalIndex(self.index.passages)
        return self._lexical

    def embed(self, question: str) -> np.ndarray:
        return self.encoder.encode([encoder_text(question)])[0]

    def dense_scores(self, qvec: np.ndarray) -> np.ndarray:
        """Best weighted unit cosine per passage (-1 for passages with no unit in the candidates)."""
        n_pass = len(self.index.passages)
        out = np.full(n_pass, -1.0, dtype=np.float32)
        if self.index.ann is None:  # flat index: every unit is scored exactly (index.FLAT_LIMIT)
            scores = self.index.unit_scores(qvec) * self._weights - self._offsets
            np.maximum.at(out, self.index.unit_passage, scores)
        else:
            scores, ids = self.index.search_units(qvec, self.config.candidates)
            keep = ids >= 0
            ids = ids[keep]
            np.maximum.at(out, self.index.unit_passage[ids], scores[keep] * self._weights[ids] - self._offsets[ids])
        return out

    def search(
        self, question: str, k: int = 10, *, qvec: np.ndarray | None = None, exclude: np.ndarray | None = None
    ) -> list[Hit]:
        """Rank passages for ``question``; returns at most ``k`` hits, best first.

        ``exclude`` (passage indices) ranks as if those passages were not in the corpus; the
        eval harness uses it to ask a question whose answer has been left out.
        """
        if k <= 0:
            raise ConfigError(f"k must be > 0, got {k}")
        mode = self.config.mode
        n = len(self.index.passages)
        keep = None
        if exclude is not None and len(exclude):
            keep = np.ones(n, dtype=bool)
            keep[np.asarray(exclude, dtype=np.int64)] = False
        dense = np.zeros(n, dtype=np.float32)
        lex = np.zeros(n, dtype=np.float32)
        if mode in ("hybrid", "dense"):
            if qvec is None:
                qvec = self.embed(question)
            dense = self.dense_scores(qvec)
        weight = self.config.lexical_weight
        if mode in ("hybrid", "lexical"):
            raw = self.lexical.scores(question)
            if keep is not None:
                raw = np.where(keep, raw, 0.0).astype(np.float32)
            top = float(raw.max()) if raw.size else 0.0
            lex = raw / top if top > 0 else raw
            if mode == "hybrid" and self.config.adaptive and top > 0:
                # Lexical evidence counts in proportion to how strong it is for this query:
                # the idf share of the query's terms that the best BM25 passage contains.
                weight *= self.lexical.strength(question, int(raw.argmax()))
        if mode == "dense":
            final, term = dense, np.zeros(n, dtype=np.float32)
        elif mode == "lexical":
            final, term = lex, lex
        else:
            term = weight * lex
            final = dense + term
        if keep is not None:
            final = np.where(keep, final, -np.inf)
            k = min(k, int(keep.sum()))
            if k == 0:
                return []
        k = min(k, n)
        order = np.argpartition(-final, k - 1)[:k] if k < n else np.arange(n)
        order = order[np.argsort(-final[order], kind="stable")]
        return [
            Hit(
                self.index.passages[i], float(final[i]), dense=float(dense[i]), lexical=float(lex[i]),
                lexical_term=float(term[i]),
            )
            for i in order
        ]

    def sentence_scores(self, qvec: np.ndarray, passage_id: str) -> list[tuple[int, int, float]]:
        """(start, end, cosine) of every sentence of one passage, in text order.

        Sentences indexed as units, and FAQ answers' sentences embedded at index time (quotes),
        are read from the index; an index built without quotes embeds them on first use (cached).
        """
        pi = self.index.by_id[passage_id]
        out = []
        for j in self.index.passage_units[pi]:
            u = self.index.units[j]
            if u.kind == "sentence":
                out.append((u.start, u.end, float(self.index.vectors[j] @ qvec)))
        if out:
            return out
        quoted = self.index.quote_scores(qvec, pi)
        if quoted is not None:
            return quoted
        spans, vecs = self._lazy_sentences(pi)
        return [(s, e, float(v @ qvec)) for (s, e), v in zip(spans, vecs)]

    def _lazy_sentences(self, pi: int) -> tuple[list[tuple[int, int]], np.ndarray]:
        cached = self._sentence_cache.get(pi)
        if cached is None:
            p = self.index.passages[pi]
            spans = sentence_spans(p.text)
            vecs = self.encoder.encode([p.text[s:e] for s, e in spans]) if spans else np.zeros((0, 1), np.float32)
            if len(self._sentence_cache) >= self.SENTENCE_CACHE:
                self._sentence_cache.pop(next(iter(self._sentence_cache)))
            cached = self._sentence_cache[pi] = (spans, vecs)
        return cached
