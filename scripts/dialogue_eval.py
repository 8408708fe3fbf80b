"""Score follow-up resolution on a dialogue set: each row asked in its conversation, and alone.

    python scripts/dialogue_eval.py evals/dialogues.jsonl [--index-dir DIR] [--show]

Prints, per category and in all: answerable follow-ups answered with every must_include fact,
follow-ups to refuse refused, and the same with the history ignored (the message alone).
Tuning data only: evals/dialogues-test.jsonl is held out (run once, for reporting).
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path

from assistant.core.pipeline import Assistant
from assistant.evaluation.gold import load_gold
from assistant.evaluation.metrics import missing_facts
from assistant.settings import BUNDLED_CORPUS, offline_env

ROOT = Path(__file__).resolve().parent.parent


def right(q, answer) -> bool:
    """Answerable: answered with every fact; unanswerable: refused (a clarify reply is not an answer)."""
    if not q.answerable:
        return not answer.answered
    return answer.answered and not missing_facts(answer.answer, q.must_include)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gold", type=Path)
    parser.add_argument("--index-dir", default=str(ROOT / ".index" / "dialogue-eval"))
    parser.add_argument("--show", action="store_true", help="print every row that scores wrong in context")
    args = parser.parse_args()
    for key, value in offline_env().items():
        os.environ.setdefault(key, value)
    assistant, _ = Assistant.open([str(BUNDLED_CORPUS)], args.index_dir, verifier="mpnet")
    gold = load_gold(args.gold)
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # n, right in context, right alone
    for q in gold:
        ctx = assistant.ask(q.question, history=q.history)
        alone = assistant.ask(q.question)
        ok, ok_alone = right(q, ctx), right(q, alone)
        for key in (q.category, "answerable" if q.answerable else "to refuse", "all"):
            t = tally[key]
            t[0] += 1
            t[1] += ok
            t[2] += ok_alone
        if args.show and not ok:
            print(f"{q.id} [{q.category}] {q.history} -> {q.question!r}\n    resolved: {ctx.resolved_question!r}"
                  f"\n    got: {'refused ' + str(ctx.refusal_reason) if not ctx.answered else ctx.answer[:150]!r}")
    print(f"{'group':<18}{'n':>4}{'in context':>12}{'alone':>8}")
    for key in sorted(tally, key=lambda k: (k in ("all", "answerable", "to refuse"), k)):
        n, ok, ok_alone = tally[key]
        print(f"{key:<18}{n:>4}{ok / n:>12.3f}{ok_alone / n:>8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
