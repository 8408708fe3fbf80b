"""Fit the sentence selector (assistant/core/sentences.py, SentenceSelector) on the tuning questions.

Tuning data only: evals/dev.jsonl and evals/gold.jsonl on the bundled corpus, and the corpora
that evals/corpora/suite.json marks "tuning" with their gold sets. evals/test.jsonl and the
suite's test corpora are held out and never read here. Every candidate sentence of every
answerable tuning question is a training row, labelled 1 when it contains one of the row's
``must_include`` facts. The script prints the weights as the literals to paste into sentences.py,
the cross-validated AUROC and top-1 (folds grouped by corpus and FAQ passage, so no fold is
scored by a model that saw its paraphrases) and the selection rule's figures for a grid of
settings and of the lead rules (AnswerConfig.lead_type_rel, lead_negation_rel, generic_extras,
other_passage_rel), each scored out of fold (every question's answer chosen by weights fitted
without its group): the tables in docs/retrieval.md, section 6.

    PYTHONPATH=. python scripts/fit_selector.py [--cache FILE]

``--cache`` keeps the models' scores for every question in a pickle, so refitting after a
feature change does not run the models again (delete it when a corpus, a gold set or a model
changes).
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from assistant.core.answer import AnswerConfig, select_sentences, split_question
from assistant.core.sentences import (
    SELECTOR_FEATURES,
    SentenceSelector,
    content_terms,
    question_types,
    sentence_features,
)
from assistant.core.pipeline import MAX_PARTS, Assistant
from assistant.dialogue.clarify import is_vague
from assistant.evaluation.gold import load_gold
from assistant.evaluation.metrics import contains_fact, passage_is_relevant

ROOT = Path(__file__).resolve().parents[1]
TUNING = [ROOT / "evals" / "dev.jsonl", ROOT / "evals" / "gold.jsonl"]  # never evals/test.jsonl
SUITE = ROOT / "evals" / "corpora"


def tuning_sets() -> list[tuple[str, list[Path], list[Path]]]:
    """(name, corpus paths, gold paths) of every tuning corpus: the bundled one with its two tuning
    sets, then the corpora evals/corpora/suite.json marks "tuning" (never its "test" ones)."""
    sets = [("bundled", [ROOT / "corpus"], TUNING)]
    for name, split in json.loads((SUITE / "suite.json").read_text()).items():
        if split == "tuning":
            files = sorted(f for f in (SUITE / name).iterdir() if f.name != "gold.jsonl")
            sets.append((name, files, [SUITE / name / "gold.jsonl"]))
    return sets


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
        found = assistant.retriever.search(query, assistant.candidates, qvec=vecs[0])
        # As Assistant.ask_many: a question the retriever alone decides is not re-read by the verifier.
        fast = None
        if assistant.skip_verifier_at is not None and not is_vague(query):
            fast = assistant.fast_decider.run(query, found[: assistant.top_k])
            fast = fast if fast[0] >= assistant.skip_verifier_at else None
        ranked = found if fast is not None else assistant.verify(query, found)
        p_answer, _ = fast if fast is not None else assistant.decider.run(query, ranked)
        hits = ranked[: assistant.top_k]
        candidates = assistant._quotable(hits, parts, vecs[1:], None)
        vq = assistant.verifier.embed(query) if assistant.verifier is not None and fast is None else None
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


def group_of(row: dict) -> str:
    """The cross-validation group of a question: its corpus and its (first) relevant passage."""
    q = row["gold"]
    return f"{row['set']}:{q.relevant_ids[0] if q.relevant_ids else q.id}"


def training_rows(data: list[dict], use_verifier: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features, labels, groups, question index) of every candidate sentence of the answerable rows."""
    X, y, groups, index = [], [], [], []
    for n, row in enumerate(data):
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
                passage_sentences=len(row["scores"][cands[r].passage.id]),
            )  # fmt: skip
            X.append([f[k] for k in SELECTOR_FEATURES])
            y.append(1 if any(contains_fact(text, fact) for fact in q.must_include) else 0)
            groups.append(group_of(row))
            index.append(n)
    return np.array(X), np.array(y), np.array(groups), np.array(index)


def fit(X: np.ndarray, y: np.ndarray, index: np.ndarray, l2: float = 10.0, objective: str = "listwise") -> SentenceSelector:
    """The selector's weights for sentence features ``X``, labels ``y`` of the questions ``index``.

    ``listwise`` (the default): a conditional logit: for each question, a softmax over its candidate
    sentences, fitted to put the probability on those holding a fact (L2 penalty ``l2`` on the
    standardised weights). It learns which sentence of a question is the answer, the choice the
    selector makes, rather than whether a sentence holds a fact at all. ``pointwise``: a logistic
    regression over all sentences (C = 1/l2). The bias centres the scores; the probability the
    selector reports is the logistic of that score (monotone in it, which is what the rule uses).
    """
    if objective == "pointwise":
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=1.0 / l2, max_iter=5000).fit(X, y)
        w, b = clf.coef_[0], float(clf.intercept_[0])
    else:
        from scipy.optimize import minimize

        mu, sd = X.mean(axis=0), X.std(axis=0) + 1e-9
        Z = (X - mu) / sd
        questions = [np.flatnonzero(index == n) for n in np.unique(index)]
        questions = [q for q in questions if 0 < y[q].sum() < len(q)]  # a choice to learn from

        def loss(v: np.ndarray) -> tuple[float, np.ndarray]:
            total, grad = 0.5 * l2 * v @ v, l2 * v
            for q in questions:
                z = Z[q] @ v
                p = np.exp(z - z.max())
                p /= p.sum()
                target = y[q] / y[q].sum()
                total -= target @ np.log(p + 1e-12)
                grad = grad - Z[q].T @ (target - p)
            return float(total), grad

        v = minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B").x
        w = v / sd
        b = float(-(w @ mu))
    return SentenceSelector(weights={f: round(float(x), 4) for f, x in zip(SELECTOR_FEATURES, w)}, bias=round(b, 4))


def folds(data: list[dict], n_splits: int = 5) -> list[np.ndarray]:
    """The question indices of each fold, grouped by ``group_of`` (deterministic)."""
    from sklearn.model_selection import GroupKFold

    groups = np.array([group_of(row) for row in data])
    return [test for _, test in GroupKFold(n_splits=n_splits).split(np.zeros(len(data)), groups=groups)]


def out_of_fold(data: list[dict], l2: float, objective: str) -> tuple[list[SentenceSelector], list[np.ndarray], float, float]:
    """A selector per fold (fitted without the fold's questions), the folds, and the pooled
    out-of-fold AUROC and top-1 (the share of answerable questions whose best-scored sentence
    holds a fact, among those where some candidate does)."""
    from sklearn.metrics import roc_auc_score

    X, y, _, index = training_rows(data, True)
    selectors, parts = [], folds(data)
    preds = np.zeros(len(y))
    for test in parts:
        held = np.isin(index, test)
        sel = fit(X[~held], y[~held], index[~held], l2, objective)
        selectors.append(sel)
        preds[held] = [sel.probability(dict(zip(SELECTOR_FEATURES, x))) for x in X[held]]
    top1 = []
    for n in np.unique(index):
        mine = index == n
        if y[mine].any():
            top1.append(y[mine][np.argmax(preds[mine])])
    return selectors, parts, float(roc_auc_score(y, preds)), float(np.mean(top1))


def counts(data: list[dict], cfg: AnswerConfig) -> dict[str, int]:
    """The counts behind the precision metrics and answerable accuracy of the answers this
    selection would quote (refusals do not depend on the selector: answered rows only)."""
    c = dict.fromkeys(("answerable", "right", "lead_rows", "lead_ok", "quoted", "on_point", "answers", "sentences"), 0)
    for row in data:
        q = row["gold"]
        c["answerable"] += q.answerable
        if not row["answered"]:
            continue
        chosen = select_sentences(
            row["candidates"], row["scores"], cfg, row["part_scores"], question=row["query"], parts=row["parts"],
            verified=row["verified"],
        )  # fmt: skip
        if not chosen and row["candidates"]:
            chosen = [(row["candidates"][0], 0, len(row["candidates"][0].passage.text))]
        texts = [h.passage.text[s:e] for h, s, e in chosen]
        c["answers"] += 1
        c["sentences"] += len(texts)
        if not q.answerable:
            continue
        cited = {h.passage.id: h.passage for h, _, _ in chosen}
        facts_ok = all(contains_fact(" ".join(texts), f) for f in q.must_include)
        cites_ok = not q.relevant_ids or any(passage_is_relevant(p, q.relevant_ids) for p in cited.values())
        c["right"] += facts_ok and cites_ok
        if q.must_include and texts:
            c["lead_rows"] += 1
            c["lead_ok"] += any(contains_fact(texts[0], f) for f in q.must_include)
            on = [any(contains_fact(t, f) for f in (*q.must_include, *q.support)) for t in texts]
            c["on_point"] += sum(on)
            c["quoted"] += len(on)
    return c


def metrics(c: dict[str, int]) -> dict[str, float]:
    def div(a: int, b: int) -> float:
        return a / b if b else math.nan

    return {
        "answerable_accuracy": div(c["right"], c["answerable"]),
        "lead_accuracy": div(c["lead_ok"], c["lead_rows"]),
        "answer_precision": div(c["on_point"], c["quoted"]),
        "mean_sentences": div(c["sentences"], c["answers"]),
    }


def oof_counts(data: list[dict], cfg: AnswerConfig, selectors: list[SentenceSelector], parts: list[np.ndarray],
               only: str | None = None) -> dict[str, int]:  # fmt: skip
    """``counts`` with every question's answer chosen by its fold's selector (``only``: one corpus)."""
    total: dict[str, int] = {}
    for sel, test in zip(selectors, parts):
        rows = [data[i] for i in test if only is None or data[i]["set"] == only]
        for k, v in counts(rows, replace(cfg, selector=sel)).items():
            total[k] = total.get(k, 0) + v
    return total


def line(label: str, c: dict[str, int]) -> str:
    m = metrics(c)
    return (f"| {label} | {m['answerable_accuracy']:.3f} ({c['right']}/{c['answerable']}) | {m['lead_accuracy']:.3f} "
            f"| {m['answer_precision']:.3f} | {m['mean_sentences']:.2f} |")  # fmt: skip


GRID = [
    (max_sentences, 0.0, extra_rel) for max_sentences in (2, 3, 4) for extra_rel in (0.0, 0.3, 0.5, 0.6, 0.7, 0.8)
]

LEAD_GRID = [
    (None, None, True, 0.0), (None, None, False, 0.0),
    *((rel, None, False, 0.0) for rel in (0.0, 0.3, 0.5, 0.7, 0.9)), (0.5, None, True, 0.0),
    *((0.5, None, False, rel) for rel in (0.3, 0.5, 0.7, 0.9)),
    *((0.5, rel, False, 0.5) for rel in (0.3, 0.5, 0.7, 0.9)),
]  # fmt: skip


def load(cache: str | None) -> list[dict]:
    """Every tuning question with what the selector sees, tagged with its corpus (``set``)."""
    if cache and Path(cache).is_file():
        return pickle.loads(Path(cache).read_bytes())
    data = []
    for name, files, golds in tuning_sets():
        assistant, _ = Assistant.open(files, ROOT / ".index" / f"fit-selector-{name}", verifier="mpnet")
        for row in collect(assistant, [q for path in golds for q in load_gold(path)]):
            data.append({**row, "set": name})
    if cache:
        Path(cache).write_bytes(pickle.dumps(data))
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", help="pickle of the models' scores per question (made on first use)")
    ap.add_argument("--l2", type=float, default=10.0, help="L2 penalty on the standardised weights")
    args = ap.parse_args(argv)
    data = load(args.cache)
    sets = list(dict.fromkeys(row["set"] for row in data))
    print(f"{len(data)} tuning questions: " + ", ".join(f"{s} {sum(r['set'] == s for r in data)}" for s in sets))
    X, y, _, index = training_rows(data, True)
    print(f"{len(y)} candidate sentences, {int(y.sum())} hold a fact")
    shipped = AnswerConfig()
    print("\nobjectives, out of fold (grouped 5-fold), with the shipped rule:")
    print("| objective | l2 | AUROC | top-1 | answerable_accuracy | lead_accuracy | answer_precision | mean_sentences |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for objective, l2 in (("pointwise", 1.0), ("listwise", 1.0), ("listwise", 10.0), ("listwise", 100.0)):
        selectors, parts, auc, top1 = out_of_fold(data, l2, objective)
        print(line(f"{objective} | {l2} | {auc:.3f} | {top1:.3f}", oof_counts(data, shipped, selectors, parts)))
    final = fit(X, y, index, args.l2)
    print(f"\nlistwise, l2={args.l2}, fitted on every tuning question:")
    print("SELECTOR_WEIGHTS = {" + ", ".join(f'"{k}": {v}' for k, v in final.weights.items()) + "}")
    print(f"SELECTOR_BIAS = {final.bias}")
    selectors, parts, _, _ = out_of_fold(data, args.l2, "listwise")
    print("\nselection rules, out of fold (each question answered by weights fitted without its group):")
    print("| max_sentences | extra_min | extra_rel | answerable_accuracy | lead_accuracy | answer_precision | mean_sentences |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for max_sentences, extra_min, extra_rel in GRID:
        cfg = replace(shipped, max_sentences=max_sentences, extra_min=extra_min, extra_rel=extra_rel)
        print(line(f"{max_sentences} | {extra_min} | {extra_rel}", oof_counts(data, cfg, selectors, parts)))
    print("\nthe lead rules, pointer sentences and other passages' sentences, out of fold (the rest as shipped):")
    print("| lead_type_rel | lead_negation_rel | generic_extras | other_passage_rel | answerable_accuracy | lead_accuracy "
          "| answer_precision | mean_sentences |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for lead_type_rel, lead_negation_rel, generic_extras, other_passage_rel in LEAD_GRID:
        cfg = replace(shipped, lead_type_rel=lead_type_rel, lead_negation_rel=lead_negation_rel,
                      generic_extras=generic_extras, other_passage_rel=other_passage_rel)  # fmt: skip
        label = f"{lead_type_rel} | {lead_negation_rel} | {generic_extras} | {other_passage_rel}"
        print(line(label, oof_counts(data, cfg, selectors, parts)))
    print("\nthe shipped selector and rule, per corpus (in sample | out of fold):")
    print("| set | answerable_accuracy | lead_accuracy | answer_precision | mean_sentences |")
    print("| --- | --- | --- | --- | --- |")
    for name in [*sets, None]:
        rows = [r for r in data if name is None or r["set"] == name]
        print(line(f"{name or 'all'} (in sample)", counts(rows, shipped)))
        print(line(f"{name or 'all'} (out of fold)", oof_counts(data, shipped, selectors, parts, only=name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
