"""Unit tests for assistant/core/retrieval.py: the Retriever's modes, exclusion, k and sentence scores
(with the deterministic fake encoder; the real model's ranking is tested end to end elsewhere)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from assistant.core.retrieval import MODES, RetrievalConfig, Retriever
from assistant.core.sentences import sentence_spans
from assistant.errors import ConfigError
from assistant.index.store import open_index
from assistant.schema import Hit

from .conftest import FakeEncoder

IDS = ["tiny:shipping-1", "tiny:returns-1", "tiny:payment-1", "tiny:payment-2", "tiny:contact-1"]


@pytest.fixture
def index(tiny_corpus, tmp_path, fake_encoder):
    index, _ = open_index([tiny_corpus], tmp_path / "idx", fake_encoder)
    return index


def retriever(index, **config) -> Retriever:
    return Retriever(index, FakeEncoder(), RetrievalConfig(**config))


def dense_by_hand(index, question: str) -> np.ndarray:
    """Best unit cosine per passage, straight from the stored unit vectors (flat index)."""
    q = FakeEncoder().encode([question])[0]
    best = np.full(len(index.passages), -1.0)
    for j, u in enumerate(index.units):
        best[u.passage] = max(best[u.passage], float(index.vectors[j] @ q))
    return best


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"mode": "bm25"}, r"retrieval mode must be one of hybrid, dense, lexical, got 'bm25'"),
        ({"mode": ""}, r"retrieval mode must be one of .*got ''"),
        ({"lexical_weight": -0.1}, r"lexical_weight must be in \[0, 10\], got -0.1"),
        ({"lexical_weight": 10.5}, r"lexical_weight must be in \[0, 10\], got 10.5"),
    ],
)
def test_config_rejects_bad_values(config, message):
    with pytest.raises(ConfigError, match=message):
        RetrievalConfig(**config)


def test_config_defaults():
    assert RetrievalConfig() == RetrievalConfig(mode="hybrid", lexical_weight=0.2, sentence_weight=1.0, candidates=50, adaptive=True)
    assert MODES == ("hybrid", "dense", "lexical")


@pytest.mark.parametrize("k", [0, -1, -10])
def test_search_rejects_k_below_one(index, k):
    with pytest.raises(ConfigError, match=rf"k must be > 0, got {k}"):
        retriever(index).search("shipping", k)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [1, 3, 5, 50])
def test_search_returns_at_most_k_hits_best_first(index, mode, k):
    hits = retriever(index, mode=mode).search("Do you accept PayPal or cash?", k)
    assert len(hits) == min(k, 5)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert len({h.passage.id for h in hits}) == len(hits)


def test_dense_mode_scores_are_the_best_unit_cosine(index):
    question = "How many days until my order ships?"
    hits = retriever(index, mode="dense").search(question, 5)
    expected = dense_by_hand(index, question)
    for h in hits:
        i = IDS.index(h.passage.id)
        assert h == Hit(h.passage, pytest.approx(expected[i], abs=1e-6), dense=pytest.approx(expected[i], abs=1e-6), lexical=0.0, verified=None, lexical_term=0.0)
    assert hits[0].passage.id == IDS[int(expected.argmax())]


def test_lexical_mode_scores_are_bm25_over_the_best(index):
    r = retriever(index, mode="lexical")
    raw = r.lexical.scores("return items for a refund")
    hits = r.search("return items for a refund", 5)
    assert hits[0].passage.id == "tiny:returns-1"
    for h in hits:
        share = float(raw[IDS.index(h.passage.id)] / raw.max())
        assert h == Hit(h.passage, pytest.approx(share), dense=0.0, lexical=pytest.approx(share), lexical_term=pytest.approx(share))
    assert hits[0].lexical == pytest.approx(1.0)


@pytest.mark.parametrize("question", ["Do you accept PayPal?", "return items within 30 days", "weather in London", "cash"])
def test_hybrid_score_is_dense_plus_lexical_term(index, question):
    r = retriever(index)
    dense = dense_by_hand(index, question)
    raw = r.lexical.scores(question)
    weight = 0.2 * (r.lexical.strength(question, int(raw.argmax())) if raw.max() > 0 else 1.0)
    for h in r.search(question, 5):
        i = IDS.index(h.passage.id)
        lexical = float(raw[i] / raw.max()) if raw.max() > 0 else 0.0
        assert h == Hit(
            h.passage, pytest.approx(dense[i] + weight * lexical, abs=1e-6), dense=pytest.approx(dense[i], abs=1e-6),
            lexical=pytest.approx(lexical), lexical_term=pytest.approx(weight * lexical, abs=1e-6),
        )
        assert h.lexical_term == pytest.approx(h.score - h.dense, abs=1e-6)
        assert 0.0 <= h.lexical <= 1.0


def test_non_adaptive_hybrid_uses_the_fixed_weight(index):
    hits = retriever(index, adaptive=False, lexical_weight=0.5).search("Do you accept PayPal?", 5)
    for h in hits:
        assert h.lexical_term == pytest.approx(0.5 * h.lexical)
        assert h.score == pytest.approx(h.dense + 0.5 * h.lexical)
    assert any(h.lexical > 0 for h in hits)


def test_lexical_weight_zero_is_dense_ranking(index):
    question = "Do you accept PayPal?"
    fused = retriever(index, lexical_weight=0.0).search(question, 5)
    dense = retriever(index, mode="dense").search(question, 5)
    assert [h.passage.id for h in fused] == [h.passage.id for h in dense]
    assert [h.lexical_term for h in fused] == [0.0] * 5


def test_exclude_ranks_as_if_the_passages_were_gone(index):
    r = retriever(index)
    full = r.search("Do you accept PayPal?", 5)
    assert full[0].passage.id == "tiny:payment-1"
    hits = r.search("Do you accept PayPal?", 5, exclude=np.array([2]))
    assert [h.passage.id for h in hits] == [h.passage.id for h in full if h.passage.id != "tiny:payment-1"]
    # BM25 is normalised over what is left: the best remaining lexical match scores 1
    assert max(h.lexical for h in hits) == pytest.approx(1.0)


def test_exclude_limits_k_and_excluding_everything_finds_nothing(index):
    r = retriever(index)
    assert len(r.search("shipping", 5, exclude=np.array([0, 1, 2]))) == 2
    assert r.search("shipping", 5, exclude=np.arange(5)) == []
    assert len(r.search("shipping", 5, exclude=np.array([], dtype=np.int64))) == 5


def test_search_uses_a_given_query_vector_without_encoding(index):
    enc = FakeEncoder()
    r = Retriever(index, enc)
    qvec = FakeEncoder().encode(["Do you accept PayPal?"])[0]
    hits = r.search("Do you accept PayPal?", 3, qvec=qvec)
    assert enc.calls == 0
    assert hits == r.search("Do you accept PayPal?", 3)
    assert enc.calls == 1


def test_lexical_mode_never_encodes(index):
    enc = FakeEncoder()
    Retriever(index, enc, RetrievalConfig(mode="lexical")).search("Do you accept PayPal?", 3)
    assert enc.calls == 0


def test_sentence_weight_scales_sentence_units(index):
    question = "We accept Visa and PayPal."
    plain = retriever(index, mode="dense").search(question, 1)[0]
    boosted = retriever(index, mode="dense", sentence_weight=2.0).search(question, 1)[0]
    assert plain.passage.id == boosted.passage.id == "tiny:payment-1"
    assert boosted.dense == pytest.approx(2 * plain.dense)  # the sentence unit is the best one


def test_sentence_scores_of_an_indexed_section(index):
    r = retriever(index)
    qvec = FakeEncoder().encode(["accept cash"])[0]
    scores = r.sentence_scores(qvec, "tiny:payment-2")
    text = index.passages[3].text
    unit = FakeEncoder().encode([f"Payment: {text}"])[0]  # sentence units are title-prefixed
    assert scores == [(0, len(text), pytest.approx(float(unit @ qvec), abs=1e-6))]


def test_sentence_scores_of_faq_rows_are_embedded_once_and_cached(tmp_path):
    faq = tmp_path / "faq.jsonl"
    answer = "Yes, we ship worldwide. Delivery takes 5 days. Customs fees are yours."
    faq.write_text(json.dumps({"id": "q1", "question": "Do you ship abroad?", "answer": answer}) + "\n"
                   + json.dumps({"id": "q2", "question": "Can I pay by card?", "answer": "We take Visa."}) + "\n")  # fmt: skip
    enc = FakeEncoder()
    index, _ = open_index([faq], tmp_path / "idx", enc, quotes=False)  # an index without quote vectors
    r = Retriever(index, enc)
    qvec = FakeEncoder().encode(["how long is delivery"])[0]
    before = enc.calls
    scores = r.sentence_scores(qvec, "q1")
    spans = sentence_spans(answer)
    vecs = FakeEncoder().encode([answer[s:e] for s, e in spans])
    assert scores == [(s, e, pytest.approx(float(v @ qvec), abs=1e-6)) for (s, e), v in zip(spans, vecs)]
    assert enc.calls == before + 1
    assert r.sentence_scores(qvec, "q1") == scores and enc.calls == before + 1  # cached


def test_sentence_cache_is_bounded(tmp_path):
    faq = tmp_path / "faq.jsonl"
    faq.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Question {i}?", "answer": f"Answer number {i}."}) + "\n" for i in range(4)))
    index, _ = open_index([faq], tmp_path / "idx", FakeEncoder(), quotes=False)
    r = Retriever(index, FakeEncoder())
    r.SENTENCE_CACHE = 2
    qvec = FakeEncoder().encode(["answer"])[0]
    for pid in ("q0", "q1", "q2"):
        r.sentence_scores(qvec, pid)
    assert sorted(r._sentence_cache) == [1, 2]  # the oldest passage was dropped


def test_lexical_index_is_built_on_first_use(index):
    r = retriever(index, mode="dense")
    r.search("shipping", 2)
    assert r._lexical is None
    assert r.lexical is r.lexical  # built once, then kept
    assert r.lexical.n == 5


def test_config_is_kept_and_replace_changes_the_mode(index):
    base = RetrievalConfig(lexical_weight=0.3)
    r = Retriever(index, FakeEncoder(), replace(base, mode="dense"))
    assert r.config == RetrievalConfig(mode="dense", lexical_weight=0.3)
    assert Retriever(index, FakeEncoder()).config == RetrievalConfig()


def test_encoder_text_keeps_the_first_words_only_of_a_long_question():
    from assistant.core.retrieval import ENCODED_WORDS, encoder_text

    short = "Do you  ship to\nthe UK?"
    assert encoder_text(short) == short and encoder_text("") == ""
    long = " ".join(f"w{i}" for i in range(300))
    assert encoder_text(long) == " ".join(f"w{i}" for i in range(ENCODED_WORDS))
    assert encoder_text("a b c d", max_words=2) == "a b"
    with pytest.raises(ValueError, match="max_words"):
        encoder_text("a", max_words=0)


def test_a_long_question_costs_the_encoder_at_most_the_encoded_words(tiny_corpus, tmp_path):
    from assistant.core.pipeline import Assistant
    from assistant.core.retrieval import ENCODED_WORDS

    from .conftest import FakeEncoder

    class Recording(FakeEncoder):
        seen: list[str] = []

        def encode(self, texts, **kw):
            self.seen.extend(texts)
            return super().encode(texts, **kw)

    enc = Recording()
    a, _ = Assistant.open([tiny_corpus], tmp_path / "idx", encoder=enc)
    enc.seen.clear()
    question = ("My order has not arrived and I would like to know when it ships " * 30).strip() + ". When?"
    a.ask(question)
    assert enc.seen and max(len(t.split()) for t in enc.seen) <= ENCODED_WORDS
