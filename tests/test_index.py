import json

import pytest

from assistant.core.pipeline import Assistant
from assistant.errors import IndexError_
from assistant.index.store import Index, open_index


def test_build_then_reuse_then_rebuild_on_change(tiny_corpus, tmp_path, fake_encoder):
    idx_dir = tmp_path / "idx"
    index, stats = open_index([tiny_corpus], idx_dir, fake_encoder)
    assert stats.rebuilt and stats.reason == "no index yet" and stats.passages == 5
    m = json.loads((idx_dir / (idx_dir / "CURRENT").read_text() / "manifest.json").read_text())
    assert m["model"] == "fake-bow" and m["dimension"] == 64 and m["metric"] == "inner_product"
    assert [p["id"] for p in m["passages"]] == [p.id for p in index.passages]

    again, stats = open_index([tiny_corpus], idx_dir, fake_encoder)
    assert not stats.rebuilt and stats.embedded == 0
    assert [p.id for p in again.passages] == [p.id for p in index.passages]

    f = tiny_corpus / "tiny.txt"
    f.write_text(f.read_text().replace("30 days", "14 days"))
    changed, stats = open_index([tiny_corpus], idx_dir, fake_encoder)
    assert stats.rebuilt and stats.reason == "corpus changed"
    assert any("14 days" in p.text for p in changed.passages)
    # only the edited passage's units were embedded again (title+text and its one sentence)
    assert stats.embedded == 2


def test_model_change_rebuilds(tiny_corpus, tmp_path, fake_encoder):
    open_index([tiny_corpus], tmp_path / "i", fake_encoder)

    class Other(type(fake_encoder)):
        name, fingerprint = "other", "other-v1"

    _, stats = open_index([tiny_corpus], tmp_path / "i", Other())
    assert stats.rebuilt and stats.reason.startswith("model changed")

    class Shorter(Other):  # the same model reading fewer tokens (a verifier index from before)
        fingerprint = "other-v1-t256"

    _, stats = open_index([tiny_corpus], tmp_path / "i", Shorter())
    assert stats.rebuilt and stats.reason == "model changed (other other-v1 -> other-v1-t256)"


def test_corrupted_index_is_detected_and_rebuilt(tiny_corpus, tmp_path, fake_encoder):
    idx_dir = tmp_path / "i"
    open_index([tiny_corpus], idx_dir, fake_encoder)
    faiss_file = idx_dir / (idx_dir / "CURRENT").read_text() / "vectors.npy"
    data = faiss_file.read_bytes()
    faiss_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexError_, match="missing or corrupted"):
        Index.load(idx_dir)
    logs = []
    index, stats = open_index([tiny_corpus], idx_dir, fake_encoder, log=logs.append)
    assert stats.rebuilt and "unusable" in stats.reason and len(index.passages) == 5
    assert any("rebuilding" in line for line in logs)
    Index.load(idx_dir)  # the new version verifies


def test_missing_index_message(tmp_path):
    with pytest.raises(IndexError_, match="no index in .* \\(run `assistant index`\\)"):
        Index.load(tmp_path)


def test_stale_index_never_served_after_corpus_edit(tiny_corpus, tmp_path, fake_encoder):
    idx_dir = tmp_path / "i"
    Assistant.open([tiny_corpus], idx_dir, encoder=fake_encoder)
    f = tiny_corpus / "tiny.txt"
    f.write_text(f.read_text().replace("Visa and PayPal", "Visa and Bitcoin"))
    assistant, stats = Assistant.open([tiny_corpus], idx_dir, encoder=fake_encoder)
    assert stats.rebuilt
    assert any("Bitcoin" in p.text for p in assistant.index.passages)
    assert not any("PayPal" in p.text for p in assistant.index.passages)


# --- incremental refresh, index types, fast staleness check -------------------------------------

import os  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from assistant.core.corpus import load_corpus  # noqa: E402
from assistant.core.retrieval import Retriever  # noqa: E402
from assistant.errors import ConfigError  # noqa: E402
from assistant.index.store import (  # noqa: E402
    FLAT_LIMIT,
    choose_index_type,
    ivf_nlist,
    make_units,
    unit_text,
)

from .conftest import FakeEncoder  # noqa: E402


class RecordingEncoder(FakeEncoder):
    """The fake encoder, remembering every text it was asked to encode."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def encode(self, texts, *, batch_size=64, progress=False):
        self.seen.extend(texts)
        return super().encode(texts, batch_size=batch_size, progress=progress)


def _unit_texts(passages) -> list[str]:
    return [unit_text(passages[u.passage], u) for u in make_units(passages)]


def test_refresh_encodes_exactly_the_changed_units_and_keeps_the_rest(tiny_corpus, tmp_path):
    idx_dir = tmp_path / "i"
    first = RecordingEncoder()
    before, _ = open_index([tiny_corpus], idx_dir, first)
    assert sorted(first.seen) == sorted(set(_unit_texts(before.passages)))

    f = tiny_corpus / "tiny.txt"
    f.write_text(f.read_text().replace("We accept Visa and PayPal.", "We accept Visa, PayPal and Klarna."))
    second = RecordingEncoder()
    after, stats = open_index([tiny_corpus], idx_dir, second)
    new_texts = set(_unit_texts(after.passages)) - set(_unit_texts(before.passages))
    assert sorted(second.seen) == sorted(new_texts) and stats.embedded == len(new_texts) == 2
    assert all("Klarna" in t for t in second.seen)
    old = {unit_text(before.passages[u.passage], u): before.vectors[j] for j, u in enumerate(before.units)}
    for j, u in enumerate(after.units):
        text = unit_text(after.passages[u.passage], u)
        if text in old:  # untouched units keep their stored vectors bit for bit
            assert np.array_equal(after.vectors[j], old[text])


def test_identical_unit_texts_are_encoded_once(tmp_path):
    folder = tmp_path / "faq"
    folder.mkdir()
    rows = [{"id": f"r{i}", "question": "Do you ship abroad?", "answer": "Yes, we ship worldwide."} for i in range(3)]
    (folder / "faq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    enc = RecordingEncoder()
    index, stats = open_index([folder], tmp_path / "i", enc)
    distinct = set(_unit_texts(index.passages))
    assert len(index.units) == 3 * len(distinct) and len(distinct) == 2
    # the two unit texts and the answer's one sentence (a quote), each once
    assert len(index.quotes[0]) == 3
    assert stats.embedded == len(enc.seen) == 3 and set(enc.seen) == distinct | {"Yes, we ship worldwide."}


def test_faq_answer_sentences_are_embedded_at_index_time_and_only_changed_ones_again(tmp_path):
    from assistant.core.sentences import sentence_spans

    faq = tmp_path / "faq.jsonl"
    answer = "Yes, we ship worldwide. Delivery takes 5 days. Customs fees are yours."
    faq.write_text(json.dumps({"id": "q1", "question": "Do you ship abroad?", "answer": answer}) + "\n")
    index, _ = open_index([faq], tmp_path / "i", FakeEncoder())
    spans, hashes, vectors = index.quotes
    assert [(int(a), int(b)) for _, a, b in spans] == sentence_spans(answer) and len(hashes) == len(vectors) == 3
    qvec = FakeEncoder().encode(["how long is delivery"])[0]
    want = FakeEncoder().encode([answer[a:b] for a, b in sentence_spans(answer)]) @ qvec
    assert [c for _, _, c in index.quote_scores(qvec, 0)] == pytest.approx(want.tolist(), abs=1e-6)
    again = Index.load(tmp_path / "i")  # saved with the version, sealed like the rest
    np.testing.assert_array_equal(again.quotes[2], vectors)
    faq.write_text(json.dumps({"id": "q1", "question": "Do you ship abroad?", "answer": answer.replace("5", "7")}) + "\n")
    enc = RecordingEncoder()
    _, stats = open_index([faq], tmp_path / "i", enc)
    assert sorted(enc.seen) == ["Delivery takes 7 days.", "Do you ship abroad?\nYes, we ship worldwide. Delivery takes 7 days. Customs fees are yours."]
    # the verifier's index (quotes=False) holds none, and an index from before quotes gets them
    # on its next open, its unit vectors reused
    bare, _ = open_index([faq], tmp_path / "v", FakeEncoder(), quotes=False)
    assert bare.quotes is None and bare.quote_scores(qvec, 0) is None
    enc = RecordingEncoder()
    upgraded, stats = open_index([faq], tmp_path / "v", enc)
    assert stats.reason == "FAQ answer sentences not embedded yet" and len(upgraded.quotes[0]) == 3
    assert sorted(enc.seen) == sorted(answer.replace("5", "7")[a:b] for a, b in sentence_spans(answer))


@pytest.mark.parametrize(
    "n, kind", [(0, "flat"), (1, "flat"), (FLAT_LIMIT, "flat"), (FLAT_LIMIT + 1, "ivf"), (5_000_000, "ivf")]
)
def test_index_type_by_corpus_size(n, kind):
    assert choose_index_type(n) == kind


def test_index_type_rejects_negative_sizes():
    with pytest.raises(ConfigError, match="number of vectors must be >= 0, got -1"):
        choose_index_type(-1)


@pytest.mark.parametrize("n, nlist", [(1, 256), (100_000, 256), (1_000_000, 1024), (4_000_000, 2048), (10**9, 16384)])
def test_ivf_list_count_grows_with_sqrt_n(n, nlist):
    assert ivf_nlist(n) == nlist


@pytest.fixture
def big_corpus(tmp_path):
    """400 distinct FAQ rows: enough vectors to train an IVF index with the fake encoder."""
    words = "ship return refund order gift ring necklace gold silver size engrave wrap card paypal track parcel".split()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(400):
        picked = " ".join(rng.choice(words, size=6))
        rows.append({"id": f"q{i}", "question": f"Question {i} about {picked}?", "answer": f"Answer {i}: {picked}."})
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "faq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_large_index_is_ivf_searchable_after_reload_and_refresh_reuses_centroids(big_corpus, tmp_path):
    idx_dir = tmp_path / "i"
    index, _ = open_index([big_corpus], idx_dir, FakeEncoder(), flat_limit=100)
    assert index.index_type == "ivf" and index.manifest["index_type"] == "ivf"
    probe = np.asarray(index.vectors[7])
    scores, ids = index.search_units(probe, 5)
    assert scores[0] == pytest.approx(1.0, abs=1e-5) and np.all(np.diff(scores) <= 1e-6)
    assert np.asarray(index.vectors[ids[0]]) @ probe == pytest.approx(1.0, abs=1e-5)

    loaded = Index.load(idx_dir)
    assert loaded.index_type == "ivf"
    np.testing.assert_array_equal(loaded.search_units(probe, 5)[1], ids)
    # the retriever takes the approximate path and still finds the passage of that unit
    hits = Retriever(loaded, FakeEncoder()).search("unused", 3, qvec=probe)
    assert hits[0].passage.id == loaded.passages[loaded.unit_passage[7]].id

    import faiss

    def centroids_of(index):
        quantizer = faiss.extract_index_ivf(index.ann.faiss).quantizer
        return quantizer.reconstruct_n(0, quantizer.ntotal)

    centroids = centroids_of(loaded)
    f = big_corpus / "faq.jsonl"
    f.write_text(f.read_text().replace("Answer 3:", "Updated answer 3:"))
    refreshed, stats = open_index([big_corpus], idx_dir, FakeEncoder(), flat_limit=100)
    # its question + answer unit and its answer's sentence
    assert stats.rebuilt and stats.embedded == 2 and refreshed.index_type == "ivf"
    np.testing.assert_array_equal(centroids_of(refreshed), centroids)
    assert refreshed.ann.faiss.ntotal == len(refreshed.units)


def test_unchanged_old_files_are_not_read_again(tiny_corpus, tmp_path, monkeypatch):
    f = tiny_corpus / "tiny.txt"
    old = time.time() - 3600
    os.utime(f, (old, old))
    open_index([tiny_corpus], tmp_path / "i", FakeEncoder())

    def no_hashing(files):
        raise AssertionError("the corpus was hashed although no file changed")

    monkeypatch.setattr("assistant.index.freshness.fingerprint_files", no_hashing)
    _, stats = open_index([tiny_corpus], tmp_path / "i", FakeEncoder())
    assert not stats.rebuilt


def test_same_size_edit_within_the_same_timestamp_is_still_detected(tiny_corpus, tmp_path):
    f = tiny_corpus / "tiny.txt"
    open_index([tiny_corpus], tmp_path / "i", FakeEncoder())
    st = f.stat()
    f.write_text(f.read_text().replace("2 working days", "3 working days"))  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime: only the content differs
    assert f.stat().st_size == st.st_size
    index, stats = open_index([tiny_corpus], tmp_path / "i", FakeEncoder())
    assert stats.rebuilt and stats.reason == "corpus changed"
    assert any("3 working days" in p.text for p in index.passages)


def test_inconsistent_index_files_are_refused(tiny_corpus, tmp_path):
    idx_dir = tmp_path / "i"
    open_index([tiny_corpus], idx_dir, FakeEncoder())
    folder = idx_dir / (idx_dir / "CURRENT").read_text()
    np.save(folder / "hashes.npy", np.zeros((1, 16), np.uint8))
    with pytest.raises(IndexError_, match="inconsistent: 10 units, 10 vectors, 1 hashes, 5 passages"):
        Index.load(idx_dir, verify=False)
    assert len(load_corpus([tiny_corpus])) == 5


def test_the_corpus_is_read_and_parsed_once_per_build_with_a_verifier(tiny_corpus, tmp_path, monkeypatch):
    """The verifier's index takes the main index's passages (issue 17: the corpus was parsed twice)."""
    import assistant.index.store as store

    calls = []
    real = store.load_corpus
    monkeypatch.setattr(store, "load_corpus", lambda files, **kw: calls.append(files) or real(files, **kw))

    class OtherModel(FakeEncoder):
        name, fingerprint = "other", "other-v1"

    assistant, stats = Assistant.open([tiny_corpus], tmp_path / "i", encoder=FakeEncoder(), verifier=OtherModel())
    assert stats.rebuilt and len(calls) == 1
    assert [p.id for p in assistant.verifier.index.passages] == [p.id for p in assistant.index.passages]
    assert (tmp_path / "i" / "verifier" / "CURRENT").is_file()
    f = tiny_corpus / "tiny.txt"
    f.write_text(f.read_text().replace("30 days", "14 days"))
    assistant, _ = Assistant.open([tiny_corpus], tmp_path / "i", encoder=FakeEncoder(), verifier=OtherModel())
    assert len(calls) == 2 and any("14 days" in p.text for p in assistant.verifier.index.passages)
