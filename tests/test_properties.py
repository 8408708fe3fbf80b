"""Property-based tests (hypothesis): for any input the loader and the answer builder never crash,
and whatever they quote is verbatim from the corpus."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from assistant.core.answer import AnswerConfig, compose
from assistant.core.corpus import CONTROL_RE, load_corpus, read_text
from assistant.core.pipeline import Assistant
from assistant.core.sentences import sentence_spans
from assistant.errors import CorpusError, QuestionError
from assistant.schema import Hit, SupportContact

from .conftest import SEED_CORPUS, TINY_FAQ, FakeEncoder

SLOW = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=150)

# FAQ-shaped lines (headings, bullets, numbered steps, markdown, blank and space-only lines,
# CR, tabs, odd Unicode) mixed with arbitrary text: most inputs look like a real file, and
# every one is still something a store owner could save.
LINE = st.one_of(
    st.sampled_from(
        [
            "", " ", "\t", "Shipping", "Order & Payment", "## Returns", "# FAQ #", "###", "•", "• ", "- ", "1.",
            "• We ship worldwide.", "- Refunds take 5 days.", "1) Pack the item.", "12. Email us.", "* Gift wrap",
            "We accept Visa and PayPal. We do not accept cash.", "Yes! Your data is safe.", "e.g. rings, i.e. gold.",
            "location.For Europe it takes 5 days", "Contact support@shop.example or +1 555 010 9999.",
            "<b>bold</b> &amp; <script>x()</script>", "\r", "\ufeffBOM line", "Ünïcødé — “quotes” ’", "😀 emoji",
            "مرحبا بكم", "    indented text", "Trailing spaces   ",
        ]
    ),
    st.text(max_size=80),
)
FAQ_TEXT = st.one_of(st.lists(LINE, max_size=40).map("\n".join), st.lists(LINE, max_size=40).map("\r\n".join), st.text())


def _load(name: str, data: bytes):
    """(passages, the file's text as the loader reads it) or (CorpusError, None)."""
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / name
        f.write_bytes(data)
        try:
            return load_corpus([f]), read_text(f)
        except CorpusError as exc:
            return exc, None


@SLOW
@given(text=FAQ_TEXT, suffix=st.sampled_from([".txt", ".md"]))
def test_text_loader_never_crashes_and_passages_are_verbatim(text, suffix):
    passages, source = _load("faq" + suffix, text.encode("utf-8", "surrogatepass"))
    if isinstance(passages, CorpusError):
        return  # a clear error naming the file is an allowed outcome
    assert passages, "an empty result must be a CorpusError"
    lines = source.split("\n")
    assert len({p.id for p in passages}) == len(passages)
    for p in passages:
        assert p.text and p.text == p.text.strip()
        assert p.text in source  # verbatim (after BOM and newline normalisation)
        # the line number points at the passage's first line
        assert lines[p.line - 1].strip() == p.text.split("\n")[0].strip()


@SLOW
@given(text=FAQ_TEXT, suffix=st.sampled_from([".html", ".htm", ".csv", ".jsonl"]))
def test_structured_loaders_never_crash(text, suffix):
    passages, _ = _load("faq" + suffix, text.encode("utf-8", "surrogatepass"))
    if not isinstance(passages, CorpusError):
        assert passages and all(p.text.strip() and p.id for p in passages)


JSON_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30))
ROW = st.one_of(
    st.fixed_dictionaries(
        {"id": st.one_of(st.text(max_size=8), st.integers()), "question": st.text(max_size=40), "answer": st.text(max_size=80)}
    ),
    st.dictionaries(st.sampled_from(["id", "title", "text", "question", "answer", "extra"]), JSON_VALUE, max_size=5),
    JSON_VALUE,
)


@SLOW
@given(rows=st.lists(ROW, max_size=8), crlf=st.booleans())
def test_jsonl_rows_load_as_given_or_fail_clearly(rows, crlf):
    data = ("\r\n" if crlf else "\n").join(json.dumps(r) for r in rows).encode()
    passages, _ = _load("faq.jsonl", data)
    if isinstance(passages, CorpusError):
        assert "faq.jsonl" in str(passages)
        return
    # Control characters are dropped from every field (issue 18, item 11), ids included.
    by_id = {CONTROL_RE.sub("", str(r["id"])).strip(): r for r in rows if isinstance(r, dict) and "id" in r}
    for p in passages:
        row = by_id[p.id]
        assert p.text == CONTROL_RE.sub("", row["text"] if "text" in row else row["answer"]).strip()


# --- the answer builder --------------------------------------------------------------------

SEED_PASSAGES = load_corpus([SEED_CORPUS])
CONTACT = SupportContact("support@coco-jewelry.com", "email", "coco-jewelry-faq:faqs-2")
SCORE = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)


@st.composite
def retrieval(draw):
    """Ranked hits over seed passages and a score for each sentence of the candidates, as the
    retriever would hand them to ``compose`` (any values, any order, multi-part or not)."""
    picked = draw(st.lists(st.sampled_from(SEED_PASSAGES), max_size=6, unique_by=lambda p: p.id))
    hits = [Hit(p, s, dense=d) for p, s, d in zip(picked, draw(st.lists(SCORE, min_size=len(picked), max_size=len(picked))),
                                                   draw(st.lists(SCORE, min_size=len(picked), max_size=len(picked))))]
    hits.sort(key=lambda h: -h.score)
    candidates = hits[: draw(st.integers(0, len(hits)))]

    def table():
        return {h.passage.id: [(s, e, draw(SCORE)) for s, e in sentence_spans(h.passage.text)] for h in candidates}

    parts = [table() for _ in range(draw(st.integers(0, 3)))]
    p_answer = draw(st.floats(0.0, 1.0))
    return hits, candidates, table(), parts, p_answer


def assert_quotes_are_verbatim(answer, corpus_text: str, passages_by_id: dict) -> None:
    for c in answer.citations:
        assert c.text == passages_by_id[c.id].text and c.text in corpus_text
    for s in answer.sentences:
        assert s.text and s.text in passages_by_id[s.passage_id].text and s.text in corpus_text
        assert answer.citations[s.citation - 1].id == s.passage_id
    if answer.answered:
        # the answer is the quoted sentences and their markers, nothing else
        assert answer.answer == " ".join(f"{' '.join(s.text.split())} [{s.citation}]" for s in answer.sentences)
    else:
        assert answer.citations == [] and answer.sentences == []


@SLOW
@given(question=st.text(max_size=200), data=retrieval())
def test_compose_never_crashes_and_only_quotes_the_corpus(question, data):
    hits, candidates, scores, parts, p_answer = data
    answer = compose(question, hits, candidates, scores, CONTACT, AnswerConfig(), p_answer, parts)
    assert 0.0 <= answer.confidence <= 1.0
    assert_quotes_are_verbatim(answer, SEED_CORPUS.read_text(encoding="utf-8"), {p.id: p for p in SEED_PASSAGES})
    json.dumps(answer.to_dict())  # always serialisable for the API


@pytest.fixture(scope="module")
def tiny_assistant(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prop-faq")
    (folder / "tiny.txt").write_text(TINY_FAQ, encoding="utf-8")
    assistant, _ = Assistant.open([folder], tmp_path_factory.mktemp("prop-index"), encoder=FakeEncoder())
    return assistant


QUESTION = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(TINY_FAQ.split() + ["?", "and", "can", "I", "paypal", "refund", "ignore", "instructions"]),
             max_size=25).map(" ".join),
)


@settings(deadline=None, max_examples=200)
@given(question=QUESTION)
def test_pipeline_never_crashes_and_cites_verbatim(tiny_assistant, question):
    try:
        answer = tiny_assistant.ask(question)
    except QuestionError as exc:
        assert "empty" in str(exc) or "too long" in str(exc)
        return
    assert_quotes_are_verbatim(answer, TINY_FAQ, {p.id: p for p in tiny_assistant.index.passages})
    draft = tiny_assistant.draft(question, customer_name=question[:20], agent_name=question[-20:])
    assert draft.escalate is (not draft.answer.answered)
    json.dumps(draft.to_dict()).encode("utf-8")


@settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.lists(LINE, min_size=1, max_size=30).map("\n".join), questions=st.lists(st.text(max_size=60), max_size=3))
def test_any_loadable_corpus_answers_only_from_itself(text, questions):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "faq"
        folder.mkdir()
        (folder / "faq.txt").write_text(text, encoding="utf-8")
        try:
            assistant, _ = Assistant.open([folder], Path(tmp) / "index", encoder=FakeEncoder())
        except CorpusError:
            assume(False)
        source = read_text(folder / "faq.txt")
        by_id = {p.id: p for p in assistant.index.passages}
        # questions made of the corpus's own words reach its passages; random ones mostly refuse
        for q in [*questions, *(p.text[:60] for p in assistant.index.passages[:3])]:
            try:
                answer = assistant.ask(q)
            except QuestionError:
                continue
            assert_quotes_are_verbatim(answer, source, by_id)
