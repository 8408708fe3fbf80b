import json

import pytest

from assistant.errors import IndexError_
from assistant.index import Index, open_index
from assistant.pipeline import Assistant


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


def test_corrupted_index_is_detected_and_rebuilt(tiny_corpus, tmp_path, fake_encoder):
    idx_dir = tmp_path / "i"
    open_index([tiny_corpus], idx_dir, fake_encoder)
    faiss_file = idx_dir / (idx_dir / "CURRENT").read_text() / "index.faiss"
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
