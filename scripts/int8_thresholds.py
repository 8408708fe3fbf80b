"""Refusal thresholds for the int8 verifier, fitted to agree with the fp32 verifier on tuning data.

Issue 14: the int8 verifier (`--verifier mpnet-int8`) reads questions about twice as fast as the
fp32 one, but its cosines sit on a slightly different scale, so the fp32 thresholds (answer when
``dense + 0.5 * margin`` reaches VERIFIER_THRESHOLD on plain-text passages, VERIFIER_FAQ_THRESHOLD
on FAQ rows) refuse a few questions fp32 answers and the other way round. This script asks every
TUNING question (and each answerable one again with its answer left out) once per verifier with a
refusal model that answers everything the verifier path can answer, records the features, and
replays every threshold offline: a question is answered at threshold t when it was answered
there and ``dense + 0.5 * margin >= t``. For each kind of passage (plain text, FAQ rows) it picks
the int8 threshold whose decisions agree most often with fp32's at the shipped thresholds (ties:
the one nearest fp32's), then prints per set: the agreement and every refusal metric for fp32,
int8 at fp32's thresholds and int8 at the fitted ones; and the pair (within 0.03 of fp32's) whose
worst loss, in questions, of any refusal metric on any set is smallest (then the most agreement).
Issue 14 lets the int8 verifier become the default only if that worst loss is at most one question.

The replay leaves out one thing the real run does: a question refused as not covered may still be
answered from the passage with the store's contact details. `python -m benchmarks.verifier_int8`
runs the real thing afterwards.

Tuning data only (the sets of scripts/verifier_skip.py: the bundled corpus with evals/gold.jsonl
and evals/dev.jsonl, the tuning corpora of evals/corpora/suite.json, StackFAQ's even threads).
evals/test.jsonl, the test corpora and StackFAQ's odd threads are never read.

    python scripts/int8_thresholds.py --work /tmp/int8-thresholds --out int8-thresholds.json   # ~15 min
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from verifier_skip import STACKFAQ, tuning_sets

from assistant.core.pipeline import Assistant
from assistant.core.refusal import VERIFIER_FAQ_THRESHOLD, VERIFIER_MARGIN_WEIGHT, VERIFIER_THRESHOLD, RefusalModel
from assistant.evaluation.scoring import evaluate, simulate_unanswerable
from assistant.models.onnx import MODEL_CACHE, open_encoder

KINDS = ("mpnet", "mpnet-int8")
GRID = np.round(np.arange(0.30, 0.80001, 0.005), 3)


def rows_for(name: str, files, gold, work: Path, kind: str) -> pd.DataFrame:
    """Every question answered wherever the verifier path can answer; features kept for the replay."""
    index_dir = work / name
    encoder = open_encoder(None, index_dir / MODEL_CACHE)
    everything = RefusalModel.default(-10.0, faq_threshold=-10.0, margin_weight=VERIFIER_MARGIN_WEIGHT, verifier=kind)
    assistant, _ = Assistant.open(
        [str(f) for f in files], index_dir, encoder=encoder, verifier=kind, use_calibration=False,
        default_refusal=everything,
    )  # fmt: skip
    real = evaluate(assistant, gold)
    sim = simulate_unanswerable(assistant, gold)
    frame = pd.concat([real.assign(simulated=False), sim.drop(columns=["left_out"])], ignore_index=True)
    frame["set"] = name
    frame["score"] = frame["evidence.dense"].astype(float) + VERIFIER_MARGIN_WEIGHT * frame["evidence.margin"].astype(float)
    frame["faq_row"] = frame["evidence.faq"].astype(float) > 0.5
    return frame[["set", "id", "simulated", "answerable", "answered", "correct", "score", "faq_row"]]


def decide(frame: pd.DataFrame, plain: float, faq: float) -> pd.Series:
    cut = np.where(frame["faq_row"], faq, plain)
    return frame["answered"].astype(bool) & (frame["score"] >= cut - 1e-12)


KEY = ["set", "id", "simulated"]


def fp32_decisions(fp32: pd.DataFrame) -> dict[tuple, bool]:
    """fp32's answered/refused at its shipped thresholds, by (set, id, simulated): what int8 is compared with."""
    return dict(zip(zip(*(fp32[k] for k in KEY)), decide(fp32, VERIFIER_THRESHOLD, VERIFIER_FAQ_THRESHOLD)))


def agreement(reference: dict[tuple, bool], frame: pd.DataFrame, answered: pd.Series) -> int:
    return sum(reference.get(k) == a for k, a in zip(zip(*(frame[c] for c in KEY)), answered))


def metrics(frame: pd.DataFrame, answered: pd.Series) -> dict[str, float]:
    ans = frame["answerable"].astype(bool)
    sim = frame["simulated"].astype(bool)
    right = frame["correct"].astype(bool)  # for answerable rows: right when answered (as run: everything answered)
    out = {
        "answerable_accuracy": float((answered & right)[ans].mean()) if ans.any() else float("nan"),
        "answerable_answered": float(answered[ans].mean()) if ans.any() else float("nan"),
        "unanswerable_refused": float((~answered)[~ans & ~sim].mean()) if (~ans & ~sim).any() else float("nan"),
        "simulated_refused": float((~answered)[sim].mean()) if sim.any() else float("nan"),
    }
    return {k: round(v, 4) for k, v in out.items()}


COUNTED = {"answerable_accuracy": "answerable", "unanswerable_refused": "unanswerable", "simulated_refused": "simulated"}


def losses(fp32: pd.DataFrame, int8: pd.DataFrame, plain: float, faq: float) -> dict[tuple[str, str], float]:
    """(set, metric) -> questions int8 at (plain, faq) loses against fp32 at its shipped thresholds."""
    out = {}
    for name in fp32["set"].unique():
        a, b = fp32[fp32["set"] == name], int8[int8["set"] == name]
        ma, mb = metrics(a, decide(a, VERIFIER_THRESHOLD, VERIFIER_FAQ_THRESHOLD)), metrics(b, decide(b, plain, faq))
        ans, sim = b["answerable"].astype(bool), b["simulated"].astype(bool)
        n = {"answerable": int(ans.sum()), "unanswerable": int((~ans & ~sim).sum()), "simulated": int(sim.sum())}
        for metric, rows in COUNTED.items():
            if n[rows]:
                out[(name, metric)] = round((ma[metric] - mb[metric]) * n[rows], 1)
    return out


def fit_worst(fp32: pd.DataFrame, int8: pd.DataFrame, grid: np.ndarray) -> tuple[float, float, float]:
    """The (plain, faq) pair whose worst loss on any set and metric is smallest (then most agreement)."""
    reference = fp32_decisions(fp32)
    best = None
    for plain in grid:
        for faq in grid + (VERIFIER_FAQ_THRESHOLD - VERIFIER_THRESHOLD):
            worst = max(losses(fp32, int8, plain, faq).values())
            agree = agreement(reference, int8, decide(int8, plain, faq))
            key = (worst, -agree, abs(plain - VERIFIER_THRESHOLD) + abs(faq - VERIFIER_FAQ_THRESHOLD))
            if best is None or key < best[0]:
                best = (key, float(round(plain, 3)), float(round(faq, 3)))
    return best[1], best[2], best[0][0]


def fit(fp32: pd.DataFrame, int8: pd.DataFrame) -> dict[str, float]:
    """Per kind of passage, the int8 threshold that agrees most with fp32 at its shipped thresholds."""
    merged = fp32.merge(int8, on=KEY, suffixes=("_32", "_8"))
    reference = fp32_decisions(fp32)
    want = np.array([reference[k] for k in zip(*(merged[c] for c in KEY))])
    chosen = {}
    for key, faq_row, shipped in (("plain", False, VERIFIER_THRESHOLD), ("faq", True, VERIFIER_FAQ_THRESHOLD)):
        # a row counts for the kind its int8 evidence matched (that is the threshold it meets)
        rows = merged["faq_row_8"].values == faq_row
        answered = merged["answered_8"].astype(bool).values[rows]
        score = merged["score_8"].values[rows]
        agree = [int(((answered & (score >= t - 1e-12)) == want[rows]).sum()) for t in GRID]
        best = max(agree)
        ties = [t for t, a in zip(GRID, agree) if a == best]
        chosen[key] = float(min(ties, key=lambda t: (abs(t - shipped), t)))
        chosen[f"{key}_rows"] = int(rows.sum())
        chosen[f"{key}_agree"] = best
        chosen[f"{key}_agree_at_shipped"] = agree[int(np.argmin(np.abs(GRID - shipped)))]
    return chosen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="bench-out/int8-thresholds", help="index folders, one per set (reused)")
    p.add_argument("--out", default="bench-out/int8-thresholds.json", help="where to write the figures")
    p.add_argument("--stackfaq", default=str(STACKFAQ), help="StackFAQ folder (its even threads are tuning data)")
    args = p.parse_args(argv)
    work = Path(args.work)
    frames = {k: [] for k in KINDS}
    for name, files, gold in tuning_sets(Path(args.stackfaq)):
        for kind in KINDS:
            print(f"{name}: {kind} ({len(gold)} questions and their leave-outs)", file=sys.stderr, flush=True)
            frames[kind].append(rows_for(name, files, gold, work, kind))
    fp32, int8 = (pd.concat(frames[k], ignore_index=True) for k in KINDS)
    for kind, frame in zip(KINDS, (fp32, int8)):  # the replay's inputs, to rerun other fits offline
        frame.to_csv(work / f"rows-{kind}.csv", index=False)
    chosen = fit(fp32, int8)
    # The thresholds shipped: smallest worst loss (in questions) of any metric on any set, then agreement.
    near = np.round(np.arange(VERIFIER_THRESHOLD - 0.03, VERIFIER_THRESHOLD + 0.03001, 0.005), 3)
    chosen["worst_plain"], chosen["worst_faq"], chosen["worst_loss"] = fit_worst(fp32, int8, near)
    print(f"smallest worst loss: plain text {chosen['worst_plain']}, FAQ rows {chosen['worst_faq']} "
          f"(worst loss {chosen['worst_loss']} questions)")
    print(f"fitted int8 thresholds: plain text {chosen['plain']}, FAQ rows {chosen['faq']} "
          f"(fp32: {VERIFIER_THRESHOLD}, {VERIFIER_FAQ_THRESHOLD})")  # fmt: skip
    variants = {
        "fp32": (fp32, VERIFIER_THRESHOLD, VERIFIER_FAQ_THRESHOLD),
        "int8, fp32 thresholds": (int8, VERIFIER_THRESHOLD, VERIFIER_FAQ_THRESHOLD),
        "int8, most agreement": (int8, chosen["plain"], chosen["faq"]),
        "int8, smallest worst loss": (int8, chosen["worst_plain"], chosen["worst_faq"]),
    }
    table = []
    reference = fp32_decisions(fp32)
    for name in fp32["set"].unique():
        for label, (frame, plain, faq) in variants.items():
            part = frame[frame["set"] == name].reset_index(drop=True)
            answered = decide(part, plain, faq)
            agree = agreement(reference, part, answered)
            table.append({"set": name, "verifier": label, "rows": len(part), "decisions_differ": len(part) - agree,
                          **metrics(part, answered)})  # fmt: skip
    out = {"fitted": chosen, "shipped": {"plain": VERIFIER_THRESHOLD, "faq": VERIFIER_FAQ_THRESHOLD}, "table": table}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(pd.DataFrame(table).to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
