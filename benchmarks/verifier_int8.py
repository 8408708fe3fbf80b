"""The int8 verifier against the fp32 one: do its answer-or-refuse decisions and its ranking agree?

Runs the tuning sets (evals/dev.jsonl on the bundled corpus; StackFAQ, which has no
unanswerable questions, so its refusals come from the leave-out simulation) through the same
main index twice, once per verifier, and reports per set: how many questions get a different
answered/refused decision (real and simulated), hit@1 and accuracy deltas, the summary
metrics side by side, and the verifier's question encoding time and the whole answer's
latency (median, p95).

    python -m benchmarks.verifier_int8 --out bench-out/verifier-int8.json [--sets dev,stackfaq]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "dev": (ROOT / "corpus", ROOT / "evals" / "dev.jsonl"),
    "gold": (ROOT / "corpus", ROOT / "evals" / "gold.jsonl"),
    "stackfaq": (ROOT.parent / "shared" / "benchmarks" / "stackfaq" / "corpus.jsonl",
                 ROOT.parent / "shared" / "benchmarks" / "stackfaq" / "queries.jsonl"),
    # the tuning corpora of the suite (evals/corpora/suite.json; its test corpora are never used here)
    "bike-shop": (ROOT / "evals" / "corpora" / "bike-shop" / "speichenwerk-faq.md", ROOT / "evals" / "corpora" / "bike-shop" / "gold.jsonl"),
    "software-subscription": (ROOT / "evals" / "corpora" / "software-subscription" / "terms.txt",
                              ROOT / "evals" / "corpora" / "software-subscription" / "gold.jsonl"),
    "restaurant": (ROOT / "evals" / "corpora" / "restaurant" / "helpdesk-export.csv", ROOT / "evals" / "corpora" / "restaurant" / "gold.jsonl"),
}
KINDS = ("mpnet", "mpnet-int8")


def _pct(values, q: float) -> float:
    return round(float(np.percentile(np.asarray(values, dtype=float), q)), 2)


def measure(name: str, corpus: Path, gold_path: Path, work: Path, log) -> dict:
    import assistant.evaluation.run as ev
    from assistant.core.pipeline import Assistant
    from assistant.evaluation.gold import load_gold
    from assistant.models.onnx import MODEL_CACHE, open_encoder

    gold = load_gold(gold_path)
    index_dir = work / name
    encoder = open_encoder(None, index_dir / MODEL_CACHE, log=log)
    runs, encode_ms, build_s = {}, {}, {}
    for kind in KINDS:
        t0 = time.perf_counter()
        assistant, _ = Assistant.open([str(corpus)], index_dir, encoder=encoder, verifier=kind, use_calibration=False, log=log)
        build_s[kind] = round(time.perf_counter() - t0, 1)
        runs[kind] = ev.run_eval(assistant, gold, simulate=True)
        questions = [q.question for q in gold]
        assistant.verifier.embed(questions[0])
        times = []
        for q in questions:
            t = time.perf_counter()
            assistant.verifier.embed(q)
            times.append((time.perf_counter() - t) * 1000)
        encode_ms[kind] = times
        log(f"{name}: {kind} done")
    a, b = (runs[k] for k in KINDS)
    ra, rb = a.results.set_index("id"), b.results.set_index("id")
    sa, sb = a.simulated.set_index("id"), b.simulated.set_index("id")
    differ = {
        "answered": int((ra["answered"].astype(bool) != rb["answered"].astype(bool)).sum()),
        "correct": int((ra["correct"].astype(bool) != rb["correct"].astype(bool)).sum()),
        "hit@1": int((ra["hit@1"].fillna(-1) != rb["hit@1"].fillna(-1)).sum()),
        "simulated_answered": int((sa["answered"].astype(bool) != sb["answered"].astype(bool)).sum()),
    }
    metrics = sorted(set(a.summary) & set(b.summary))
    summary = {
        m: {"fp32": a.summary[m], "int8": b.summary[m]}
        for m in metrics if isinstance(a.summary[m], (int, float)) and isinstance(b.summary[m], (int, float))
    }
    # A metric's change counted in questions: the share's delta times the rows it is a share of.
    n = {"answerable": int(ra["answerable"].astype(bool).sum()), "all": len(ra), "simulated": len(sa)}
    return {
        "questions": n,
        "questions_that_differ": differ,
        "summary": summary,
        "verifier_encode_ms": {k: {"p50": _pct(v, 50), "p95": _pct(v, 95)} for k, v in encode_ms.items()},
        "answer_latency_ms": {
            k: {"p50": _pct(runs[k].results["latency_ms"], 50), "p95": _pct(runs[k].results["latency_ms"], 95)}
            for k in KINDS
        },
        "open_seconds": build_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="dev,stackfaq", help=f"comma list of {', '.join(SETS)}")
    p.add_argument("--work-dir", default="bench-out/verifier-int8", help="index folders (reused between runs)")
    p.add_argument("--out", default="bench-out/verifier-int8.json")
    args = p.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = {}
    for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        corpus, gold = SETS[name]
        results[name] = measure(name, corpus, gold, Path(args.work_dir), log)
        print(json.dumps({name: results[name]}, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
