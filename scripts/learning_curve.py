"""Learning from confirmed questions, measured on tuning data (docs/learning.md).

StackFAQ (../shared/benchmarks/stackfaq, tuning data; never copied into the repository): every
fifth thread (t004, t009, ...) is dropped from the corpus, so its questions are unanswerable.
Each remaining thread's questions are dealt into four folds by position (in id order): the last
fold is the test set; 0, 1, 2, 3 folds are given as confirmed links (0-75% history). "halves"
links the even positions and scores the odd ones. The same halves are also run on the full
corpus (every thread answerable). The bundled corpus runs the same curve on its tuning sets
(evals/dev.jsonl + evals/gold.jsonl; never evals/test.jsonl), whose unanswerable rows show the
refusal rate with and without links. ``--clusters`` measures how refused questions group by
meaning (StackFAQ queries against their threads) at several thresholds.

    nice -n 10 python scripts/learning_curve.py --work /tmp/learning-curve --json bench-out/learning.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STACKFAQ = ROOT.parent / "shared" / "benchmarks" / "stackfaq"
TUNING = (ROOT / "evals" / "dev.jsonl", ROOT / "evals" / "gold.jsonl")
HOLD_OUT_EVERY = 5  # thread numbers n with n % 5 == 4 are dropped from the corpus


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def stackfaq(folder: Path, work: Path, *, hold_out: bool, even: bool = False, untitled: bool = False):
    """(corpus file, gold questions) for StackFAQ, with every fifth thread held out when asked.

    ``even``: only the even-numbered threads (the tuning half; the fifth of them held out are
    every fifth even thread). ``untitled``: each entry's FAQ question is replaced by a title that
    says nothing ("Help topic 12"), so user questions meet only the answers' own words, as on an
    FAQ whose questions are worded unlike the customers' (the regime where links matter most).
    """
    from assistant.evaluation.gold import GoldQuestion

    rows = [json.loads(x) for x in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    queries = [json.loads(x) for x in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]

    def thread(entry_id: str) -> int:
        return int(entry_id[1:4])

    def dropped(entry_id: str) -> bool:
        n = thread(entry_id) // 2 if even else thread(entry_id)
        return hold_out and n % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1

    def kept(entry_id: str) -> bool:
        return not even or thread(entry_id) % 2 == 0

    name = "stackfaq" + ("-even" if even else "") + ("-untitled" if untitled else "") + ("-heldout" if hold_out else "-full")
    corpus = work / name / "corpus.jsonl"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    out = [
        {**r, "title": f"Help topic {thread(r['id'])}"} if untitled else r
        for r in rows if kept(r["id"]) and not dropped(r["id"])
    ]  # fmt: skip
    corpus.write_text("".join(json.dumps(r) + "\n" for r in out), encoding="utf-8")
    gold = [
        GoldQuestion(q["id"], q["question"], answerable=not dropped(q["id"]),
                     relevant_ids=() if dropped(q["id"]) else tuple(q["relevant_ids"]), source=str(folder), line=n)
        for n, q in enumerate(queries, 1) if kept(q["id"])
    ]  # fmt: skip
    return corpus, gold


def bundled():
    from assistant.evaluation.gold import load_gold

    gold = []
    for path in TUNING:
        gold += [q.__class__(**{**q.__dict__, "id": f"{path.stem}:{q.id}"}) for q in load_gold(path)]
    return ROOT / "corpus", gold


def run_curve(
    name: str, corpus: Path, gold, index_dir: Path, *, verifier: str, history, halves: bool, offsets=None, share=None
) -> list[dict]:
    from assistant.core.pipeline import Assistant
    from assistant.core.retrieval import RetrievalConfig
    from assistant.learning.simulate import simulate_learning
    from assistant.models.onnx import MODEL_CACHE, open_encoder

    encoder = open_encoder(None, index_dir / MODEL_CACHE, log=log)

    def open_with(links: Path | None):
        t0 = time.perf_counter()
        knobs = {} if share is None else {"learned_rank_share": share}
        if offsets:
            knobs.update(learned_offset=offsets[0], learned_section_offset=offsets[1])
        retrieval = RetrievalConfig(**knobs) if knobs else None
        assistant, stats = Assistant.open([str(corpus)], index_dir, encoder=encoder, verifier=verifier, retrieval=retrieval,
                                          use_calibration=False, learned=links, log=log)  # fmt: skip
        log(f"{name}: opened with {len(assistant.index.learned)} learned keys in {time.perf_counter() - t0:.1f}s ({stats.reason})")
        return assistant

    points = simulate_learning(open_with, gold, halves=halves, history=history,
                               on_point=lambda p: log(f"{name}: {p.to_dict()}"))  # fmt: skip
    return [{"set": name, **p.to_dict()} for p in points]


def offset_sweep(
    name: str, corpus: Path, gold, index_dir: Path, *, verifier: str, offsets, weights=None, shares=None, share=None,
    lexical=None,
) -> list[dict]:
    """The halves split scored at each learned_offset (one index with the even halves linked),
    and without links, for the refusal figures the offset must keep. With ``weights`` it sweeps
    RetrievalConfig.rerank_dense_weight instead (the default offsets), with and without links; with
    ``shares``, RetrievalConfig.learned_rank_share (the default offsets, with links)."""
    from dataclasses import replace

    from assistant.core.pipeline import Assistant
    from assistant.core.retrieval import RetrievalConfig
    from assistant.learning.links import save_links
    from assistant.learning.simulate import folds, history_links, score_point
    from assistant.models.onnx import MODEL_CACHE, open_encoder

    encoder = open_encoder(None, index_dir / MODEL_CACHE, log=log)
    fold = folds(gold)
    odd = [q for q in gold if fold.get(q.id, 0) % 2 == 1]
    even = [q for q in gold if q.id in fold and fold[q.id] % 2 == 0]
    test = [*odd, *(q for q in gold if not q.answerable)]
    base, _ = Assistant.open([str(corpus)], index_dir, encoder=encoder, verifier=verifier, use_calibration=False, log=log)
    rows = []
    for w in weights or ():
        a = Assistant(base.index, encoder, retrieval=RetrievalConfig(rerank_dense_weight=w), verifier=base.verifier)
        rows.append({"set": name, **score_point(a, "halves, no links", 0, test).to_dict(), "rerank_dense_weight": w})
        log(f"{name}: {rows[-1]}")
    for w in lexical or ():
        a = Assistant(base.index, encoder, retrieval=RetrievalConfig(lexical_weight=w), verifier=base.verifier)
        rows.append({"set": name, **score_point(a, "halves, no links", 0, test).to_dict(), "lexical_weight": w})
        log(f"{name}: {rows[-1]}")
    if not weights and not lexical:
        rows.append({"set": name, **replace(score_point(base, "halves, no links", 0, test)).to_dict(), "learned_offset": None})
    links = index_dir.parent / f"{index_dir.name}-halves.jsonl"
    save_links(links, history_links(even, base.index.passages))
    linked, _ = Assistant.open([str(corpus)], index_dir, encoder=encoder, verifier=verifier, use_calibration=False,
                               learned=links, log=log)  # fmt: skip
    for w in weights or ():
        a = Assistant(linked.index, encoder, retrieval=RetrievalConfig(rerank_dense_weight=w), verifier=linked.verifier)
        rows.append({"set": name, **score_point(a, "halves", len(even), test).to_dict(), "rerank_dense_weight": w})
        log(f"{name}: {rows[-1]}")
    for w in lexical or ():
        a = Assistant(linked.index, encoder, retrieval=RetrievalConfig(lexical_weight=w), verifier=linked.verifier)
        rows.append({"set": name, **score_point(a, "halves", len(even), test).to_dict(), "lexical_weight": w})
        log(f"{name}: {rows[-1]}")
    for share in shares or ():
        a = Assistant(linked.index, encoder, retrieval=RetrievalConfig(learned_rank_share=share), verifier=linked.verifier)
        rows.append({"set": name, **score_point(a, "halves", len(even), test).to_dict(), "learned_rank_share": share})
        log(f"{name}: {rows[-1]}")
    for offset in () if weights or shares or lexical else offsets:
        knobs = {} if share is None else {"learned_rank_share": share}
        a = Assistant(linked.index, encoder, verifier=linked.verifier,
                      retrieval=RetrievalConfig(learned_offset=offset, learned_section_offset=offset, **knobs))  # fmt: skip
        rows.append({"set": name, **score_point(a, "halves", len(even), test).to_dict(), "learned_offset": offset})
        log(f"{name}: {rows[-1]}")
    return rows


def cluster_scores(folder: Path, thresholds) -> list[dict]:
    """Grouping StackFAQ's queries by meaning against their threads: purity, and groups per thread."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from assistant.learning.clustering import group_questions
    from assistant.models.embeddings import SentenceTransformerEncoder

    queries = [json.loads(x) for x in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    texts = [q["question"] for q in queries]
    thread = {q["question"]: q["id"][:4] for q in queries}
    vectors = SentenceTransformerEncoder().encode(texts)
    out = []
    for t in thresholds:
        groups = group_questions([(q, 1) for q in texts], vectors, threshold=t)
        labels = {q: i for i, g in enumerate(groups) for q, _ in g.questions}
        purity = sum(max(np.unique([thread[q] for q, _ in g.questions], return_counts=True)[1]) for g in groups) / len(texts)
        out.append({
            "threshold": t, "groups": len(groups), "threads": len(set(thread.values())), "purity": round(float(purity), 3),
            "ari": round(adjusted_rand_score([thread[q] for q in texts], [labels[q] for q in texts]), 3),
        })  # fmt: skip
        log(f"clusters: {out[-1]}")
    return out


def table(rows: list[dict]) -> str:
    lines = [
        "| set | history | links | test questions | hit@1 | answerable answered right | answerable refused"
        + " | unanswerable | unanswerable refused |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    def knob(r):
        for key, label in (("learned_offset", "offset"), ("learned_rank_share", "rank share"), ("rerank_dense_weight", "w"),
                           ("lexical_weight", "lexical weight")):
            if r.get(key) is not None:
                return f", {label} {r[key]}"
        return ""

    for r in rows:
        lines.append(
            f"| {r['set']} | {r['history']}{knob(r)} | {r['links']} | {r['test_questions']} | {f(r['hit_at_1'])} "
            f"| {f(r['answerable_accuracy'])} | {f(r['answerable_refused'])} | {r['unanswerable_questions']} "
            f"| {f(r['unanswerable_refused'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stackfaq", type=Path, default=STACKFAQ)
    ap.add_argument("--work", type=Path, default=Path("/tmp/learning-curve"), help="index folders (reused between runs)")
    ap.add_argument("--sets", default="stackfaq,stackfaq-full,bundled",
                    help="comma-separated: stackfaq, stackfaq-full, bundled, and for the sweeps stackfaq-even, "
                    "stackfaq-even-untitled (even threads only, every fifth of them held out)")
    ap.add_argument("--verifier", default="mpnet", choices=("mpnet", "none"))
    ap.add_argument("--clusters", action="store_true", help="also score the grouping of refused questions")
    ap.add_argument("--offsets", help="comma-separated learned_offset values: score the halves split at each instead of the curve")
    ap.add_argument("--learned-offsets", metavar="FAQ,SECTION", help="the curve with these offsets instead of the defaults")
    ap.add_argument("--rerank-weights", help="comma-separated rerank_dense_weight values: score the halves split, with and without links, at each")
    ap.add_argument("--rank-share", type=float, help="the curve (and the --offsets sweep) with this learned_rank_share instead of the default")
    ap.add_argument("--rank-shares", help="comma-separated learned_rank_share values: score the halves split, with links, at each")
    ap.add_argument("--lexical-weights", help="comma-separated RetrievalConfig.lexical_weight values: score the halves split, with and without links, at each")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    curve_offsets = [float(x) for x in args.learned_offsets.split(",")] if args.learned_offsets else None
    for name in sets:
        suffix = "" if args.verifier == "mpnet" else f"-{args.verifier}"
        if args.offsets or args.rerank_weights or args.rank_shares or args.lexical_weights:
            if name == "bundled":
                corpus, gold = bundled()
            else:
                corpus, gold = stackfaq(args.stackfaq, args.work, hold_out=name != "stackfaq-full",
                                        even="-even" in name, untitled="untitled" in name)  # fmt: skip
            rows += offset_sweep(name, corpus, gold, args.work / f"idx-{name}{suffix}", verifier=args.verifier,
                                 offsets=[float(x) for x in (args.offsets or "0").split(",")],
                                 weights=[float(x) for x in args.rerank_weights.split(",")] if args.rerank_weights else None,
                                 shares=[float(x) for x in args.rank_shares.split(",")] if args.rank_shares else None,
                                 share=args.rank_share,
                                 lexical=[float(x) for x in args.lexical_weights.split(",")] if args.lexical_weights else None)  # fmt: skip
        elif name == "stackfaq":
            corpus, gold = stackfaq(args.stackfaq, args.work, hold_out=True)
            rows += run_curve(name, corpus, gold, args.work / f"idx-{name}{suffix}", verifier=args.verifier,
                              history=(0, 1, 2, 3), halves=True, offsets=curve_offsets, share=args.rank_share)  # fmt: skip
        elif name == "stackfaq-full":
            corpus, gold = stackfaq(args.stackfaq, args.work, hold_out=False)
            rows += run_curve(name, corpus, gold, args.work / f"idx-{name}{suffix}", verifier=args.verifier,
                              history=(), halves=True, offsets=curve_offsets, share=args.rank_share)  # fmt: skip
        elif name == "bundled":
            corpus, gold = bundled()
            rows += run_curve(name, corpus, gold, args.work / f"idx-{name}{suffix}", verifier=args.verifier,
                              history=(0, 1, 2, 3), halves=True, offsets=curve_offsets, share=args.rank_share)  # fmt: skip
        else:
            ap.error(f"unknown set {name!r}")
    result = {"verifier": args.verifier, "learned_offsets": curve_offsets or "defaults",
              "learned_rank_share": "default" if args.rank_share is None else args.rank_share, "curve": rows}
    print(table(rows))
    if args.clusters:
        result["clusters"] = cluster_scores(args.stackfaq, (0.5, 0.55, 0.6, 0.65, 0.7, 0.75))
        print("\n| threshold | groups | threads | purity | ARI |\n|---|---|---|---|---|")
        for c in result["clusters"]:
            print(f"| {c['threshold']} | {c['groups']} | {c['threads']} | {c['purity']} | {c['ari']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
