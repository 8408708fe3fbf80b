"""Where a question's time goes: each stage of ``Assistant.ask`` timed per question.

    python scripts/profile_ask.py --corpus FAQ --questions Q.jsonl --index-dir DIR [--verifier none] [--limit 200]

Opens the assistant once (building the index if needed), asks every question twice (pass 1
finds the lazily embedded sentence cache empty, as ``assistant eval`` does; pass 2 asks again
with it filled, as a long-running server does) and times each stage by wrapping the stage
functions, counting a stage's own time only (time spent in a wrapped stage it calls is counted
for that one). Prints the latency percentiles of each pass, the stages' share of the slow
questions (over ``--slow-ms``), the slowest questions with their stages, and writes the rows
to ``--out`` as JSON. Nothing in the assistant changes; only the timings are added.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import assistant.core.answer as answer_mod
import assistant.core.pipeline as pipeline
from assistant.core.pipeline import Assistant
from assistant.core.spelling import WORD_RE


class StageClock:
    """Exclusive time per stage: a stage's time minus the wrapped stages it called."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = defaultdict(float)  # wall-clock
        self.cpu_ms: dict[str, float] = defaultdict(float)  # CPU time of the process (all its threads)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list] = []  # per open stage: [start, cpu start, wall in children, cpu in children, label]

    def reset(self) -> None:
        self.ms.clear()
        self.cpu_ms.clear()
        self.calls.clear()

    def wrap(self, label, fn):
        """``fn`` timed as ``label`` (a string, or a function of the calling stage's label)."""

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            name = label if isinstance(label, str) else label(self._stack[-1][4] if self._stack else "")
            frame = [time.perf_counter(), time.process_time(), 0.0, 0.0, name]
            self._stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self._stack.pop()
                wall, cpu = time.perf_counter() - frame[0], time.process_time() - frame[1]
                self.ms[name] += (wall - frame[2]) * 1000
                self.cpu_ms[name] += (cpu - frame[3]) * 1000
                self.calls[name] += 1
                if self._stack:
                    self._stack[-1][2] += wall
                    self._stack[-1][3] += cpu

        return timed


def instrument(assistant: Assistant, clock: StageClock) -> None:
    """Wrap the stages of ``assistant.ask`` (on this instance and the modules it calls) with ``clock``."""
    r = assistant.retriever
    lex = r.lexical  # built now, not inside the first question
    corrector = assistant.corrector
    corrector.correct = clock.wrap("typo correction", corrector.correct)
    assistant.cleaner.run = clock.wrap("clean", assistant.cleaner.run)
    pipeline.split_question = clock.wrap("split parts", pipeline.split_question)
    pipeline.compose = clock.wrap("compose", pipeline.compose)
    assistant.encoder.encode = clock.wrap(
        lambda caller: "encode sentences (MiniLM)" if caller.startswith("lazy") else "encode question (MiniLM)",
        assistant.encoder.encode,
    )
    r.dense_scores = clock.wrap("dense scores", r.dense_scores)
    lex.scores = clock.wrap("BM25 scores", lex.scores)
    lex.strength = clock.wrap("lexical strength", lex.strength)
    lex.coverage = clock.wrap("lexical coverage", lex.coverage)
    r.search = clock.wrap("search (rest)", r.search)
    r.sentence_scores = clock.wrap("sentence scores", r.sentence_scores)
    r._lazy_sentences = clock.wrap("lazy sentences (split)", r._lazy_sentences)
    assistant.passage_indices = clock.wrap("leave-out ids", assistant.passage_indices)
    assistant.decider.features = clock.wrap("evidence", assistant.decider.features)
    # a frozen dataclass: set the instance attribute the way its own __init__ does
    object.__setattr__(assistant.refusal, "probability", clock.wrap("refusal model", assistant.refusal.probability))
    if assistant.verifier is not None:
        v = assistant.verifier
        v.encoder.encode = clock.wrap("encode (verifier)", v.encoder.encode)
        v.passage_scores = clock.wrap("verifier passage scores", v.passage_scores)
        assistant.reranker.run_many = clock.wrap("verify (rest)", assistant.reranker.run_many)


def profile(assistant: Assistant, questions: list[str], clock: StageClock) -> list[dict]:
    rows = []
    known = assistant.corrector.known
    for q in questions:
        clock.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        ans = assistant.ask(q)
        total, cpu = (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
        words = WORD_RE.findall(q)
        rows.append({
            "question": q, "chars": len(q), "words": len(q.split()),
            "unknown_words": sum(1 for w in words if len(w) >= 4 and w.lower() not in known),
            "parts": len(answer_mod.split_question(q)),  # pipeline's name is the wrapped one
            "answered": bool(getattr(ans, "answered", False)), "ms": total, "cpu_ms": cpu,
            "stages": {k: round(v, 3) for k, v in clock.ms.items()},
            "cpu_stages": {k: round(v, 3) for k, v in clock.cpu_ms.items()},
            "calls": dict(clock.calls),
        })
    return rows


def summary(rows: list[dict], slow_ms: float, key: str = "cpu") -> dict:
    """Percentiles and per-stage means; ``key`` "cpu" uses CPU time (steady on a shared machine), "" wall time."""
    total, stage_key = ("cpu_ms", "cpu_stages") if key == "cpu" else ("ms", "stages")
    ms = np.array([r[total] for r in rows])
    slow = [r for r in rows if r[total] > slow_ms]
    stages = sorted({k for r in rows for k in r[stage_key]})
    share = {s: float(sum(r[stage_key].get(s, 0.0) for r in slow)) for s in stages}
    mean_all = {s: float(np.mean([r[stage_key].get(s, 0.0) for r in rows])) for s in stages}
    mean_slow = {s: float(np.mean([r[stage_key].get(s, 0.0) for r in slow])) if slow else 0.0 for s in stages}
    wall = np.array([r["ms"] for r in rows])
    return {
        "n": len(rows), "measure": total, "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
        "max_ms": float(ms.max()), f"over_{slow_ms:g}ms": len(slow),
        "wall_p50_ms": float(np.percentile(wall, 50)), "wall_p95_ms": float(np.percentile(wall, 95)),
        "stage_mean_ms_all": mean_all, "stage_mean_ms_slow": mean_slow,
        "stage_total_ms_slow": share,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", action="append", required=True)
    p.add_argument("--questions", required=True, help="JSONL with a 'question' field per line")
    p.add_argument("--index-dir", required=True)
    p.add_argument("--verifier", default="mpnet", choices=("mpnet", "none"))
    p.add_argument("--limit", type=int, default=0, help="first N questions only (0: all)")
    p.add_argument("--every", type=int, default=1, help="every Nth question (an even sample of the topics)")
    p.add_argument("--slow-ms", type=float, default=100.0)
    p.add_argument("--out", default="bench-out/profile-ask.json")
    args = p.parse_args(argv)
    questions = [json.loads(x)["question"] for x in Path(args.questions).read_text().splitlines() if x.strip()]
    questions = questions[:: max(1, args.every)]
    if args.limit:
        questions = questions[: args.limit]
    t0 = time.perf_counter()
    assistant, _ = Assistant.open(args.corpus, args.index_dir, verifier=args.verifier)
    print(f"opened in {time.perf_counter() - t0:.1f}s; {len(questions)} questions", file=sys.stderr)
    clock = StageClock()
    instrument(assistant, clock)
    for q in ("warm up", "how do I warm up the encoder"):  # ONNX sessions' first run
        assistant.ask(q)
    result = {}
    for name in ("pass1_cold_sentence_cache", "pass2_warm_sentence_cache"):
        rows = profile(assistant, questions, clock)
        result[name] = {"summary": summary(rows, args.slow_ms), "rows": rows}
        s = result[name]["summary"]
        print(f"\n{name}: CPU time p50 {s['p50_ms']:.1f} ms, p95 {s['p95_ms']:.1f} ms, max {s['max_ms']:.0f} ms, "
              f"{s[f'over_{args.slow_ms:g}ms']}/{s['n']} over {args.slow_ms:g} ms (wall p50 {s['wall_p50_ms']:.1f}, "
              f"p95 {s['wall_p95_ms']:.1f} ms)")
        print(f"  {'stage (CPU ms)':<26}{'mean all (ms)':>14}{'mean slow (ms)':>16}{'share of slow':>15}")
        tot = sum(s["stage_total_ms_slow"].values()) or 1.0
        for st in sorted(s["stage_mean_ms_all"], key=lambda k: -s["stage_mean_ms_slow"][k]):
            print(f"  {st:<26}{s['stage_mean_ms_all'][st]:>14.2f}{s['stage_mean_ms_slow'][st]:>16.2f}"
                  f"{s['stage_total_ms_slow'][st] / tot:>15.1%}")
        print("  slowest:")
        for r in sorted(rows, key=lambda r: -r["cpu_ms"])[:8]:
            top = sorted(r["cpu_stages"].items(), key=lambda kv: -kv[1])[:3]
            print(f"   {r['cpu_ms']:6.0f} ms  {r['chars']:4d} chars {r['parts']} parts {r['unknown_words']} unknown  "
                  + ", ".join(f"{k} {v:.0f}" for k, v in top) + f"  | {r['question'][:60]!r}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwritten to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
