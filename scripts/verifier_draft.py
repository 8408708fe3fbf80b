"""May the verifier's question encoding run in int8? Replays every tuning question both ways, picks the cut.

Issue 14: the verifier (all-mpnet-base-v2) encoding a question costs ~20-30 ms in fp32 on two
cores and ~5 ms after dynamic int8 quantisation. `--verifier mpnet-int8` (int8 question AND index
vectors, its own index) answers 16 StackFAQ questions differently, more than the issue allows.
This script keeps the fp32 index and changes only how the *question* is encoded, through the
product's own switch (`Assistant.draft_at`):

- fp32:  the verifier's fp32 model encodes every question it hears (draft_at None);
- draft: the int8 export of the same model encodes it, scored against the same fp32 index vectors,
         and that outcome is always kept (draft_at 0.5);

and records, per question, the draft's p(answerable), so every cut (the draft's outcome kept when
p >= cut or p <= 1 - cut, else the fp32 one: what `draft_at` = cut does) is replayed offline
exactly: each question is answered alone. Questions the retriever alone decides
(`SKIP_VERIFIER_AT`) are answered the same both ways and count as not drafted.

Tuning data only (as scripts/verifier_skip.py): the bundled corpus with evals/gold.jsonl and
evals/dev.jsonl, the tuning corpora of evals/corpora/suite.json, StackFAQ's even threads, and every
answerable question asked again with its answer left out. evals/test.jsonl and the test corpora
are never read.

    python scripts/verifier_draft.py --out draft-out      # ~15 min on 2 cores
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

from verifier_skip import METRICS, STACKFAQ, changed, tuning_sets

from assistant.core.pipeline import Assistant
from assistant.evaluation.scoring import evaluate, simulate_unanswerable, summarize

COLUMNS = ("correct", "hit@1", "lead_correct")
CUTS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995)


def rows(assistant: Assistant, gold: list) -> pd.DataFrame:
    """Every question's row (the leave-outs appended) and whether the verifier heard it (``heard``:
    not decided by the retriever alone), read off ``Assistant.verifier_use`` after each answer."""
    heard: list[bool] = []
    seen = dict(assistant.verifier_use)

    def note(_q, _answer) -> None:
        now = dict(assistant.verifier_use)
        heard.append(now.get("skipped", 0) == seen.get("skipped", 0))  # the warm-up lands in the first row
        seen.update(now)

    real = evaluate(assistant, gold, on_result=note)
    sim = simulate_unanswerable(assistant, gold, on_result=note)
    out = pd.concat([real, sim.drop(columns=["simulated", "left_out"])], ignore_index=True)
    out["heard"] = heard
    return out


def replay(full: pd.DataFrame, draft: pd.DataFrame, cut: float) -> tuple[pd.DataFrame, float]:
    """The rows ``draft_at`` = cut gives, and the share of questions whose draft outcome it keeps."""
    p = draft["p_draft"].astype(float)
    take = (draft["drafted"].astype(bool) & ((p >= cut) | (p <= 1.0 - cut))).tolist()
    rows = pd.DataFrame([draft.iloc[i] if t else full.iloc[i] for i, t in enumerate(take)]).reset_index(drop=True)
    return rows, sum(take) / max(1, len(take))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("draft-out"))
    ap.add_argument("--stackfaq", type=Path, default=STACKFAQ)
    ap.add_argument("--only", nargs="*", help="corpus names to run (default: all tuning sets)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, files, gold in tuning_sets(args.stackfaq):
            if args.only and name not in args.only:
                continue
            assistant, _ = Assistant.open(list(files), Path(tmp) / name, verifier="mpnet")
            if assistant.verifier is None or assistant.verifier.draft_encoder() is None:
                raise SystemExit(f"{name}: the verifier has no int8 draft (an ONNX export made before it held one?)")
            frames = {}
            for mode, draft_at in (("fp32", None), ("draft", 0.5)):
                assistant.draft_at = draft_at
                frames[mode] = rows(assistant, gold)
            assistant.draft_at = None
            full, draft = frames["fp32"], frames["draft"]
            # p(answerable) of the outcome each draft row holds; skipped (retriever-decided) rows were never drafted
            draft["p_draft"] = draft["evidence.p_answer"].astype(float)
            draft["drafted"] = draft["heard"]
            full.to_csv(args.out / f"{name}-fp32.csv", index=False)
            draft.to_csv(args.out / f"{name}-draft.csv", index=False)
            for cut in CUTS:
                got, share = replay(full, draft, cut)
                base, other = summarize(full), summarize(got)
                row = {"corpus": name, "cut": cut, "drafted": round(share, 3), "n": len(full)}
                for metric in METRICS:
                    b, v = base.get(metric), other.get(metric)
                    row[f"d_{metric}"] = None if b is None or v is None or math.isnan(b) else round(v - b, 4)
                for column in COLUMNS:
                    lost, gained = changed(full, got, column)
                    row[f"{column} -/+"] = f"-{lost}/+{gained}"
                row["answered differs"] = int((full["answered"].astype(bool) != got["answered"].astype(bool)).sum())
                row["first sentence differs"] = int(
                    (full["first_sentence"].fillna("") != got["first_sentence"].fillna("")).sum()
                )
                table.append(row)
                print(json.dumps(row), flush=True)
    df = pd.DataFrame(table)
    df.to_csv(args.out / "verifier_draft.csv", index=False)
    print(df.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
