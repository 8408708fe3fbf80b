"""Unit tests for assistant/cli/evaluate.py (`assistant eval`) with the fake encoder: options, exit codes,
printed sections and written files. The bundled gold set with the real model is the `eval` gate's job."""

from __future__ import annotations

import json

import pytest

from assistant.cli.evaluate import BUNDLED_GATE, BUNDLED_GOLD, _is_bundled
from assistant.cli.main import main
from assistant.evaluation.scoring import METRICS, SIMULATED_METRICS
from assistant.settings import BUNDLED_CORPUS

GOLD = [
    {"id": "pay", "question": "Do you accept PayPal?", "relevant_ids": ["tiny:payment-1"]},
    {"id": "ret", "question": "Can I return items for a refund?", "relevant_ids": ["tiny:returns-1"], "category": "c"},
    {"id": "weather", "question": "what is the weather in London", "answerable": False},
]


@pytest.fixture
def gold(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in GOLD), encoding="utf-8")
    return path


@pytest.fixture
def flags(tiny_corpus, tmp_path, gold):
    return ["eval", "--corpus", str(tiny_corpus), "--index-dir", str(tmp_path / "idx"), "--quiet", "--gold", str(gold)]


def test_eval_passes_and_writes_the_summary(flags, tmp_path, fake_model, capsys):
    assert main([*flags, "--json", str(tmp_path / "s.json"), "--fail-under", "answer_accuracy=1"]) == 0
    out = capsys.readouterr().out
    assert "answer_accuracy" in out and "3 questions answered in" in out
    assert "no failing questions" in out and "gate passed (1 bound(s))" in out
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["answer_accuracy"] == 1.0 and (summary["n"], summary["n_answerable"]) == (3, 2)
    assert set(summary) == set(METRICS) | {"n", "n_answerable", "n_unanswerable"}
    assert "Refusal operating point" not in out and "AUROC" in out  # the refusal table is printed


def test_gate_file_and_flags_merge(flags, tmp_path, fake_model, capsys):
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"answer_accuracy": 1.01, "hit@1": 0.5}))
    assert main([*flags, "--gate", str(gate)]) == 1
    err = capsys.readouterr().err
    assert "GATE FAILED:" in err and "answer_accuracy = 1.0000 is below the gate (>= 1.01)" in err and "hit@1" not in err
    assert main([*flags, "--gate", str(gate), "--fail-under", "answer_accuracy=0.5"]) == 0  # a flag overrides the file


def test_a_gate_on_a_simulated_metric_runs_the_simulation(flags, tmp_path, fake_model, capsys):
    assert main([*flags, "--fail-under", "simulated_unanswerable_refused=0", "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "leave-out simulation (each answerable question asked with its passages left out):" in out
    summary = json.loads((tmp_path / "s.json").read_text())
    assert set(SIMULATED_METRICS) <= set(summary) and summary["n_simulated"] == 2


def test_compare_retrievers_and_report(flags, tmp_path, fake_model, capsys):
    out_dir = tmp_path / "report"
    assert main([*flags, "--compare-retrievers", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "retrievers compared (answerable questions):" in out
    assert "dense only" in out and "BM25 only" in out
    assert f"report: {out_dir / 'report.html'} (also report.md, results.csv, summary.json)" in out
    md = (out_dir / "report.md").read_text()
    assert "## Retrievers compared" in md and "- **retrieval**: hybrid; fields: text passages" in md
    assert "- **refusal model**: default" in md and "- **verifier**: none" in md


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-failures", "-1"], "error: --max-failures must be >= 0, got -1"),
        (["--fail-under", "hit@1"], "error: --fail-under expects METRIC=VALUE, got 'hit@1'"),
        (["--fail-over", "hit@1=0.5"], "error: --fail-over 'hit@1=0.5': hit@1 is higher-is-better"),
        (["--gate", "missing.json"], "error: missing.json: gate file not found"),
        (["--baseline", "missing.csv"], "error: --baseline missing.csv: results file not found"),
    ],
)
def test_bad_options_exit_2_before_the_model_loads(flags, fake_model, capsys, args, message):
    assert main([*flags, *args]) == 2
    assert capsys.readouterr().err.strip().startswith(message)
    assert fake_model == []


def test_gold_is_required_for_another_corpus(tiny_corpus, tmp_path, fake_model, capsys):
    assert main(["eval", "--corpus", str(tiny_corpus), "--index-dir", str(tmp_path / "idx")]) == 2
    assert capsys.readouterr().err.strip() == "error: --gold is required with a corpus other than the bundled one"


def test_an_unwritable_output_is_a_config_error(flags, tmp_path, fake_model, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([*flags, "--json", str(blocker / "s.json")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --json {blocker / 's.json'}: cannot write")
    assert main([*flags, "--out", str(blocker / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --out {blocker / 'out'}: cannot write the report")


@pytest.mark.parametrize(
    ("corpus", "bundled"),
    [
        ([str(BUNDLED_CORPUS)], True),
        ([str(BUNDLED_CORPUS / "coco-jewelry-faq.txt")], True),
        ([str(BUNDLED_CORPUS), "elsewhere"], False),
        (["elsewhere"], False),
        ([], False),
    ],
)
def test_is_bundled(corpus, bundled):
    assert _is_bundled(corpus) is bundled


def test_bundled_paths_exist():
    assert BUNDLED_GOLD.is_file() and BUNDLED_GATE.is_file()
