"""SHA-256 seals: every file of an index version (the manifest included) and of a model export is
checked on open; an altered one is rebuilt or exported again, never used."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import assistant.index.layout as layout_mod
from assistant.core.pipeline import Assistant
from assistant.errors import IndexError_, ModelError
from assistant.index.layout import CHECKSUMS, IndexLayout
from assistant.index.store import Index, open_index
from assistant.models.onnx import EXPORT_META, OnnxEncoder, _usable_export, open_encoder

from .conftest import FakeEncoder

RETURNS = "how many days do I have to return items for a refund"


def version(idx_dir: Path) -> Path:
    return idx_dir / (idx_dir / "CURRENT").read_text()


def test_every_file_of_a_version_is_in_its_checksums_and_the_name_seals_them(tiny_corpus, tmp_path):
    idx_dir = tmp_path / "i"
    open_index([tiny_corpus], idx_dir, FakeEncoder())
    folder = version(idx_dir)
    table = json.loads((folder / CHECKSUMS).read_text())
    assert table["algorithm"] == "sha256"
    assert set(table["files"]) == {f.name for f in folder.iterdir()} - {CHECKSUMS}
    assert {"manifest.json", "units.npy", "hashes.npy", "vectors.npy"} <= set(table["files"])
    import hashlib

    assert folder.name.endswith(hashlib.sha256((folder / CHECKSUMS).read_bytes()).hexdigest())


def test_a_same_length_edit_of_a_policy_in_the_manifest_is_never_answered(tiny_corpus, tmp_path, onnx_encoder):
    """The issue's attack: one policy sentence in manifest.json edited in place (same length)."""
    idx_dir = tmp_path / "i"
    Assistant.open([tiny_corpus], idx_dir, encoder=onnx_encoder)
    manifest = version(idx_dir) / "manifest.json"
    data = manifest.read_bytes()
    assert data.count(b"30 days") == 1
    manifest.write_bytes(data.replace(b"30 days", b"90 days"))
    with pytest.raises(IndexError_, match=r"manifest\.json is missing or corrupted \(checksum mismatch\)"):
        Index.load(idx_dir)
    logs: list[str] = []
    assistant, stats = Assistant.open([tiny_corpus], idx_dir, encoder=onnx_encoder, log=logs.append)
    assert stats.rebuilt and len([line for line in logs if "rebuilding" in line]) == 1, logs
    answer = assistant.ask(RETURNS)
    assert answer.answered and "30 days" in answer.answer and "90 days" not in json.dumps(answer.to_dict())


def test_an_index_from_before_the_checksums_is_rebuilt(tiny_corpus, tmp_path):
    idx_dir = tmp_path / "i"
    open_index([tiny_corpus], idx_dir, FakeEncoder())
    old = idx_dir / "v-1700000000000000-0123abcd"
    version(idx_dir).rename(old)
    (idx_dir / "CURRENT").write_text(old.name)
    with pytest.raises(IndexError_, match="predates SHA-256 checksums"):
        Index.load(idx_dir)
    _, stats = open_index([tiny_corpus], idx_dir, FakeEncoder())
    assert stats.rebuilt and "predates SHA-256 checksums" in stats.reason


def test_large_files_are_checked_by_size_and_sampled_hash_the_manifest_always_in_full(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(layout_mod, "FULL_HASH_BYTES", 100)  # every data file counts as large
    monkeypatch.setattr(layout_mod, "SAMPLE_BYTES", 64)
    idx_dir = tmp_path / "i"
    open_index([tiny_corpus], idx_dir, FakeEncoder())
    folder = version(idx_dir)
    table = json.loads((folder / CHECKSUMS).read_text())["files"]
    assert "sample_sha256" in table["vectors.npy"] and "sample_sha256" in table["manifest.json"]
    vectors = folder / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    assert len(data) > 300
    middle = len(data) // 2
    data[middle] ^= 0x01  # in the middle of a large vector file: not read on open (the documented trade)
    vectors.write_bytes(bytes(data))
    Index.load(idx_dir)
    data[-1] ^= 0x01  # in its last bytes: caught
    vectors.write_bytes(bytes(data))
    with pytest.raises(IndexError_, match=r"vectors\.npy is missing or corrupted"):
        Index.load(idx_dir)
    data[-1] ^= 0x01
    data[middle] ^= 0x01
    vectors.write_bytes(bytes(data))
    Index.load(idx_dir)
    manifest = folder / "manifest.json"
    text = manifest.read_bytes()
    mid = text.index(b"30 days")  # in the middle of the manifest: the manifest is always hashed whole
    manifest.write_bytes(text[:mid] + b"90" + text[mid + 2 :])
    with pytest.raises(IndexError_, match=r"manifest\.json is missing or corrupted"):
        Index.load(idx_dir)


def test_layout_names_every_part_of_the_folder(tmp_path):
    layout = IndexLayout(tmp_path)
    assert (layout.current, layout.models, layout.verifier, layout.calibration) == (
        tmp_path / "CURRENT", tmp_path / "models", tmp_path / "verifier", tmp_path / "calibration.json"
    )


# --- model exports -------------------------------------------------------------------------


@pytest.fixture
def export_copy(model_cache, tmp_path) -> Path:
    """A private copy of the session's real ONNX export folder (models/<fingerprint>/)."""
    (src,) = [p for p in model_cache.iterdir() if (p / EXPORT_META).is_file()]
    dst = tmp_path / "models" / src.name
    shutil.copytree(src, dst)
    return dst


@pytest.mark.slow
def test_export_records_a_sha256_of_every_file(export_copy):
    meta = json.loads((export_copy / EXPORT_META).read_text())
    assert set(meta["sha256"]) == {f.name for f in export_copy.iterdir()} - {EXPORT_META, ".verified.json"}
    assert {"model.onnx", "tokenizer.json"} <= set(meta["sha256"])
    OnnxEncoder(export_copy)  # verifies


@pytest.mark.slow
@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json", "vocab.txt"])
def test_a_same_size_overwrite_of_an_export_file_is_caught(export_copy, name):
    OnnxEncoder(export_copy)  # verified once: the stat memo is written
    f = export_copy / name
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x20
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime put back
    with pytest.raises(ModelError, match=rf"ONNX export in .* is damaged \({name}: missing or altered, SHA-256 mismatch\)"):
        OnnxEncoder(export_copy)
    assert not _usable_export(export_copy, False)


@pytest.mark.slow
def test_an_export_from_before_the_digests_gets_them_on_first_use(export_copy):
    meta = json.loads((export_copy / EXPORT_META).read_text())
    del meta["sha256"]
    (export_copy / EXPORT_META).write_text(json.dumps(meta))
    OnnxEncoder(export_copy)
    assert "model.onnx" in json.loads((export_copy / EXPORT_META).read_text())["sha256"]


@pytest.mark.slow
def test_a_truncated_model_is_exported_again_and_gives_the_same_vectors(export_copy, real_encoder):
    """The real re-export (about 20 s): open_encoder finds the damage, says so once, exports again."""
    model = export_copy / "model.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    logs: list[str] = []
    shared = export_copy.parent.parent / "machine-cache" / "onnx"  # the machine's model cache: empty so far
    encoder = open_encoder(None, export_copy.parent, log=logs.append, shared=shared)
    assert isinstance(encoder, OnnxEncoder) and encoder.path == export_copy
    assert any("model.onnx: missing or altered, SHA-256 mismatch" in line and "exporting again" in line for line in logs), logs
    texts = ["How long does shipping take?", "Can I return earrings?"]
    assert np.min(np.sum(encoder.encode(texts) * real_encoder.encode(texts), axis=1)) >= 0.999
    # the new export is also left in the machine's cache, for the next index folder to copy
    assert _usable_export(shared / export_copy.name, quantize=False)
    assert (shared / export_copy.name / EXPORT_META).read_text() == (export_copy / EXPORT_META).read_text()


def test_an_index_from_before_the_checksums_lends_its_vectors_to_the_rebuild(tiny_corpus, tmp_path):
    """Upgrading re-embeds nothing: the format-3 version's vectors are the rebuild's cache."""
    idx_dir = tmp_path / "i"
    built, _ = open_index([tiny_corpus], idx_dir, FakeEncoder())
    old = idx_dir / "v-1700000000000000-0123abcd"  # a format-3 version: no checksums.json, format 3
    version(idx_dir).rename(old)
    (old / CHECKSUMS).unlink()
    manifest = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**manifest, "format": 3}))
    (idx_dir / "CURRENT").write_text(old.name)
    encoder = FakeEncoder()
    index, stats = open_index([tiny_corpus], idx_dir, encoder)
    assert stats.rebuilt and "predates SHA-256 checksums" in stats.reason
    assert stats.embedded == 0 and encoder.texts_encoded == 0
    np.testing.assert_array_equal(index.vectors, built.vectors)
    Index.load(idx_dir)  # the new version is sealed
