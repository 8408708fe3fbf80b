"""When may the verifier be skipped? Replays every tuning question both ways and picks the cut.

Issue 14: the verifier (all-mpnet-base-v2) costs one more encoding per question. A question whose
retriever-only evidence is already decisive (p(answerable) under the `--verifier none` default
model at or above a cut) can be answered as `--verifier none` answers it. This script asks every
question of the TUNING data twice with the same assistant: once as shipped (verifier always asked)
and once with the verifier always skipped, recording the retriever-only p(answerable). Any cut's
outcome is then known exactly (each question is answered alone), so every cut is replayed offline:
per corpus, every metric with the cut against the verifier-always path, the share of questions
skipped, and how many questions each metric gained or lost.

Tuning data only: the bundled corpus with evals/gold.jsonl and evals/dev.jsonl, the tuning corpora
of evals/corpora/suite.json with their gold sets, StackFAQ's even threads (the public set in
../shared/benchmarks/stackfaq, read at run time) and, for refusals, every answerable question asked
again with its answer left out (the leave-out simulation). evals/test.jsonl and the test corpora
are never read.

    python scripts/verifier_skip.py --out skip-out      # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_suite import discover

from assistant.core.pipeline import Assistant
from assistant.evaluation.gold import load_gold
from assistant.evaluation.scoring import evaluate, simulate_unanswerable, summarize

ROOT = Path(__file__).resolve().parent.parent
STACKFAQ = ROOT.parent / "shared" / "benchmarks" / "stackfaq"
CUTS = (None, 0.999, 0.995, 0.99, 0.98, 0.97, 0.95, 0.9, 0.8, 0.0)
METRICS = ("answerable_accuracy", "unanswerable_accuracy", "hit@1", "lead_accuracy", "answer_precision",
           "citation_precision")  # fmt: skip


def tuning_sets(stackfaq: Path) -> list[tuple[str, tuple[Path, ...], list]]:
    out = []
    for c in discover(ROOT / "evals" / "corpora"):
        if c.split != "tuning":
            continue
        golds = [ROOT / "evals" / "gold.jsonl", ROOT / "evals" / "dev.jsonl"] if c.name == "bundled" else [c.gold]
        out.append((c.name, c.files, [q for g in golds for q in load_gold(g)]))
    if (stackfaq / "corpus.jsonl").is_file():
        even = [q for q in load_gold(stackfaq / "queries.jsonl") if int(q.id[1:4]) % 2 == 0]
        out.append(("stackfaq-even", (stackfaq / "corpus.jsonl",), even))
    return out


def rows_both_ways(assistant: Assistant, gold: list) -> tuple[pd.DataFrame, pd.DataFrame, list[float]]:
    """(verifier-always rows, verifier-skipped rows, retriever-only p(answerable)), leave-outs appended."""
    frames = {}
    for cut in (None, 0.0):
        assistant.skip_verifier_at = cut
        real = evaluate(assistant, gold)
        sim = simulate_unanswerable(assistant, gold)
        frames[cut] = pd.concat([real, sim.drop(columns=["simulated", "left_out"])], ignore_index=True)
    assistant.skip_verifier_at = None
    p_fast = frames[0.0]["confidence"].astype(float).tolist()
    return frames[None], frames[0.0], p_fast


def replay(full: pd.DataFrame, fast: pd.DataFrame, p_fast: list[float], cut: float | None) -> tuple[pd.DataFrame, float]:
    take = [cut is not None and p >= cut for p in p_fast]
    rows = pd.DataFrame([fast.iloc[i] if t else full.iloc[i] for i, t in enumerate(take)]).reset_index(drop=True)
    return rows, sum(take) / max(1, len(take))


def changed(full: pd.DataFrame, rows: pd.DataFrame, column: str) -> tuple[int, int]:
    """(questions lost, questions gained) on a per-question 0/1 column, against the verifier-always rows."""
    before = full[column].fillna(0).astype(float) > 0.5
    after = rows[column].fillna(0).astype(float) > 0.5
    return int((before & ~after).sum()), int((~before & after).sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("skip-out"))
    ap.add_argument("--stackfaq", type=Path, default=STACKFAQ)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, files, gold in tuning_sets(args.stackfaq):
            assistant, _ = Assistant.open(list(files), Path(tmp) / name, verifier="mpnet")
            full, fast, p_fast = rows_both_ways(assistant, gold)
            base = summarize(full)
            for cut in CUTS:
                rows, skipped = replay(full, fast, p_fast, cut)
                summary = summarize(rows)
                row = {"corpus": name, "cut": "never" if cut is None else cut, "skipped": round(skipped, 3),
                       "n": len(full)}  # fmt: skip
                for metric in METRICS:
                    row[metric] = summary.get(metric)
                    b, v = base.get(metric), summary.get(metric)
                    row[f"d_{metric}"] = None if b is None or v is None or math.isnan(b) else round(v - b, 4)
                for column in ("correct", "hit@1", "lead_correct"):
                    lost, gained = changed(full, rows, column)
                    row[f"{column} -/+"] = f"-{lost}/+{gained}"
                table.append(row)
                print(json.dumps(row), flush=True)
    df = pd.DataFrame(table)
    df.to_csv(args.out / "verifier_skip.csv", index=False)
    print(df.to_markdown(index=False, floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
