"""Lexical probe: does hybrid retrieval gain over dense when the query is a few words of the answer?

No public lexical short-answer FAQ set is available here, so this builds one from any corpus:
for a seeded sample of passages, the query is 2-4 words taken from the passage's own answer
text (either its rarest words, or words picked at random), and the passage is the one right
answer. Such keyword queries are where BM25 is strong and sentence embeddings are weak; the
table shows hit@1 for each retriever, the fusion weights around the default, and the shipped
ranking (hybrid candidates re-ranked by the verifier).

    python scripts/lexical_probe.py --corpus ../shared/benchmarks/stackfaq/corpus.jsonl \
        --index-dir /tmp/probe-index

This is a synthetic probe, not a benchmark: it says whether fusion helps where lexical
evidence is strong, not by how much it helps real users.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.core.lexical import STOPWORDS  # noqa: E402
from assistant.core.pipeline import Assistant  # noqa: E402
from assistant.core.retrieval import RetrievalConfig, Retriever  # noqa: E402

WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]+")


def probe_queries(assistant: Assistant, n: int, seed: int, how: str) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    passages = assistant.index.passages
    lexical = assistant.retriever.lexical
    out = []
    for i in rng.sample(range(len(passages)), min(n, len(passages))):
        words = list(dict.fromkeys(w for w in WORD.findall(passages[i].text) if w.lower() not in STOPWORDS and len(w) > 2))
        if len(words) < 4:
            continue
        if how == "rare":
            words.sort(key=lambda w: -max((lexical.idf.get(t, 0.0) for t in lexical.tokenize(w)), default=0.0))
        else:
            rng.shuffle(words)
        out.append((" ".join(words[: rng.choice((2, 3, 4))]), passages[i].id))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", nargs="+", required=True)
    ap.add_argument("--index-dir", required=True)
    ap.add_argument("--n", type=int, default=400, help="passages sampled (default 400)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from tabulate import tabulate

    assistant, _ = Assistant.open(args.corpus, args.index_dir, use_calibration=False, verifier="mpnet")
    configs = [
        ("dense only", RetrievalConfig(mode="dense")),
        ("BM25 only", RetrievalConfig(mode="lexical")),
        ("hybrid, adaptive w=0.2 (the retriever's default)", RetrievalConfig()),
        ("hybrid, adaptive w=0.3", RetrievalConfig(lexical_weight=0.3)),
        ("hybrid, adaptive w=0.5", RetrievalConfig(lexical_weight=0.5)),
    ]
    rows = []
    for how in ("rare", "random"):
        queries = probe_queries(assistant, args.n, args.seed, how)
        vecs = assistant.encoder.encode([q for q, _ in queries])
        for label, cfg in configs:
            retriever = Retriever(assistant.index, assistant.encoder, cfg)
            hit = [retriever.search(q, 1, qvec=v)[0].passage.id == pid for (q, pid), v in zip(queries, vecs)]
            rows.append([f"{how} answer words", label, len(queries), f"{np.mean(hit):.3f}"])
        if assistant.verifier is not None:  # the shipped ranking: hybrid candidates re-ranked by the verifier
            hit = [
                assistant.verify(q, assistant.retriever.search(q, assistant.candidates, qvec=v))[0].passage.id == pid
                for (q, pid), v in zip(queries, vecs)
            ]
            rows.append([f"{how} answer words", "default: hybrid + verifier re-rank", len(queries), f"{np.mean(hit):.3f}"])
    print(tabulate(rows, headers=["queries", "retriever", "n", "hit@1"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
