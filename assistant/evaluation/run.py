"""One evaluation run: score, summarise, check the gate, compare with a baseline.

``run_eval`` is the one code path behind ``assistant eval`` and the ``eval`` pytest gate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from assistant.evaluation.baseline import Comparison, compare
from assistant.evaluation.gate import Bound, GateFailure, check_gate
from assistant.evaluation.gold import GoldQuestion
from assistant.evaluation.scoring import (
    evaluate,
    simulate_unanswerable,
    simulated_summary,
    summarize,
)
from assistant.schema import Answer

if TYPE_CHECKING:
    from assistant.core.pipeline import Assistant


@dataclass(frozen=True)
class EvalRun:
    results: pd.DataFrame
    summary: dict[str, Any]
    bounds: list[Bound]
    failures: list[GateFailure]
    comparison: Comparison | None
    seconds: float
    simulated: pd.DataFrame | None = None  # the leave-out simulation's rows, when it ran

    @property
    def regressed(self) -> bool:
        return self.comparison is not None and len(self.comparison.regressions) > 0


def run_eval(
    assistant: Assistant,
    gold: Sequence[GoldQuestion],
    *,
    bounds: Iterable[Bound] = (),
    baseline: pd.DataFrame | None = None,
    on_result: Callable[[GoldQuestion, Answer], None] | None = None,
    simulate: bool = False,
) -> EvalRun:
    """Evaluate, summarise, check the gate and compare with a baseline: what ``assistant eval`` does.

    With ``simulate``, also run the leave-out simulation (``simulate_unanswerable``) and add
    SIMULATED_METRICS to the summary (``on_result`` is called for those questions too).
    """
    t0 = time.perf_counter()
    results = evaluate(assistant, gold, on_result=on_result)
    summary = summarize(results)
    simulated = None
    if simulate:
        simulated = simulate_unanswerable(assistant, gold, on_result=on_result)
        summary.update(simulated_summary(results, simulated))
    bounds = list(bounds)
    return EvalRun(
        results=results,
        summary=summary,
        bounds=bounds,
        failures=check_gate(summary, bounds),
        comparison=compare(results, baseline) if baseline is not None else None,
        seconds=time.perf_counter() - t0,
        simulated=simulated,
    )
