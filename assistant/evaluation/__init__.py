"""The evaluation harness: gold sets, metrics, per-question scoring, the gate, baseline diffs, reports.

The public names are gathered here, so ``import assistant.evaluation as ev`` is all a caller needs.
They are imported on first use (PEP 562): the scoring modules need pandas, which the question
answering commands must not pay for just because they read a gold file's digest.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "baseline": ("Comparison", "compare", "load_results", "results_csv_frame"),
    "gate": ("Bound", "GateFailure", "check_gate", "load_gate", "make_bound", "merge_bounds", "parse_bound"),
    "gold": ("GoldQuestion", "gold_digest", "load_gold"),
    "run": ("EvalRun", "run_eval"),
    "scoring": (
        "COLUMNS", "LIST_COLUMNS", "METRICS", "SIMULATED_METRICS", "UNANSWERABLE_SECTION", "UNKNOWN_SECTION",
        "breakdown", "evaluate", "leave_out_ids", "score_answer", "simulate_unanswerable", "simulated_summary",
        "summarize",
    ),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'assistant.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"assistant.evaluation.{module}"), name)
