"""Unit tests for assistant/cli/common.py: open_assistant passes the resolved settings down, and `eval`
never scores a gold set with a refusal model calibrated on that same set."""

from __future__ import annotations

import argparse
import json

import pytest

from assistant.cli import common
from assistant.core.pipeline import Assistant
from assistant.core.refusal import RefusalModel
from assistant.evaluation.gold import gold_digest

from .conftest import FakeEncoder


@pytest.fixture
def opened(monkeypatch, tmp_path):
    """Assistant.open records its arguments and opens the tiny corpus with the fake encoder."""
    calls = []
    real_open = Assistant.open

    def fake_open(corpus, index_dir, **kwargs):
        calls.append({"corpus": corpus, "index_dir": index_dir, **kwargs})
        return real_open(corpus, index_dir, encoder=FakeEncoder(), default_refusal=RefusalModel.default(0.3))

    monkeypatch.setattr(common.Assistant, "open", fake_open)
    for name in ("ASSISTANT_MODEL", "ASSISTANT_ENCODER", "ASSISTANT_VERIFIER"):
        monkeypatch.delenv(name, raising=False)
    return calls


def namespace(tiny_corpus, tmp_path, **extra) -> argparse.Namespace:
    values = {"command": "ask", "corpus": [str(tiny_corpus)], "index_dir": str(tmp_path / "idx"), "model": None,
              "encoder": None, "verifier": None, "rebuild": False, "quiet": True} | extra  # fmt: skip
    return argparse.Namespace(**values)


def test_open_assistant_passes_the_settings_down(tiny_corpus, tmp_path, opened):
    assistant, stats, index_dir = common.open_assistant(
        namespace(tiny_corpus, tmp_path, model="my-model", encoder="torch", verifier="none", rebuild=True)
    )
    assert index_dir == tmp_path / "idx" and stats.passages == 5 and len(assistant.index.passages) == 5
    (call,) = opened
    assert (call["corpus"], call["index_dir"], call["model"], call["rebuild"], call["backend"], call["verifier"]) == (
        [str(tiny_corpus)], tmp_path / "idx", "my-model", True, "torch", "none",
    )  # fmt: skip
    assert call["log"] is None and call["progress_factory"] is None  # --quiet


def test_open_assistant_defaults_and_progress(tiny_corpus, tmp_path, opened, capsys):
    common.open_assistant(namespace(tiny_corpus, tmp_path, quiet=False))
    call = opened[0]
    assert (call["model"], call["rebuild"], call["backend"], call["verifier"]) == (None, False, "onnx", "mpnet")
    call["log"]("a log line")
    update = call["progress_factory"](2)
    update(2)
    err = capsys.readouterr().err
    assert "a log line\n" in err and "embedding" in err


def calibrated_on(index_dir, gold) -> RefusalModel:
    model = RefusalModel(weights={"dense": 5.0}, bias=-1.0, source=f"calibrated on gold.jsonl sha256:{gold_digest(gold)}")
    model.save(index_dir)
    return model


@pytest.fixture
def gold(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "Do you accept PayPal?"}) + "\n", encoding="utf-8")
    return path


def test_eval_on_the_calibration_gold_set_uses_the_default_model(tiny_corpus, tmp_path, gold, opened, capsys):
    common.open_assistant(namespace(tiny_corpus, tmp_path))  # builds the index folder
    model = calibrated_on(tmp_path / "idx", gold)
    kept, _, _ = common.open_assistant(namespace(tiny_corpus, tmp_path, command="ask"))
    assert kept.refusal == model
    swapped, _, _ = common.open_assistant(namespace(tiny_corpus, tmp_path, command="eval", gold=str(gold), quiet=False))
    assert swapped.refusal == model  # opening never swaps; `assistant eval` asks keep_gold_unseen for its gold file
    common.keep_gold_unseen(swapped, gold, quiet=False)
    assert swapped.refusal == RefusalModel.default(0.3) == swapped.default_refusal()
    assert f"note: the stored calibration was fitted on {gold}; scoring it with the default refusal model" in capsys.readouterr().err


def test_eval_on_another_gold_set_keeps_the_calibration(tiny_corpus, tmp_path, gold, opened):
    common.open_assistant(namespace(tiny_corpus, tmp_path))
    model = calibrated_on(tmp_path / "idx", gold)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "b", "question": "Can I return items?"}) + "\n", encoding="utf-8")
    assistant, _, _ = common.open_assistant(namespace(tiny_corpus, tmp_path, command="eval", gold=str(other)))
    common.keep_gold_unseen(assistant, other, quiet=True)
    assert assistant.refusal == model
    common.keep_gold_unseen(assistant, tmp_path / "nope.jsonl", quiet=True)
    assert assistant.refusal == model
