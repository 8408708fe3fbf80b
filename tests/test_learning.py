"""Learning from confirmed questions: the links file, learned keys in the index (incremental,
stale links left out, quotes only from the passage), grouping refused questions by meaning, the
learning-curve split, `assistant learn`, and POST /api/links on a real loopback server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from assistant.core.corpus import resolve_files
from assistant.core.pipeline import Assistant
from assistant.core.refusal import RefusalModel
from assistant.errors import ConfigError, LinkError
from assistant.evaluation.gold import GoldQuestion
from assistant.learning.clustering import group_questions
from assistant.learning.links import (
    Link,
    append_link,
    load_links,
    new_link,
    passage_hash,
    remove_links,
    save_links,
)
from assistant.learning.simulate import FOLDS, folds

from .conftest import TINY_FAQ, FakeEncoder
from .live_server import live_server

# A passage that answers a question in words the question never uses: refused until staff link it.
PACKAGING = "\nPackaging\n\nEvery order leaves in a plain recycled carton with no invoice inside.\n"
HIDDEN_PRICE = "Can you hide the price when I send it to a friend?"
STAFF = ("staff", "correct horse battery staple")


@pytest.fixture
def shop(tmp_path) -> Path:
    folder = tmp_path / "faq"
    folder.mkdir()
    (folder / "tiny.txt").write_text(TINY_FAQ + PACKAGING, encoding="utf-8")
    return folder


def _open(corpus: Path, index_dir: Path, encoder, learned: Path | None = None) -> Assistant:
    return Assistant.open([corpus], index_dir, encoder=encoder, default_refusal=RefusalModel.default(0.3), learned=learned)[0]


# --- the links file ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"learned\.jsonl:2: invalid JSON"),
        ('["q", "p"]', r"learned\.jsonl:2: a link must be a JSON object, got list"),
        ('{"question": "q"}', r"learned\.jsonl:2: missing required field 'passage_id'"),
        ('{"question": "  ", "passage_id": "p"}', r"learned\.jsonl:2: field 'question' is empty"),
        ('{"question": "q", "passage_id": 7}', r"learned\.jsonl:2: field 'passage_id' must be a string, got int"),
    ],
)
def test_a_bad_link_line_is_an_error_naming_file_and_line(tmp_path, line, message):
    path = tmp_path / "learned.jsonl"
    path.write_text('{"question": "fine", "passage_id": "p"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(LinkError, match=message):
        load_links(path)


def test_links_are_appended_once_and_removed_by_line(tmp_path):
    path = tmp_path / "sub" / "learned.jsonl"
    assert load_links(path) == []  # a missing file holds no links
    first = append_link(path, Link("Do you gift wrap?", "faq:gifts-1", "abc", "sam", "2026-01-01T00:00:00Z"))
    again = append_link(path, Link("do you  GIFT wrap?", "faq:gifts-1"))  # same question, other spacing and case
    second = append_link(path, Link("Is wrapping free?", "faq:gifts-1"))
    assert (first.line, again.line, second.line) == (1, 1, 2)
    assert [k.question for k in load_links(path)] == ["Do you gift wrap?", "Is wrapping free?"]
    assert [k.question for k in remove_links(path, [1])] == ["Do you gift wrap?"]
    assert load_links(path) == [Link("Is wrapping free?", "faq:gifts-1", line=1)]
    with pytest.raises(LinkError, match=r"no link at line\(s\) 5"):
        remove_links(path, [5])


def test_the_corpus_loader_skips_the_links_file(shop):
    save_links(shop / "learned.jsonl", [Link("q", "tiny:packaging-1")])
    assert [f.name for f in resolve_files([shop])] == ["tiny.txt"]


# --- the index -----------------------------------------------------------------------------


def test_a_link_is_one_more_key_embedded_once_and_a_stale_one_is_left_out(shop, tmp_path):
    encoder = FakeEncoder()
    plain = _open(shop, tmp_path / "idx", encoder)
    packaging = plain.index.passages[plain.index.by_id["tiny:packaging-1"]]
    learned = shop / "learned.jsonl"
    append_link(learned, new_link("zebra giraffe", packaging, by="sam"))
    append_link(learned, Link("okapi", "tiny:gone-1", line=0))  # names no passage
    before = encoder.texts_encoded
    linked = _open(shop, tmp_path / "idx", encoder, learned)
    assert encoder.texts_encoded - before == 1  # only the new key: every other vector is reused
    assert linked.index.learned == [("tiny:packaging-1", "zebra giraffe")]
    answer = linked.ask("zebra giraffe")
    assert answer.answered and [c.id for c in answer.citations] == ["tiny:packaging-1"]
    assert all(s.text in packaging.text for s in answer.sentences)  # quotes come from the passage only
    assert "zebra" not in answer.answer
    assert [s.describe() for s in linked.stale_links()] == [
        f"{learned}:2: stale link to 'tiny:gone-1' (passage not found); not used"
    ]
    # The passage is edited: its link no longer says what staff confirmed, so it is not used.
    (shop / "tiny.txt").write_text(TINY_FAQ + PACKAGING.replace("plain", "brown"), encoding="utf-8")
    edited = _open(shop, tmp_path / "idx", encoder, learned)
    assert edited.index.learned == []
    assert [s.reason for s in edited.stale_links()] == ["passage changed", "passage not found"]
    assert load_links(learned)[0].passage_hash == passage_hash(packaging.text)


def test_cli_learn_add_list_remove_and_index_reports_stale_links(shop, tmp_path, monkeypatch, capsys):
    from assistant.cli import common
    from assistant.cli.main import main

    real_open = Assistant.open

    class FakeOpen:  # the CLI's assistant with the fake encoder, everything else as the CLI passes it
        @staticmethod
        def open(corpus, index_dir, **kw):
            kw.update(encoder=FakeEncoder(), verifier=None, self_calibrate=False, default_refusal=RefusalModel.default(0.3))
            return real_open(corpus, index_dir, **kw)

    monkeypatch.setattr(common, "Assistant", FakeOpen)
    base = ["--corpus", str(shop), "--index-dir", str(tmp_path / "idx"), "-q"]
    assert main(["learn", "add", *base, "--by", "sam", HIDDEN_PRICE, "tiny:packaging-1"]) == 0
    assert main(["learn", "add", *base, "Do you take cash?", "tiny:nope-9"]) == 2
    assert "error: no passage with id 'tiny:nope-9'" in capsys.readouterr().err
    assert main(["learn", "add", *base, "Do you take cash?", "tiny:payment-2"]) == 0
    capsys.readouterr()
    assert main(["learn", "list", *base, "--json"]) == 0
    listed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(k["line"], k["passage_id"], k["by"], k["stale"]) for k in listed] == [
        (1, "tiny:packaging-1", "sam", None), (2, "tiny:payment-2", listed[1]["by"], None),
    ]  # fmt: skip
    (shop / "tiny.txt").write_text(TINY_FAQ.replace("cash", "cheques") + PACKAGING, encoding="utf-8")
    assert main(["index", *base]) == 0
    out = capsys.readouterr().out
    assert "learned: 1 confirmed question(s) in use" in out and ", 1 stale" in out
    assert f"{shop / 'learned.jsonl'}:2: stale link to 'tiny:payment-2' (passage changed); not used" in out
    assert main(["learn", "remove", *base, "2"]) == 0
    assert [k.passage_id for k in load_links(shop / "learned.jsonl")] == ["tiny:packaging-1"]
    assert main(["ask", *base, "--learned", str(tmp_path / "missing.jsonl"), "hello?"]) == 2
    assert "links file not found" in capsys.readouterr().err
    gold = tmp_path / "gold.jsonl"
    rows = [("Do you take cash?", "tiny:payment-2"), ("cash accepted?", "tiny:payment-2"), ("paying with cash", "tiny:payment-2"),
            ("cash ok", "tiny:payment-2"), ("weather in Paris?", None)]
    gold.write_text("".join(json.dumps({"id": f"g{i}", "question": q, "answerable": p is not None,
                                        **({"relevant_ids": [p]} if p else {})}) + "\n" for i, (q, p) in enumerate(rows)))
    assert main(["eval", *base, "--gold", str(gold), "--simulate-learning", "--json", str(tmp_path / "curve.json")]) == 0
    curve = json.loads((tmp_path / "curve.json").read_text())["learning_curve"]
    assert [(p["history"], p["links"], p["test_questions"], p["unanswerable_questions"]) for p in curve] == [
        ("0%", 0, 1, 1), ("25%", 1, 1, 1), ("50%", 2, 1, 1), ("75%", 3, 1, 1), ("halves, no links", 0, 2, 1), ("halves", 2, 2, 1),
    ]  # fmt: skip


# --- grouping and the simulation split -------------------------------------------------------


def test_refused_questions_group_by_meaning_named_by_the_central_phrasing():
    # Three phrasings of one need (close vectors), one of another; the grouping is by cosine.
    v = np.array([[1, 0.1, 0], [1, 0.2, 0], [1, 0, 0.15], [0, 0, 1]], dtype=np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    questions = [("gift wrap?", 5), ("do you wrap gifts", 2), ("wrapping for presents?", 1), ("weather?", 3)]
    groups = group_questions(questions, v, threshold=0.8)
    assert [(g.count, g.phrasings) for g in groups] == [(8, 3), (3, 1)]
    assert groups[0].label == "gift wrap?"
    assert groups[0].to_dict()["questions"][0] == {"question": "gift wrap?", "count": 5}
    assert len(group_questions(questions, v, threshold=0.999)) == 4


def test_folds_deal_each_groups_questions_by_position():
    gold = [GoldQuestion(f"q{i}", f"question {i}", relevant_ids=("a",)) for i in range(6)]
    gold += [GoldQuestion("b0", "other", relevant_ids=("b",)), GoldQuestion("n0", "nope", answerable=False)]
    assert folds(gold) == {"q0": 0, "q1": 1, "q2": 2, "q3": 3, "q4": 0, "q5": 1, "b0": 0}
    assert max(folds(gold).values()) == FOLDS - 1


# --- real models, real server -----------------------------------------------------------------


def test_a_linked_question_is_answered_from_its_passage_with_the_real_models(shop, tmp_path, onnx_encoder, onnx_verifier):
    # Without the link both models refuse it (the API and browser tests show MiniLM's refusal;
    # the verifier's best cosine for it is 0.30, under its 0.48).
    learned = tmp_path / "learned.jsonl"
    append_link(learned, Link(HIDDEN_PRICE, "tiny:packaging-1", by="sam"))
    linked = Assistant.open([shop], tmp_path / "idx", encoder=onnx_encoder, verifier=onnx_verifier, learned=learned)[0]
    assert linked.verifier.index.learned == [("tiny:packaging-1", HIDDEN_PRICE)]  # the verifier's index holds the key too
    answer = linked.ask(HIDDEN_PRICE)
    passage = linked.index.passages[linked.index.by_id["tiny:packaging-1"]]
    assert answer.answered and answer.citations[0].id == "tiny:packaging-1"
    assert all(s.text in passage.text for s in answer.sentences)


def test_a_linked_question_ranks_at_its_full_cosine_and_is_decided_at_the_offset(shop, tmp_path, onnx_encoder, onnx_verifier):
    from assistant.core.retrieval import RetrievalConfig

    learned = tmp_path / "learned.jsonl"
    append_link(learned, Link(HIDDEN_PRICE, "tiny:packaging-1", by="sam"))
    linked = Assistant.open([shop], tmp_path / "idx", encoder=onnx_encoder, verifier=onnx_verifier, learned=learned)[0]
    qvec = linked.verifier.embed(HIDDEN_PRICE)
    every = range(len(linked.index.passages))
    packaging = linked.index.by_id["tiny:packaging-1"]
    plain = linked.verifier.passage_scores(qvec, every)
    decide, rank = linked.verifier.passage_scores(qvec, every, learned_offsets=(0.3, 0.3), rank_share=0.0)
    assert rank[packaging] == pytest.approx(plain[packaging]) == pytest.approx(1.0, abs=1e-4)  # its own question
    assert decide[packaging] == pytest.approx(0.7, abs=1e-4)  # the whole offset, for the decision
    half = linked.verifier.passage_scores(qvec, every, learned_offsets=(0.3, 0.3), rank_share=0.5)[1]
    assert half[packaging] == pytest.approx(0.85, abs=1e-4)
    others = [i for i in every if i != packaging]
    assert np.allclose(decide[others], plain[others]) and np.allclose(rank[others], plain[others])  # no learned key

    # Through the pipeline: hits are ordered by the rank score and carry the decision's cosine. With
    # an offset this large the linked passage's decision score (its own keys' best, ~0.25) is below
    # another passage's, so only the rank score can put it first.
    a = Assistant(linked.index, onnx_encoder, verifier=linked.verifier,
                  retrieval=RetrievalConfig(learned_offset=0.9, learned_section_offset=0.9, learned_rank_share=0.0))  # fmt: skip
    hits = a.reranker.run(HIDDEN_PRICE, a.retriever.search(HIDDEN_PRICE, k=5), qvec)
    own = float(linked.verifier.passage_scores(qvec, [packaging], learned_offsets=(0.9, 0.9))[0])
    assert hits[0].passage.id == "tiny:packaging-1" and hits[0].verified == pytest.approx(own, abs=1e-5) and own < 0.5
    assert max(h.verified for h in hits[1:]) > hits[0].verified
    before = Assistant(linked.index, onnx_encoder, verifier=linked.verifier,
                       retrieval=RetrievalConfig(learned_offset=0.9, learned_section_offset=0.9, learned_rank_share=1.0))  # fmt: skip
    assert before.reranker.run(HIDDEN_PRICE, before.retriever.search(HIDDEN_PRICE, k=5), qvec)[0].passage.id != "tiny:packaging-1"
    with pytest.raises(ConfigError, match="learned_rank_share must be in"):
        RetrievalConfig(learned_rank_share=1.5)


def test_staff_link_through_the_api_and_the_next_answer_uses_it(shop, tmp_path, onnx_encoder):
    from assistant.server.api import create_app
    from assistant.server.feedback import FeedbackStore

    learned = shop / "learned.jsonl"
    assistant = Assistant.open([shop], tmp_path / "idx", encoder=onnx_encoder, learned=learned)[0]
    with (
        FeedbackStore.open(tmp_path / "data") as store,
        live_server(create_app(assistant, store, auth=STAFF, corpus=[shop], index_dir=tmp_path / "idx", ui=False)) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        assert not client.post("/api/ask", json={"question": HIDDEN_PRICE}).json()["answered"]
        client.post("/api/ask", json={"question": "can you hide the price if it is a present for a friend"})
        groups = client.get("/api/insights", auth=STAFF).json()["refused_groups"]
        assert [(g["count"], g["phrasings"]) for g in groups] == [(2, 2)]  # two phrasings of one need
        body = {"question": HIDDEN_PRICE, "passage_id": "tiny:packaging-1", "by": "sam"}
        assert client.post("/api/links", json=body).status_code == 401  # staff only
        bad = client.post("/api/links", json={**body, "passage_id": "tiny:nope-1"}, auth=STAFF)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_link"
        assert client.post("/api/links", json={**body, "question": ""}, auth=STAFF).status_code == 422
        made = client.post("/api/links", json=body, auth=STAFF)
        assert made.status_code == 200 and made.json()["line"] == 1 and made.json()["learned"] == 1
        answer = client.post("/api/ask", json={"question": HIDDEN_PRICE}).json()
        assert answer["answered"] and answer["citations"][0]["id"] == "tiny:packaging-1"
    assert [(k.question, k.by) for k in load_links(learned)] == [(HIDDEN_PRICE, "sam")]
