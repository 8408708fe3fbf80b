"""Unit tests for assistant/evaluation/run.py: run_eval puts scoring, the gate and the baseline together."""

from __future__ import annotations

import pytest

from assistant.core.pipeline import Assistant
from assistant.evaluation.gate import Bound, GateFailure
from assistant.evaluation.gold import GoldQuestion
from assistant.evaluation.run import EvalRun, run_eval
from assistant.evaluation.scoring import SIMULATED_METRICS, summarize

GOLD = [
    GoldQuestion("pay", "Do you accept PayPal?", relevant_ids=("tiny:payment-1",)),
    GoldQuestion("ret", "Can I return items for a refund?", relevant_ids=("tiny:returns-1",)),
    GoldQuestion("weather", "what is the weather in London", answerable=False),
]


@pytest.fixture
def assistant(fake_assistant) -> Assistant:
    return fake_assistant


def test_run_eval_scores_and_checks_the_gate(assistant):
    seen = []
    bounds = [Bound("answer_accuracy", 1.0), Bound("latency_p50_ms", 0.0, "max")]
    run = run_eval(assistant, GOLD, bounds=iter(bounds), on_result=lambda q, a: seen.append((q.id, a.answered)))
    assert isinstance(run, EvalRun)
    assert run.results["id"].tolist() == ["pay", "ret", "weather"] and run.results["correct"].all()
    assert run.summary == summarize(run.results)
    assert run.bounds == bounds  # an iterable is kept as a list
    assert run.failures == [GateFailure(bounds[1], run.summary["latency_p50_ms"])]
    assert seen == [("pay", True), ("ret", True), ("weather", False)]
    assert (run.comparison, run.simulated, run.regressed) == (None, None, False)
    assert run.seconds > 0


def test_run_eval_with_the_simulation(assistant):
    seen = []
    run = run_eval(assistant, GOLD, simulate=True, on_result=lambda q, a: seen.append(q.id))
    assert seen == ["pay", "ret", "weather", "pay", "ret"]  # the answerable ones again, left out
    assert run.simulated["id"].tolist() == ["pay", "ret"] and run.simulated["simulated"].all()
    assert run.simulated["left_out"].tolist() == [["tiny:payment-1"], ["tiny:returns-1"]]
    assert set(SIMULATED_METRICS) <= set(run.summary) and run.summary["n_simulated"] == 2


def test_run_eval_against_a_baseline(assistant):
    first = run_eval(assistant, GOLD)
    same = run_eval(assistant, GOLD, baseline=first.results)
    assert (len(same.comparison.regressions), len(same.comparison.fixes), same.regressed) == (0, 0, False)
    assert same.comparison.baseline_summary == first.summary

    was_wrong = first.results.assign(correct=[True, False, True])
    fixed = run_eval(assistant, GOLD, baseline=was_wrong)
    assert fixed.comparison.fixes["id"].tolist() == ["ret"] and not fixed.regressed

    # "ret" now asks something the corpus does not cover: right before, refused (wrong) now
    changed = [GOLD[0], GoldQuestion("ret", "what is the weather in London", relevant_ids=("tiny:returns-1",))]
    regressed = run_eval(assistant, changed, baseline=first.results)
    assert regressed.regressed and regressed.comparison.regressions["id"].tolist() == ["ret"]
    assert regressed.comparison.removed == ["weather"] and regressed.comparison.added == []
