"""Replay the title-only rule on the tuning data: measured, not shipped (docs/retrieval.md, section 7, fourth pass).

The rule refuses an answer as ``not_stated`` when its passage matches the question only through
the words of the passage's question title: "Can I spread the cost of a refurbished phone over
monthly instalments?" answered from "### Can I return a refurbished phone?". This script asks
every question of the tuning sets (the shipped pipeline, which does not apply the rule), reads for
each answered one what the rule reads (the share of the words left after the title's words that the
passage uses, how many are left, and the verifier's best cosine of the question without the
title's words against the passage's sentences), and prints, for every setting of its bounds, the
unanswerable questions it would refuse (caught) and the right answers it would lose.

Tuning data only: the bundled corpus with evals/dev.jsonl and evals/gold.jsonl, the suite's
tuning corpora (evals/corpora/suite.json) and StackFAQ's even threads. Test corpora and
evals/test.jsonl are never read.

    python scripts/title_only.py                    # ~1 min on 2 cores (indexes under .index/suite)
    python scripts/title_only.py --any-title        # also topic titles ("Shipping")
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import corpus_suite as cs
from tabulate import tabulate

from assistant.core.contact import contact_request
from assistant.core.lexical import STOPWORDS, TOKEN_RE
from assistant.core.pipeline import Assistant
from assistant.core.retrieval import encoder_text
from assistant.schema import Passage
from assistant.evaluation.gold import load_gold
from assistant.evaluation.scoring import score_answer
from assistant.models.onnx import MODEL_CACHE, open_encoder

ROOT = Path(__file__).resolve().parent.parent


def terms(text: str) -> list[tuple[str, str]]:
    """Each content word of ``text`` with its stem, in order: the BM25 index's analyser (its stop list,
    PyStemmer's English stemmer)."""
    import Stemmer

    words = [w for w in TOKEN_RE.findall(text.lower()) if w not in STOPWORDS]
    return list(zip(words, Stemmer.Stemmer("english").stemWords(words)))
STACKFAQ = ROOT.parent / "shared" / "benchmarks" / "stackfaq"
COSINES = (0.3, 0.35, 0.4, 0.45)
COVERAGES = (0.0, 0.25, 0.5)
MIN_REST = (1, 2, 3)


class TitleOnly:
    """An answer whose passage matches the question only through the words of its title.

    "Can I spread the cost of a refurbished phone over monthly instalments?" lands on "### Can I return
    a refurbished phone?" at a verifier cosine of 0.67 (answered at p 0.99): the two share "refurbished
    phone", and the passage names nothing else the question asks. ``run`` removes the words the question
    shares with the passage's title and, when the words left are mostly absent from the passage (at most
    ``max_rest_coverage`` of their stems in its title and text), reads what is left ("Can I spread the
    cost of a over monthly instalments?") against the passage's sentences with the verifier: a best
    cosine under ``max_cosine`` says the passage is about the thing asked, not about the asking. Only
    questions that ask at least ``min_rest`` words beyond the title are read (a word or two left most often
    reword the title: "Is travel insurance required?" under "Do I need travel insurance?"), and only
    sections headed by a question: their title says what they answer, while a topic title
    ("Shipping") names only the topic, so without its word "who pays for shipping?" loses what it asks.
    FAQ rows are not read either (the verifier does not index their sentences). Measured, not shipped:
    docs/retrieval.md, section 7, fourth pass.
    """

    def __init__(
        self, verifier, *, max_cosine: float = 0.35, max_rest_coverage: float = 0.25, min_rest: int = 3,
    ) -> None:  # fmt: skip
        self.verifier = verifier
        self.max_cosine = max_cosine
        self.max_rest_coverage = max_rest_coverage
        self.min_rest = min_rest

    def run(self, query: str, passage: Passage, sentence_scores) -> float | None:
        """The best cosine of the question without its title words against ``passage``'s sentences
        (``sentence_scores(vq, passage_id)``: the verifier's (start, end, cosine) per sentence) when the
        rule reads it; None when it does not apply (not a question title, no title word shared, fewer than
        ``min_rest`` other words, or the words left mostly in the passage)."""
        found = self.read(query, passage, sentence_scores, max_rest_coverage=self.max_rest_coverage, min_rest=self.min_rest)
        return None if found is None else found[1]

    def read(
        self, query: str, passage: Passage, sentence_scores, *, max_rest_coverage: float = 1.0, min_rest: int = 1,
    ) -> tuple[float, float, int] | None:  # fmt: skip
        """(share of the words left that the passage uses, best cosine of the question without the title's
        words, how many words are left); read only when at least ``min_rest`` words are left and at most
        ``max_rest_coverage`` of them are in the passage."""
        if not passage.title.rstrip().endswith("?"):
            return None  # a topic title ("Shipping") names no question: the rest of the question is the ask
        title = {stem for _, stem in terms(passage.title)}
        words = terms(query)
        shared = {w for w, stem in words if stem in title}
        rest = [stem for w, stem in words if w not in shared]
        if not shared or not rest or len(rest) < min_rest:
            return None  # one word left ("whats the luggage allowance" under "How much luggage can I bring?") rewords the title
        own = {stem for _, stem in terms(f"{passage.title} {passage.text}")}
        coverage = sum(stem in own for stem in rest) / len(rest)
        if coverage > max_rest_coverage:
            return None
        left = re.sub(r"\b(?:%s)\b" % "|".join(map(re.escape, sorted(shared))), " ", query, flags=re.I)
        vq = self.verifier.embed_many([encoder_text(re.sub(r"\s+", " ", left).strip())])[0]
        cosines = [c for _, _, c in sentence_scores(vq, passage.id)]
        return (coverage, max(cosines), len(rest)) if cosines else None


def readings(a: Assistant, gold, *, any_title: bool) -> list[dict]:
    """One row per gold question: answerable, right with the rule off, and what the rule reads."""
    by_id = {p.id: p for p in a.index.passages}
    rule = TitleOnly(a.verifier)
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
