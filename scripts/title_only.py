"""Replay the title-only rule (``TitleOnly`` in assistant/core/stages.py) on the tuning data.

An answer is refused as ``not_stated`` when its passage matches the question only through the
words of the passage's question title: "Can I spread the cost of a refurbished phone over monthly
instalments?" answered from "### Can I return a refurbished phone?". This script asks every
question of the tuning sets with the rule off, reads for each answered one what the rule reads
(the share of the words left after the title's words that the passage uses, and the verifier's best
cosine of the question without them against the passage's sentences), and prints, for every pair
of bounds, the unanswerable questions it would refuse (caught) and the right answers it would lose.

Tuning data only: the bundled corpus with evals/dev.jsonl and evals/gold.jsonl, the suite's
tuning corpora (evals/corpora/suite.json) and StackFAQ's even threads. Test corpora and
evals/test.jsonl are never read.

    python scripts/title_only.py                    # ~3 min on 2 cores (indexes under .index/suite)
    python scripts/title_only.py --any-title        # also topic titles ("Shipping"): the variant not taken
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import corpus_suite as cs
from tabulate import tabulate

from assistant.core.contact import contact_request
from assistant.core.pipeline import Assistant
from assistant.core.stages import TitleOnly
from assistant.evaluation.gold import load_gold
from assistant.evaluation.scoring import score_answer
from assistant.models.onnx import MODEL_CACHE, open_encoder

ROOT = Path(__file__).resolve().parent.parent
STACKFAQ = ROOT.parent / "shared" / "benchmarks" / "stackfaq"
COSINES = (0.3, 0.35, 0.4, 0.45)
COVERAGES = (0.0, 0.25, 0.5)
MIN_REST = (1, 2, 3)


def readings(a: Assistant, gold, *, any_title: bool) -> list[dict]:
    """One row per gold question: answerable, right with the rule off, and what the rule reads."""
    by_id = {p.id: p for p in a.index.passages}
    rule = TitleOnly(a.verifier, a.retriever)
    a.title_only = None  # answered as without the rule
    rows = []
    for q in gold:
        ans = a.ask(q.question)
        row = {"id": q.id, "question": q.question, "answerable": q.answerable, "right": bool(score_answer(q, ans, by_id)["correct"])}
        if ans.answered and ans.sentences and not ans.evidence.get("contact") and contact_request(q.question) is None:
            lead = by_id[ans.sentences[0].passage_id]
            if any_title and not lead.title.rstrip().endswith("?"):
                lead = replace(lead, title=lead.title + "?")  # read a topic title as the rule reads a question title
            query = a.corrector.correct(a.cleaner.run(q.question))
            found = rule.read(query, lead, a.verified_sentences)
            if found is not None:
                row["coverage"], row["cosine"], row["rest"] = found
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index-root", default=str(ROOT / ".index" / "suite"), help="one index folder per corpus under this")
    ap.add_argument("--stackfaq", type=Path, default=STACKFAQ)
    ap.add_argument("--any-title", action="store_true", help="also read passages under a topic title")
    args = ap.parse_args(argv)
    encoder = open_encoder(None, Path(args.index_root) / MODEL_CACHE)
    sets = {}
    for c in cs.discover(cs.SUITE):
        if c.split != "tuning":
            continue  # test corpora are never read
        print(f"[{c.name}]", file=sys.stderr)
        a, _ = Assistant.open(list(c.files), Path(args.index_root) / c.name, encoder=encoder, verifier="mpnet")
        golds = [c.gold] + ([ROOT / "evals" / "gold.jsonl"] if c.name == "bundled" else [])
        sets[c.name] = [r for g in golds for r in readings(a, load_gold(g), any_title=args.any_title)]
    if args.stackfaq.is_dir():
        print("[stackfaq-even]", file=sys.stderr)
        a, _ = Assistant.open([args.stackfaq / "corpus.jsonl"], Path(args.index_root) / "stackfaq", encoder=encoder, verifier="mpnet")
        gold = [q for q in load_gold(args.stackfaq / "queries.jsonl") if int(q.id[1:4]) % 2 == 0]
        sets["stackfaq-even"] = readings(a, gold, any_title=args.any_title)

    def hit(r, cos, cov, rest):
        return "cosine" in r and r["coverage"] <= cov and r["cosine"] < cos and r["rest"] >= rest

    table = []
    for rest in MIN_REST:
        for cos in COSINES:
            for cov in COVERAGES:
                cells = []
                for rows in sets.values():
                    caught = sum(hit(r, cos, cov, rest) for r in rows if not r["answerable"] and not r["right"])
                    lost = sum(hit(r, cos, cov, rest) for r in rows if r["answerable"] and r["right"])
                    cells.append(f"+{caught} / -{lost}")
                total_c = sum(hit(r, cos, cov, rest) for rows in sets.values() for r in rows if not r["answerable"] and not r["right"])
                total_l = sum(hit(r, cos, cov, rest) for rows in sets.values() for r in rows if r["answerable"] and r["right"])
                table.append([rest, cos, cov, *cells, f"+{total_c} / -{total_l}"])
    print("unanswerable questions answered with the rule off that it refuses (+) / right answers it refuses (-)")
    print(tabulate(table, headers=["min_rest", "max_cosine", "max_rest_coverage", *sets, "all"]))
    rule = TitleOnly.__init__.__kwdefaults__
    print(f"\nrefused at the defaults (min_rest {rule['min_rest']}, max_cosine {rule['max_cosine']}, "
          f"max_rest_coverage {rule['max_rest_coverage']}):")
    for name, rows in sets.items():
        for r in rows:
            if hit(r, rule["max_cosine"], rule["max_rest_coverage"], rule["min_rest"]):
                kind = "unanswerable" if not r["answerable"] else ("answerable, right" if r["right"] else "answerable, wrong")
                print(f"  {name} {r['id']} ({kind}; cosine {r['cosine']:.3f}, coverage {r['coverage']:.2f}): {r['question']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
