import json

import pytest

from assistant.core.corpus import fingerprint_files, load_corpus, resolve_files
from assistant.core.sentences import split_sentences
from assistant.errors import CorpusError
from assistant.schema import Passage

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


# --- limits and the loader's edges (issue 18, item 11) ---------------------------------------

import os  # noqa: E402
import threading  # noqa: E402

from assistant.core.corpus import CorpusLimits, read_text  # noqa: E402
from assistant.index.freshness import CorpusWatch  # noqa: E402


def test_control_characters_are_stripped_everywhere_not_only_in_the_first_8_kb(tmp_path):
    filler = "".join(f"Section {i}\n\nOrders to zone {i} ship within 3 days.\n\n" for i in range(400))
    assert len(filler) > 8192
    f = tmp_path / "faq.txt"
    f.write_text(filler + "Escapes\n\nWe \x1b[31mship\x1b[0m\x07 to\x00 Canada\u202e within \x9b2 days.\tTabs stay.\n")
    passages = load_corpus([f])
    last = passages[-1]
    assert last.text == "We [31mship[0m to Canada within 2 days.\tTabs stay."
    assert not any(ch in p.text + p.title for p in passages for ch in "\x1b\x07\x00\u202e\x9b")
    j = tmp_path / "faq.jsonl"
    j.write_text(json.dumps({"id": "a", "question": "Q\x1b]0;pwned\x07?", "answer": "A\x08nswer."}) + "\n")
    (row,) = load_corpus([j])
    assert (row.title, row.text) == ("Q]0;pwned?", "Answer.")


def test_a_symlink_leaving_the_corpus_folder_is_refused(tmp_path):
    folder = tmp_path / "faq"
    folder.mkdir()
    (folder / "ok.txt").write_text("Shipping\n\nWe ship in 2 days.\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    (folder / "passwd.txt").symlink_to(secret)
    with pytest.raises(CorpusError, match=r"faq/passwd\.txt: a symbolic link to .*secret\.txt, outside the corpus folder .*; not followed"):
        load_corpus([folder])
    (folder / "passwd.txt").unlink()
    (folder / "inside.txt").symlink_to(folder / "ok.txt")  # a link that stays inside is fine (loaded once)
    assert [p.text for p in load_corpus([folder])] == ["We ship in 2 days."]


def test_a_fifo_is_refused_before_it_is_opened(tmp_path):
    fifo = tmp_path / "faq.txt"
    os.mkfifo(fifo)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(_raises(load_corpus, [fifo])), daemon=True)
    worker.start()
    worker.join(30)  # opening a FIFO for reading would block forever
    assert not worker.is_alive(), "load_corpus hung on a FIFO"
    assert result and isinstance(result[0], CorpusError)
    assert "faq.txt: is a FIFO (named pipe), not a regular file" in str(result[0])
    with pytest.raises(CorpusError, match="is a FIFO"):
        CorpusWatch([fifo]).fingerprint()
    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(folder / "pipe.md")
    with pytest.raises(CorpusError, match=r"pipe\.md: is a FIFO"):
        load_corpus([folder])


def _raises(fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # the test inspects what was raised
        return exc
    return None


def test_a_device_is_refused(tmp_path):
    link = tmp_path / "zero.txt"
    link.symlink_to("/dev/zero")  # the MemoryError traceback
    with pytest.raises(CorpusError, match=r"zero\.txt: is a device, not a regular file"):
        load_corpus([link])


def test_file_size_limit_names_the_file(tmp_path):
    f = tmp_path / "big.txt"
    f.write_text("Shipping\n\n" + "We ship fast. " * 1000)
    with pytest.raises(CorpusError, match=r"big\.txt: 0\.0 MB is over the 0\.001 MB limit for one corpus file; split it"):
        load_corpus([f], limits=CorpusLimits(max_file_bytes=1000))
    with pytest.raises(CorpusError, match=r"big\.txt: .* over the 0\.001 MB limit"):
        read_text(f, max_bytes=1000)
    assert CorpusLimits().max_file_bytes == 10_000_000


def test_passage_length_limit_names_file_and_line(tmp_path):
    f = tmp_path / "long.txt"
    f.write_text("Shipping\n\nShort one.\n\n" + "x" * 30_000 + "\n")
    with pytest.raises(CorpusError, match=r"long\.txt:5: a passage of 30,000 characters is over the limit of 20,000; split it"):
        load_corpus([f])
    assert len(load_corpus([f], limits=CorpusLimits(max_passage_chars=40_000))) == 2


def test_passages_per_corpus_limit(tmp_path):
    f = tmp_path / "many.jsonl"
    f.write_text("".join(json.dumps({"id": str(i), "question": f"Q{i}?", "answer": f"A{i}."}) + "\n" for i in range(11)))
    with pytest.raises(CorpusError, match=r"many\.jsonl: the corpus holds more than 10 passages"):
        load_corpus([f], limits=CorpusLimits(max_passages=10))
    assert CorpusLimits().max_passages == 100_000 and len(load_corpus([f])) == 11
    with pytest.raises(CorpusError, match="max_passages must be a positive integer, got 0"):
        CorpusLimits(max_passages=0)


def test_a_text_file_is_read_once_per_load(tmp_path, monkeypatch):
    import assistant.core.corpus as corpus_mod

    f = tmp_path / "faq.md"
    f.write_text("# Shipping\n\n- We ship fast.\n- We ship far.\n")
    reads = []
    real = corpus_mod.read_text
    monkeypatch.setattr(corpus_mod, "read_text", lambda path, **kw: reads.append(path) or real(path, **kw))
    (p,) = load_corpus([f])
    assert p.text == "- We ship fast.\n- We ship far." and reads == [f]
