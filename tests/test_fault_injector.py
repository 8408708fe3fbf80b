"""The fault injector: every file of an index version, of the verifier's index and of the model
export is damaged in turn (garbage, empty, truncated, deleted, same-size overwrite), and each
case must end in a correct answer after a rebuild or re-export, or in one clear error line:
never a traceback, never an answer from altered text.

The index faults run the real ONNX model on a tiny corpus. For the model-export faults the
re-export itself (about 20 s of torch each) is stood in for by restoring the pristine export,
once the real code has found the damage and asked for it; tests/test_integrity.py runs one
real re-export end to end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import assistant.models.onnx as onnx_models
from assistant.core.pipeline import Assistant
from assistant.errors import AssistantError
from assistant.index.layout import IndexLayout
from assistant.integrity import VERIFIED_MEMO
from assistant.models.onnx import EXPORT_META, OnnxEncoder, _usable_export, open_encoder

from .app_process import ROOT, child_env

RETURNS = "how many days do I have to return items for a refund"
GOOD, ALTERED = "30 days", "90 days"


def _same_size(f: Path) -> None:
    """Overwrite in place, same size: a policy edit for text files, flipped bits for binary ones."""
    data = f.read_bytes()
    if GOOD.encode() in data:
        f.write_bytes(data.replace(GOOD.encode(), ALTERED.encode()))
    elif data[:1] == b"v":  # CURRENT: another version name of the same length
        f.write_bytes(data[:-1] + (b"0" if data[-1:] != b"0" else b"1"))
    else:
        middle = len(data) // 2
        f.write_bytes(data[:middle] + bytes(b ^ 0x5A for b in data[middle : middle + 64]) + data[middle + 64 :])


FAULTS = {
    "garbage": lambda f: f.write_bytes(os.urandom(4096)),
    "empty": lambda f: f.write_bytes(b""),
    "truncated": lambda f: f.write_bytes(f.read_bytes()[: f.stat().st_size // 3]),
    "deleted": lambda f: f.unlink(),
    "same-size overwrite": _same_size,
}


def _snapshot(idx_dir: Path) -> dict[str, bytes]:
    """CURRENT and the live version's files (relative path -> bytes)."""
    folder = idx_dir / (idx_dir / "CURRENT").read_text()
    files = {"CURRENT": (idx_dir / "CURRENT").read_bytes()}
    files.update({f"{folder.name}/{f.name}": f.read_bytes() for f in folder.iterdir()})
    return files


def _restore(idx_dir: Path, snapshot: dict[str, bytes]) -> None:
    for p in idx_dir.iterdir():
        if p.name.startswith(("v-", ".build-")):
            shutil.rmtree(p)
    for rel, data in snapshot.items():
        (idx_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (idx_dir / rel).write_bytes(data)


def _answer_is_correct(assistant: Assistant) -> None:
    answer = assistant.ask(RETURNS)
    assert answer.answered and GOOD in answer.answer, answer.answer
    assert ALTERED not in json.dumps(answer.to_dict()), "answered from altered text"


@pytest.fixture
def tiny_index(tiny_corpus, tmp_path, model_cache):
    """The tiny corpus indexed with the real ONNX export (a private copy in <index-dir>/models/)."""
    idx_dir = tmp_path / "index"
    shutil.copytree(model_cache, IndexLayout(idx_dir).models)
    encoder = open_encoder(None, IndexLayout(idx_dir).models, export=False)
    assert isinstance(encoder, OnnxEncoder)
    assistant, _ = Assistant.open([tiny_corpus], idx_dir, encoder=encoder)
    _answer_is_correct(assistant)
    return idx_dir, encoder


@pytest.mark.slow
def test_every_fault_in_every_index_file_ends_in_a_rebuild_and_a_correct_answer(tiny_corpus, tiny_index):
    idx_dir, encoder = tiny_index
    pristine = _snapshot(idx_dir)
    names = sorted(pristine)
    assert {"CURRENT", "manifest.json", "checksums.json", "vectors.npy", "units.npy", "hashes.npy"} <= {
        Path(n).name for n in names
    }
    outcomes = {}
    for rel in names:
        for fault, apply in FAULTS.items():
            _restore(idx_dir, pristine)
            apply(idx_dir / rel)
            logs: list[str] = []
            assistant, stats = Assistant.open([tiny_corpus], idx_dir, encoder=encoder, log=logs.append)
            case = f"{Path(rel).name} {fault}"
            assert stats.rebuilt, case
            # one line says why (a deleted CURRENT reads as no index at all), then the build's own line
            why = [line for line in logs if "rebuilding" in line or "(no index yet)" in line]
            assert len(why) == 1 and all("\n" not in line for line in logs), (case, logs)
            _answer_is_correct(assistant)
            outcomes[case] = why[0]
    assert len(outcomes) == len(names) * len(FAULTS)


@pytest.mark.slow
def test_every_fault_in_every_export_file_ends_in_a_re_export_and_a_correct_answer(tiny_corpus, tiny_index, monkeypatch):
    idx_dir, _ = tiny_index
    models = IndexLayout(idx_dir).models
    (export,) = [p for p in models.iterdir() if (p / EXPORT_META).is_file()]
    pristine = {f.name: f.read_bytes() for f in export.iterdir()}
    exports: list[str] = []
    index = Assistant.open([tiny_corpus], idx_dir, encoder=OnnxEncoder(export))[0].index
    want = OnnxEncoder(export).encode([RETURNS])[0]
    written = {n: (export / n).stat() for n in pristine}

    def untouched(n: str) -> bool:
        now = (export / n).stat()  # every fault rewrites or removes its file: a new mtime or size
        return (now.st_size, now.st_mtime_ns, now.st_ino) == (written[n].st_size, written[n].st_mtime_ns, written[n].st_ino)

    def restore() -> None:  # only what differs, so the other files keep their stat (and the memo stays valid)
        for n, data in pristine.items():
            if n == VERIFIED_MEMO:  # the product rewrites its memo; the pristine one's stamps are stale
                continue
            if not (export / n).is_file() or not untouched(n) or (len(data) < 1 << 20 and (export / n).read_bytes() != data):
                (export / n).write_bytes(data)
                written[n] = (export / n).stat()

    def stand_in_export(model, cache_dir, **kwargs):
        # What the real export_onnx decides first: the damaged export is not usable.
        assert not _usable_export(export, False)
        exports.append(export.name)
        restore()
        return export

    monkeypatch.setattr(onnx_models, "export_onnx", stand_in_export)
    for name in sorted(pristine):
        for fault, apply in FAULTS.items():
            case = f"{name} {fault}"
            restore()
            apply(export / name)
            before = len(exports)
            logs: list[str] = []
            try:
                encoder = open_encoder(None, models, log=logs.append)
            except AssistantError as exc:  # allowed: one clear line; never another exception
                assert "\n" not in str(exc), case
                continue
            assert isinstance(encoder, OnnxEncoder), (case, logs)
            if name != VERIFIED_MEMO:  # the memo only saves hashing: damaging it costs a re-hash, no export
                assert len(exports) == before + 1, (case, logs)
            assert all("\n" not in line for line in logs) and len(logs) <= 1, (case, logs)
            # the same vectors as the pristine export, so the same answers; one full answer per file
            assert float(encoder.encode([RETURNS])[0] @ want) > 0.9999, case
            if fault == "same-size overwrite":
                _answer_is_correct(Assistant(index, encoder))


@pytest.mark.slow
def test_faults_in_the_verifier_index_end_in_a_rebuild(tiny_corpus, tiny_index, onnx_verifier):
    idx_dir, encoder = tiny_index
    Assistant.open([tiny_corpus], idx_dir, encoder=encoder, verifier=onnx_verifier)
    vdir = IndexLayout(idx_dir).verifier
    pristine = _snapshot(vdir)
    # (each case embeds the corpus again with the 12-layer verifier: the pointer's faults, the worst edit)
    cases = [("CURRENT", fault) for fault in ("garbage", "empty", "deleted")]
    cases += [(rel, "same-size overwrite") for rel in pristine if Path(rel).name == "manifest.json"]
    for rel, fault in cases:
        apply = FAULTS[fault]
        _restore(vdir, pristine)
        apply(vdir / rel)
        logs: list[str] = []
        assistant, _ = Assistant.open([tiny_corpus], idx_dir, encoder=encoder, verifier=onnx_verifier, log=logs.append)
        why = [line for line in logs if "rebuilding" in line or "(no index yet)" in line]
        assert len(why) == 1 and why[0].startswith("verifier: index: "), (rel, fault, logs)
        _answer_is_correct(assistant)


@pytest.mark.slow
def test_the_cli_answers_after_a_garbage_current_without_a_traceback(tiny_corpus, tiny_index):
    idx_dir, _ = tiny_index
    (idx_dir / "CURRENT").write_bytes(bytes(range(256)))  # the UnicodeDecodeError
    cli = [sys.executable, "-m", "assistant", "ask", "--verifier", "none", "--corpus", str(tiny_corpus),
           "--index-dir", str(idx_dir), RETURNS]
    proc = subprocess.run(cli, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and GOOD in proc.stdout, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.findall(r"index pointer .*CURRENT is unreadable .*; rebuilding", proc.stderr), proc.stderr
