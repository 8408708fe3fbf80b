import json

import pytest

from assistant.core.corpus import fingerprint_files, load_corpus, resolve_files
from assistant.errors import CorpusError
from assistant.schema import Passage
from assistant.core.sentences import split_sentences

from .conftest import SEED_CORPUS, STACKFAQ


def test_seed_sections_and_passages():
    passages = load_corpus([SEED_CORPUS])
    by_id = {p.id: p for p in passages}
    assert [p.title for p in passages if p.id.endswith("-1")] == [
        "FAQS", "Shipping", "Returns", "Order & Payment", "Products"
    ]
    pay = by_id["coco-jewelry-faq:order-payment-2"]
    assert pay.title == "Order & Payment" and "PayPal" in pay.text
    # a run of bullet lines is one passage, kept verbatim (blank lines and bullets included)
    assert pay.text.count("•") == 4
    raw = SEED_CORPUS.read_text(encoding="utf-8")
    assert all(p.text in raw for p in passages)
    # the orphaned security paragraph keeps its section
    assert by_id["coco-jewelry-faq:order-payment-3"].text.startswith("Yes! Your personal online safety")
    assert by_id["coco-jewelry-faq:shipping-4"].title == "Shipping"


def test_ids_are_stable_across_reloads_and_edits_elsewhere(tmp_path):
    f = tmp_path / "faq.txt"
    f.write_text("Shipping\n\nWe ship in 2 days.\n\nReturns\n\nReturns within 30 days.\n")
    first = {p.text: p.id for p in load_corpus([f])}
    assert first == {"We ship in 2 days.": "faq:shipping-1", "Returns within 30 days.": "faq:returns-1"}
    f.write_text("Shipping\n\nWe ship in 3 days.\n\nReturns\n\nReturns within 30 days.\n")
    second = {p.text: p.id for p in load_corpus([f])}
    assert second["Returns within 30 days."] == "faq:returns-1"
    assert load_corpus([f]) == load_corpus([f])


def test_markdown_headings(tmp_path):
    f = tmp_path / "policy.md"
    f.write_text("# Store policy\n\n## Shipping\n\nShips fast.\n\n- one\n- two\n\n## Returns\n\nNo returns.\n")
    got = [(p.id, p.title, p.text) for p in load_corpus([f])]
    assert got == [
        ("policy:shipping-1", "Shipping", "Ships fast."),
        ("policy:shipping-2", "Shipping", "- one\n- two"),
        ("policy:returns-1", "Returns", "No returns."),
    ]


def test_html_strips_tags_and_scripts(tmp_path):
    f = tmp_path / "faq.html"
    f.write_text(
        "<html><head><title>x</title><script>alert(1)</script></head><body>"
        "<h2>Shipping</h2><p>We ship <b>worldwide</b>.</p><ul><li>Fast</li><li>Cheap</li></ul>"
        "<h2>Returns</h2><p>30 days.</p></body></html>"
    )
    got = [(p.title, p.text) for p in load_corpus([f])]
    assert got == [("Shipping", "We ship worldwide ."), ("Shipping", "Fast\nCheap"), ("Returns", "30 days.")] or got == [
        ("Shipping", "We ship worldwide."), ("Shipping", "Fast\nCheap"), ("Returns", "30 days.")
    ]
    assert not any("alert" in t for _, t in got)


def test_jsonl_and_csv_rows(tmp_path):
    j = tmp_path / "faq.jsonl"
    j.write_text(json.dumps({"id": "q1", "question": "Do you ship?", "answer": "Yes."}) + "\n\n"
                 + json.dumps({"id": "q2", "title": "Refunds?", "text": "Within 30 days."}) + "\n")
    c = tmp_path / "more.csv"
    c.write_text('id,question,answer\nc1,"Cash?","No, cards only."\n')
    got = load_corpus([j, c])
    assert got == [
        Passage("q1", "q1", "Do you ship?", "Yes.", str(j), 1, "faq"),
        Passage("q2", "q2", "Refunds?", "Within 30 days.", str(j), 3, "faq"),
        Passage("c1", "c1", "Cash?", "No, cards only.", str(c), 2, "faq"),
    ]


@pytest.mark.skipif(not (STACKFAQ / "corpus.jsonl").exists(), reason="shared benchmark not present")
def test_stackfaq_loads_with_row_ids():
    passages = load_corpus([STACKFAQ / "corpus.jsonl"])
    assert len(passages) == 719 and passages[0].id == passages[0].doc_id == "t000-a00"


def test_folder_loads_every_supported_file(tmp_path):
    (tmp_path / "a.txt").write_text("Shipping\n\nFast.\n")
    (tmp_path / "b.md").write_text("# Returns\n\nSlow.\n")
    (tmp_path / "notes.docx").write_bytes(b"ignored")
    assert [p.id for p in load_corpus([tmp_path])] == ["a:shipping-1", "b:returns-1"]
    assert [f.name for f in resolve_files([tmp_path])] == ["a.txt", "b.md"]


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("empty.txt", b"", r"corpus is empty"),
        ("blank.txt", b"\n\n   \n", r"corpus is empty"),
        ("latin1.txt", "Caf\u00e9 policy\n".encode("latin-1"), r"latin1\.txt:1: not valid UTF-8"),
        ("bin.txt", b"\x89PNG\x00\x00\x01", r"bin\.txt: looks like a binary file"),
        ("bad.jsonl", b'{"id": "a", "title": "t", "text": "x"}\n{"id": "b", "title": \n', r"bad\.jsonl:2: invalid JSON"),
        ("nofield.jsonl", b'{"id": "a", "title": "t"}\n', r"nofield\.jsonl:1: missing field 'text' or 'answer'"),
        ("badtype.jsonl", b'{"id": "a", "title": "t", "text": 5}\n', r"badtype\.jsonl:1: field 'text' must be a string"),
        ("dup.jsonl", b'{"id": "a", "title": "t", "text": "x"}\n{"id": "a", "title": "u", "text": "y"}\n',
         r"dup\.jsonl:2: duplicate id 'a' \(first seen at .*dup\.jsonl:1\)"),
        ("cols.csv", b"id,title\n1,hello\n", r"cols\.csv:1: missing column\(s\) text\|answer"),
        ("notobj.jsonl", b'["a", "b"]\n', r"notobj\.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_corpus_files_name_file_and_line(tmp_path, name, content, match):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(CorpusError, match=match):
        load_corpus([f])


@pytest.mark.parametrize(
    "paths, match",
    [([], "no corpus given"), (["/does/not/exist"], "corpus path not found: /does/not/exist")],
)
def test_bad_paths(paths, match):
    with pytest.raises(CorpusError, match=match):
        load_corpus(paths)


def test_unsupported_file_and_empty_folder(tmp_path):
    f = tmp_path / "x.pdf"
    f.write_bytes(b"%PDF")
    with pytest.raises(CorpusError, match=r"x\.pdf: unsupported file type \.pdf"):
        load_corpus([f])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match="holds no supported files"):
        load_corpus([empty])


def test_crlf_and_bom_are_normalised(tmp_path):
    f = tmp_path / "win.txt"
    f.write_bytes("\ufeffShipping\r\n\r\nWe ship in 2 days.\r\n".encode("utf-8"))
    (p,) = load_corpus([f])
    assert (p.id, p.title, p.text) == ("win:shipping-1", "Shipping", "We ship in 2 days.")


def test_fingerprint_changes_with_content(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("one")
    before = fingerprint_files([f])
    f.write_text("two")
    assert fingerprint_files([f]) != before


@pytest.mark.parametrize(
    "text, expected",
    [
        ("One. Two!", ["One. Two!"]),
        ("First sentence here. Second sentence here.", ["First sentence here.", "Second sentence here."]),
        ("based on your location.For Europe it is 5 days.", ["based on your location.", "For Europe it is 5 days."]),
        ("Yes! Your data is safe with us.", ["Yes! Your data is safe with us."]),
        ("Use e.g. tildes here. Then stop there.", ["Use e.g. tildes here.", "Then stop there."]),
        ("Long enough sentence. Short.", ["Long enough sentence. Short."]),
        ("•Check your mailbox.\n\n•Contact the carrier.", ["Check your mailbox.", "Contact the carrier."]),
    ],
)
def test_sentence_split(text, expected):
    got = split_sentences(text)
    assert got == expected
    assert all(s in text for s in got)
