"""The evaluation harness: gold sets, metrics, per-question scoring, the gate, baseline diffs, reports.

The public names are gathered here, so ``import assistant.evaluation as ev`` is all a caller needs.
"""

from assistant.evaluation.baseline import Comparison, compare, load_results, results_csv_frame
from assistant.evaluation.gate import Bound, GateFailure, check_gate, load_gate, make_bound, merge_bounds, parse_bound
from assistant.evaluation.gold import GoldQuestion, gold_digest, load_gold
from assistant.evaluation.run import EvalRun, run_eval
from assistant.evaluation.scoring import (
    COLUMNS,
    LIST_COLUMNS,
    METRICS,
    SIMULATED_METRICS,
    UNANSWERABLE_SECTION,
    UNKNOWN_SECTION,
    breakdown,
    evaluate,
    leave_out_ids,
    score_answer,
    simulate_unanswerable,
    simulated_summary,
    summarize,
)

__all__ = [
    "COLUMNS", "LIST_COLUMNS", "METRICS", "SIMULATED_METRICS", "UNANSWERABLE_SECTION", "UNKNOWN_SECTION",
    "Bound", "Comparison", "EvalRun", "GateFailure", "GoldQuestion",
    "breakdown", "check_gate", "compare", "evaluate", "gold_digest", "leave_out_ids", "load_gate", "load_gold",
    "load_results", "make_bound", "merge_bounds", "parse_bound", "results_csv_frame", "run_eval", "score_answer",
    "simulate_unanswerable", "simulated_summary", "summarize",
]  # fmt: skip
