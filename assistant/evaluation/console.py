"""The eval summary, comparison and failing questions as plain-text tables for the terminal."""

from __future__ import annotations

import math

from tabulate import tabulate

from assistant.evaluation.report import shorten, summary_table

FAILURE_COLUMNS = ("id", "question", "expected", "got")


def format_summary(run) -> str:
    table = summary_table(run)
    if not run.bounds:
        table = table.drop(columns=["gate", "status"])
    rows = [[_fmt(v, col) for col, v in row.items()] for row in table.to_dict("records")]
    rows.append(["n", run.summary["n"]] + [""] * (len(table.columns) - 2))
    return tabulate(rows, headers=list(table.columns), disable_numparse=True)


def format_table(frame) -> str:
    return tabulate(frame.astype(object).values.tolist(), headers=list(frame.columns), disable_numparse=True)


def format_comparison(comparison) -> str:
    lines = [
        f"\nagainst the baseline: {len(comparison.regressions)} right -> wrong, {len(comparison.fixes)} wrong -> right"
        + (f", {len(comparison.added)} new" if comparison.added else "")
        + (f", {len(comparison.removed)} removed" if comparison.removed else "")
    ]
    for title, frame in (("right -> wrong", comparison.regressions), ("wrong -> right", comparison.fixes)):
        if len(frame):
            lines.append(f"\n{title}:")
            lines.append(tabulate(frame[["id", "question", "before", "now"]].values.tolist(),
                                  headers=["id", "question", "before", "now"], maxcolwidths=[None, 40, 40, 40]))  # fmt: skip
    return "\n".join(lines)


def format_failures(results, limit: int) -> str:
    wrong = results[~results["correct"].astype(bool)]
    if not len(wrong):
        return "\nno failing questions"
    shown = wrong if limit == 0 else wrong.head(limit)
    rows = [[r["id"], r["question"], r["expected"], shorten(r["got"], 160)] for r in shown.to_dict("records")]
    text = f"\nfailing questions ({len(wrong)} of {len(results)}):\n" + tabulate(
        rows, headers=list(FAILURE_COLUMNS), maxcolwidths=[None, 40, 36, 50]
    )
    if len(shown) < len(wrong):
        text += f"\n... and {len(wrong) - len(shown)} more (--max-failures 0 prints all; --out writes them all)"
    return text


def _fmt(value, column: str) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "" if column in ("gate", "status", "baseline", "change") else "n/a"
    if isinstance(value, float):
        return f"{value:+.3f}" if column == "change" else f"{value:.3f}"
    return str(value)
