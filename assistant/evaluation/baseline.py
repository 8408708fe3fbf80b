"""Compare a run with an earlier one: which questions went from right to wrong, and back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from assistant.errors import ConfigError
from assistant.evaluation.metrics import MRR_K, RANK_KS
from assistant.evaluation.scoring import LIST_COLUMNS, summarize


@dataclass(frozen=True)
class Comparison:
    """Per-question changes against a baseline results table."""

    regressions: pd.DataFrame  # right before, wrong now
    fixes: pd.DataFrame  # wrong before, right now
    added: list[str]  # ids only in the new run
    removed: list[str]  # ids only in the baseline
    baseline_summary: dict[str, Any] | None  # None when the baseline table lacks metric columns


def load_results(path: str | Path) -> pd.DataFrame:
    """Read an earlier per-question results CSV (or a ``--out`` folder holding ``results.csv``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.is_file():
        raise ConfigError(f"--baseline {path}: results file not found")
    try:
        df = pd.read_csv(path, dtype={"id": str}, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--baseline {path}: not a results CSV ({exc})") from None
    missing = [c for c in ("id", "correct") if c not in df.columns]
    if missing:
        raise ConfigError(f"--baseline {path}: results CSV lacks column(s) {', '.join(missing)}")
    bad = ~df["correct"].astype(str).str.lower().isin(["true", "false"])
    if bad.any():
        line = int(bad.to_numpy().nonzero()[0][0]) + 2
        raise ConfigError(f"--baseline {path}:{line}: 'correct' must be True or False, got {df['correct'][line - 2]!r}")
    df["correct"] = df["correct"].astype(str).str.lower() == "true"
    for col in LIST_COLUMNS:
        if col in df.columns:
            df[col] = [str(v).split("|") if isinstance(v, str) and v else [] for v in df[col]]
    if df["id"].duplicated().any():
        raise ConfigError(f"--baseline {path}: duplicate id {df['id'][df['id'].duplicated()].iloc[0]!r}")
    return df


def results_csv_frame(results: pd.DataFrame) -> pd.DataFrame:
    """The results table as written to results.csv: list cells joined with "|"."""
    return results.assign(**{c: results[c].map("|".join) for c in LIST_COLUMNS if c in results.columns})


def compare(results: pd.DataFrame, baseline: pd.DataFrame) -> Comparison:
    """Which questions went from right to wrong (and back) since ``baseline``."""
    before = baseline.set_index("id")
    now = results.set_index("id")
    common = [i for i in now.index if i in before.index]
    cols = ["question", "expected", "got"]

    def changed(was: bool) -> pd.DataFrame:
        ids = [i for i in common if bool(before.at[i, "correct"]) == was and bool(now.at[i, "correct"]) != was]
        frame = now.loc[ids, cols].copy()
        frame.insert(2, "before", [before.at[i, "got"] if "got" in before.columns else "" for i in ids])
        return frame.rename(columns={"got": "now"}).reset_index()

    needed = {"answerable", "answered", "correct", "n_citations", "n_relevant_citations", "latency_ms",
              f"mrr@{MRR_K}", *[f"hit@{k}" for k in RANK_KS]}  # fmt: skip
    base_summary = summarize(baseline) if needed <= set(baseline.columns) else None
    return Comparison(
        regressions=changed(True),
        fixes=changed(False),
        added=[i for i in now.index if i not in before.index],
        removed=[i for i in before.index if i not in now.index],
        baseline_summary=base_summary,
    )
