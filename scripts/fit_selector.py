"""Fit the sentence selector (assistant/core/answer.py, SentenceSelector) on the tuning questions.

Tuning data only: evals/dev.jsonl and evals/gold.jsonl on the bundled corpus. evals/test.jsonl
is the held-out set and is never read here. Every candidate sentence of every answerable tuning
question is a training row, labelled 1 when it contains one of the row's ``must_include``
facts. The script prints the weights as the literals to paste into answer.py, the
cross-validated AUROC (folds grouped by FAQ section, so no fold is scored by a model that saw
its paraphrases) and the selection rule's figures on the tuning sets for a grid of thresholds:
the tables in docs/retrieval.md, section 6.

    PYTHONPATH=. python scripts/fit_selector.py [--index-dir DIR] [--cache FILE]

``--cache`` keeps the models' scores for every question in a pickle, so refitting after a
feature change does not run the models again (delete it when the corpus or models change).
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from assistant.core.answer import (
    SELECTOR_FEATURES,
    AnswerConfig,
    SentenceSelector,
    content_terms,
    question_types,
    select_sentences,
    sentence_features,
    split_question,
)
from assistant.core.pipeline import MAX_PARTS, Assistant
from assistant.evaluation.gold import load_gold
from assistant.evaluation.metrics import contains_fact, passage_is_relevant

ROOT = Path(__file__).resolve().parents[1]
TUNING = [ROOT / "evals" / "dev.jsonl", ROOT / "evals" / "gold.jsonl"]  # never evals/test.jsonl


def verified_sentences(assistant: Assistant, vq: np.ndarray, passage_id: str) -> list[tuple[int, int, float]]:
    """The verifier's cosine of each indexed sentence of one passage (empty when none is indexed)."""
    v = assistant.verifier
    pi = v.index.by_id[passage_id]
    out = []
    for j in v.index.passage_units[pi]:
        u = v.index.units[j]
        if u.kind == "sentence":
            out.append((u.start, u.end, float(v.index.vectors[j] @ vq)))
    return out


def collect(assistant: Assistant, gold) -> list[dict]:
    """What select_sentences sees for each question, exactly as Assistant.ask builds it."""
    rows = []
    for q in gold:
        query = assistant.corrector.correct(assistant.cleaner.run(q.question))
        parts = split_question(query)[:MAX_PARTS]
        parts = parts if len(parts) > 1 else []
        vecs = assistant.encoder.encode([query, *parts])
        ranked = assistant.verify(query, assistant.retriever.search(query, assistant.candidates, qvec=vecs[0]))
        p_answer, _ = assistant.decider.run(query, ranked)
        hits = ranked[: assistant.top_k]
        candidates = assistant._quotable(hits, parts, vecs[1:], None)
        vq = assistant.verifier.embed(query) if assistant.verifier is not None else None
        rows.append(
            {
                "gold": q,
                "query": query,
                "parts": parts,
                "answered": p_answer >= 0.5,
                "candidates": candidates,
                "scores": {h.passage.id: assistant.retriever.sentence_scores(vecs[0], h.passage.id) for h in candidates},
                "part_scores": [
                    {h.passage.id: assistant.retriever.sentence_scores(pv, h.passage.id) for h in candidates}
                    for pv in vecs[1:]
                ],
                "verified": {h.passage.id: verified_sentences(assistant, vq, h.passage.id) for h in candidates}
                if vq is not None
                else None,
            }
        )
    return rows


def training_rows(data: list[dict], use_verifier: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y, groups = [], [], []
    for row in data:
        q = row["gold"]
        if not q.answerable or not q.must_include:
            continue
        cands = row["candidates"]
        flat = [(r, i, s, e, sc) for r, h in enumerate(cands) for i, (s, e, sc) in enumerate(row["scores"][h.passage.id])]
        if not flat:
            continue
        ver = {(h.passage.id, s): sc for h in cands for s, e, sc in (row["verified"] or {}).get(h.passage.id, [])}
        vers = [ver.get((cands[r].passage.id, s)) for r, _, s, _, _ in flat]
        have_ver = use_verifier and all(v is not None for v in vers)
        retr_best = max(x[4] for x in flat)
        types, terms = question_types(row["query"]), content_terms(row["query"])
        for (r, i, s, e, sc), v in zip(flat, vers):
            text = cands[r].passage.text[s:e]
            f = sentence_features(
                row["query"], types, terms, text, retr=sc, retr_best=retr_best, ver=v if have_ver else None,
                ver_best=max(vers) if have_ver else None, passage_rank=r, position=i,
            )  # fmt: skip
            X.append([f[k] for k in SELECTOR_FEATURES])
            y.append(1 if any(contains_fact(text, fact) for fact in q.must_include) else 0)
            groups.append(q.relevant_ids[0] if q.relevant_ids else q.id)
    return np.array(X), np.array(y), np.array(groups)


def fit(X: np.ndarray, y: np.ndarray, C: float = 1.0) -> SentenceSelector:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, max_iter=2000).fit(X, y)
    return SentenceSelector(
        weights={f: round(float(w), 4) for f, w in zip(SELECTOR_FEATURES, clf.coef_[0])},
        bias=round(float(clf.intercept_[0]), 4),
    )


def cross_validated_auroc(X, y, groups, C: float = 1.0) -> float:
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    preds = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=5).split(X, y, groups):
        sel = fit(X[train], y[train], C)
        preds[test] = [sel.probability(dict(zip(SELECTOR_FEATURES, x))) for x in X[test]]
    return float(roc_auc_score(y, preds))


def figures(data: list[dict], cfg: AnswerConfig, use_verifier: bool) -> dict[str, float]:
    """The precision metrics and answerable accuracy of the answers this selection would quote
    (answered rows only; refusals do not depend on the selector)."""
    lead, on_point, quoted, n_sent, answered_rows, right, answerable = [], 0, 0, [], 0, 0, 0
    for row in data:
        q = row["gold"]
        answerable += q.answerable
        if not row["answered"]:
            continue
        chosen = select_sentences(
            row["candidates"], row["scores"], cfg, row["part_scores"], question=row["query"], parts=row["parts"],
            verified=row["verified"] if use_verifier else None,
        )  # fmt: skip
        if not chosen and row["candidates"]:
            chosen = [(row["candidates"][0], 0, len(row["candidates"][0].passage.text))]
        texts = [h.passage.text[s:e] for h, s, e in chosen]
        n_sent.append(len(texts))
        if not q.answerable:
            continue
        answered_rows += 1
        cited = {h.passage.id: h.passage for h, _, _ in chosen}
        facts_ok = all(contains_fact(" ".join(texts), f) for f in q.must_include)
        cites_ok = not q.relevant_ids or any(passage_is_relevant(p, q.relevant_ids) for p in cited.values())
        right += facts_ok and cites_ok
        if q.must_include and texts:
            lead.append(any(contains_fact(texts[0], f) for f in q.must_include))
            hits = [any(contains_fact(t, f) for f in (*q.must_include, *q.support)) for t in texts]
            on_point += sum(hits)
            quoted += len(hits)
    return {
        "answerable_accuracy": right / answerable if answerable else math.nan,
        "answerable_right": right,
        "lead_accuracy": float(np.mean(lead)) if lead else math.nan,
        "answer_precision": on_point / quoted if quoted else math.nan,
        "mean_sentences": float(np.mean(n_sent)) if n_sent else math.nan,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index-dir", default=str(ROOT / ".index" / "fit-selector"), help="index folder for the bundled corpus")
    ap.add_argument("--cache", help="pickle of the models' scores per question (made on first use)")
    ap.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
    args = ap.parse_args(argv)
    gold = [q for path in TUNING for q in load_gold(path)]
    if args.cache and Path(args.cache).is_file():
        data = pickle.loads(Path(args.cache).read_bytes())
    else:
        assistant, _ = Assistant.open([ROOT / "corpus"], args.index_dir, verifier="mpnet")
        data = collect(assistant, gold)
        if args.cache:
            Path(args.cache).write_bytes(pickle.dumps(data))
    print(f"{len(data)} tuning questions ({', '.join(p.name for p in TUNING)})")
    results = {}
    for use_verifier in (False, True):
        X, y, groups = training_rows(data, use_verifier)
        sel = fit(X, y, args.C)
        auc = cross_validated_auroc(X, y, groups, args.C)
        results[use_verifier] = sel
        print(f"\nverifier features {'on' if use_verifier else 'off'}: {len(y)} sentences, {int(y.sum())} hold a fact; "
              f"grouped 5-fold AUROC {auc:.3f}")  # fmt: skip
        print("SELECTOR_WEIGHTS = {" + ", ".join(f'"{k}": {v}' for k, v in sel.weights.items()) + "}")
        print(f"SELECTOR_BIAS = {sel.bias}")
    print("\nselection rule on the tuning sets (answered questions; the fitted weights with the verifier):")
    print("| max_sentences | extra_min | part_min | answerable_accuracy | lead_accuracy | answer_precision | mean_sentences |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for max_sentences in (2, 3, 4):
        for extra_min in (0.0, 0.15, 0.2, 0.25, 0.3, 0.5):
            for part_min in (0.2,):
                cfg = replace(AnswerConfig(), selector=results[True], max_sentences=max_sentences, extra_min=extra_min,
                              part_min=part_min)  # fmt: skip
                f = figures(data, cfg, True)
                print(f"| {max_sentences} | {extra_min} | {part_min} | {f['answerable_accuracy']:.3f} ({f['answerable_right']}) "
                      f"| {f['lead_accuracy']:.3f} | {f['answer_precision']:.3f} | {f['mean_sentences']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
