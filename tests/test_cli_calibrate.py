"""Unit tests for assistant/cli/calibrate.py (`assistant calibrate`) with the fake encoder."""

from __future__ import annotations

import json
import re

import pytest

from assistant.cli.main import main
from assistant.core.refusal import CALIBRATION_FILE, FEATURES, RefusalModel
from assistant.evaluation.gold import gold_digest

GOLD = [
    {"id": "pay", "question": "Do you accept PayPal?", "relevant_ids": ["tiny:payment-1"]},
    {"id": "visa", "question": "Can I pay with Visa?", "relevant_ids": ["tiny:payment-1"]},
    {"id": "cash", "question": "Do you accept cash?", "relevant_ids": ["tiny:payment-2"]},
    {"id": "ret", "question": "Can I return items for a refund?", "relevant_ids": ["tiny:returns-1"]},
    {"id": "ship", "question": "When do orders ship?", "relevant_ids": ["tiny:shipping-1"]},
    {"id": "mars", "question": "Do you ship to Mars?", "answerable": False},
    {"id": "weather", "question": "what is the weather in London", "answerable": False},
    {"id": "jobs", "question": "Are you hiring engineers?", "answerable": False},
]


def write_gold(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def gold(tmp_path):
    return write_gold(tmp_path / "gold.jsonl", GOLD)


@pytest.fixture
def flags(tiny_corpus, tmp_path):
    return ["--corpus", str(tiny_corpus), "--index-dir", str(tmp_path / "idx"), "--quiet"]


def test_calibrate_saves_the_fitted_model_with_the_index(flags, gold, tmp_path, fake_model, capsys):
    assert main(["calibrate", *flags, "--gold", str(gold), "--folds", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("5 answerable, 3 unanswerable rows\n")
    assert re.search(r"default \(dense threshold\)(\s+[01](\.\d+)?){3}\n", out)
    assert re.search(r"calibrated \(2-fold CV\)(\s+([01](\.\d+)?|nan)){3}\n", out)
    assert f"saved -> {tmp_path / 'idx' / CALIBRATION_FILE}" in out
    model = RefusalModel.load(tmp_path / "idx")
    assert model.source == f"calibrated on gold.jsonl sha256:{gold_digest(gold)}"
    assert set(model.weights) == set(FEATURES) and model.verifier == "none"
    assert set(model.metrics) == {"folds", "unanswerable_refused", "answerable_refused", "auroc"} and model.metrics["folds"] == 2.0
    assert "weights: dense=" in out and f"bias={model.bias:+.2f}" in out
    # the next command that opens the index answers with it
    assert main(["ask", *flags, "Do you accept PayPal?"]) == 0
    assert fake_model[-1].refusal == model


def test_figures_print_with_three_decimals(flags, gold, fake_model, capsys):
    assert main(["calibrate", *flags, "--gold", str(gold), "--folds", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"default \(dense threshold\)\s+\d\.\d{3}\s+\d\.\d{3}\s+\d\.\d{3}\n", out)


def test_dry_run_saves_nothing(flags, gold, tmp_path, fake_model, capsys):
    assert main(["calibrate", *flags, "--gold", str(gold), "--dry-run"]) == 0
    assert "dry run: nothing saved" in capsys.readouterr().out
    assert not (tmp_path / "idx" / CALIBRATION_FILE).exists()


def test_simulate_unanswerable_learns_without_unanswerable_rows(flags, tmp_path, fake_model, capsys):
    gold = write_gold(tmp_path / "answerable.jsonl", GOLD[:5])
    assert main(["calibrate", *flags, "--gold", str(gold), "--folds", "2"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {gold}: calibration needs both answerable and unanswerable rows (or add --simulate-unanswerable)"
    )
    assert main(["calibrate", *flags, "--gold", str(gold), "--folds", "2", "--simulate-unanswerable", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith(
        "5 answerable, 5 unanswerable rows (5 of them answerable questions with their passages left out)\n"
    )


def test_operating_point_is_respected_on_the_training_rows(flags, gold, tmp_path, fake_model, capsys):
    assert main(["calibrate", *flags, "--gold", str(gold), "--folds", "2", "--max-answerable-refused", "0"]) == 0
    model = RefusalModel.load(tmp_path / "idx")
    assistant = fake_model[-1]
    refused = [not model.probability(assistant.features_for(r["question"])) >= 0.5 for r in GOLD[:5]]
    assert refused == [False] * 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--folds", "1"], "error: --folds must be >= 2, got 1"),
        (["--max-answerable-refused", "1"], r"error: --max-answerable-refused must be in [0, 1), got 1.0"),
        (["--max-answerable-refused", "-0.1"], r"error: --max-answerable-refused must be in [0, 1), got -0.1"),
    ],
)
def test_bad_options_exit_2_before_the_model_loads(flags, gold, fake_model, capsys, args, message):
    assert main(["calibrate", *flags, "--gold", str(gold), *args]) == 2
    assert capsys.readouterr().err.strip() == message
    assert fake_model == []


def test_a_bad_gold_file_exits_2_naming_the_line(flags, tmp_path, fake_model, capsys):
    gold = tmp_path / "bad.jsonl"
    gold.write_text(json.dumps(GOLD[0]) + "\n{broken\n", encoding="utf-8")
    assert main(["calibrate", *flags, "--gold", str(gold)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {gold}:2")
    assert fake_model == []


def test_gold_is_required(flags, capsys):
    with pytest.raises(SystemExit) as info:
        main(["calibrate", *flags])
    assert info.value.code == 2 and "the following arguments are required: --gold" in capsys.readouterr().err
