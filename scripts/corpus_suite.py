"""Evaluate the assistant on every FAQ corpus of the suite, and choose refusal defaults corpus-out.

Every corpus in ``evals/corpora/`` (its split in ``evals/corpora/suite.json``) plus the bundled
corpus with ``evals/dev.jsonl`` (tuning) is evaluated as ``assistant eval`` would, with the
leave-out simulation: every metric per corpus, and the worst corpus.

With ``--tune`` it also chooses the refusal threshold leave-one-corpus-out over the TUNING
corpora only: for each tuning corpus, the setting is chosen on the others (for their worst
corpus, not their average) and scored on the one left out. Three settings are compared: the
shipped default, one threshold shift for all corpora, and the self-calibration's shift fitted
to each corpus's own leave-outs (assistant/core/self_calibration.py). Test corpora are scored
with the setting chosen on all tuning corpora, never used to choose.

    python scripts/corpus_suite.py --tune --out suite-out     # ~3 min on 2 cores

Decisions are replayed offline: each gold question is asked once with a model that always
answers (giving its features and whether the answer's content is right) and once with one that
always refuses (giving the contact answer, where one applies), so any threshold's outcome is
known without asking again. The rules the pipeline applies after the model are replayed with it
(``answers``): an FAQ row's answer sentence stating the asked amount, duration or time, a bare
"Yes," lead read at the FAQ-row threshold, and an asked amount or time that no passage states.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.core import self_calibration as sc
from assistant.core.answer import split_question, yes_no_title
from assistant.core.pipeline import Assistant
from assistant.core.refusal import RefusalModel
from assistant.errors import ConfigError
from assistant.evaluation.gold import GoldQuestion, load_gold
from assistant.evaluation.run import run_eval
from assistant.evaluation.scoring import METRICS, SIMULATED_METRICS, score_answer
from assistant.models.onnx import MODEL_CACHE, open_encoder

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "evals" / "corpora"
ALWAYS = RefusalModel(weights={}, bias=50.0, source="always answer")
NEVER = RefusalModel(weights={}, bias=-50.0, source="always refuse")
SHIFTS = np.round(np.arange(-0.10, 0.151, 0.01), 3)
QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
MIN_SHIFTS = (-0.10, -0.05, -0.02, 0.0)
MAX_SHIFTS = (0.02, 0.04, 0.06, 0.08, 0.10, 0.15)
SHOWN = ["answer_accuracy", "answerable_accuracy", "unanswerable_accuracy", "over_refusal_rate", "hit@1", "hit@3",
         "mrr@10", "citation_precision", "simulated_unanswerable_refused", "latency_p50_ms"]  # fmt: skip


@dataclass(frozen=True)
class Corpus:
    name: str
    files: tuple[Path, ...]
    gold: Path
    split: str  # "tuning" or "test"


@dataclass(frozen=True)
class Row:
    """One gold question, for replaying any refusal decision."""

    features: dict[str, float]
    answerable: bool
    ok_answered: bool  # right when answered normally (answerable: facts and citation right)
    contact: bool | None  # None: no contact answer when refused; else whether that answer is right
    question_title: bool = False  # the best passage's title is a question (FAQ row or "## Question?" heading)
    # The rules Assistant._answer applies after the model, replayed with it: the verifier's cosine of the
    # FAQ answer sentence stating the asked amount, duration or time (None: not read), and whether the
    # answer would open with a section's bare "Yes," / "No." (decided as that section's FAQ row).
    stated: float | None = None
    yes_title: bool = False
    not_stated: bool = False  # answered, it is refused anyway: the asked amount or time is never stated


def discover(suite: Path) -> list[Corpus]:
    split = json.loads((suite / "suite.json").read_text())
    out = [Corpus("bundled", (ROOT / "corpus",), ROOT / "evals" / "dev.jsonl", "tuning")]
    for name, kind in split.items():
        if kind not in ("tuning", "test"):
            raise ConfigError(f"{suite / 'suite.json'}: split of {name!r} must be 'tuning' or 'test', got {kind!r}")
        folder = suite / name
        files = tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.name != "gold.jsonl"))
        if not files:
            raise ConfigError(f"{folder}: no corpus file beside gold.jsonl")
        out.append(Corpus(name, files, folder / "gold.jsonl", kind))
    return out


def decision_rows(assistant: Assistant, gold: list[GoldQuestion]) -> list[Row]:
    by_id = {p.id: p for p in assistant.index.passages}
    kept = assistant.refusal
    rows = []
    try:
        for q in gold:
            assistant.refusal = ALWAYS
            a = assistant.ask(q.question)
            feats = {k: v for k, v in a.evidence.items() if k not in ("p_answer", "contact", "stated")}
            ok = bool(score_answer(q, a, by_id)["correct"])
            qt = _question_title(a.retrieved)
            query = assistant.corrector.correct(assistant.cleaner.run(q.question))
            parts = split_question(query)
            titled = yes_no_title(query, a, {h.passage.id: h.passage for h in a.retrieved}, parts=len(parts) if len(parts) > 1 else 0)
            assistant.refusal = NEVER  # refused by the model: the stated sentence is read, the contact answer made
            b = assistant.ask(q.question)
            contact = bool(score_answer(q, b, by_id)["correct"]) if b.answered else None
            rows.append(Row(feats, q.answerable, ok, contact, qt, b.evidence.get("stated"), titled is not None,
                            a.refusal_reason == "not_stated"))  # fmt: skip
    finally:
        assistant.refusal = kept
    return rows


def _question_title(hits) -> bool:
    if not hits:
        return False
    best = max(hits, key=lambda h: h.verified if h.verified is not None else h.dense)
    return best.passage.title.rstrip().endswith("?")


def probe_rows(assistant: Assistant) -> list[Row]:
    """The self-calibration's leave-outs as rows (unanswerable), with the title flag."""
    out = []
    for p in sc.probes(assistant.index.passages):
        query = assistant.corrector.correct(assistant.cleaner.run(p.query))
        hits = assistant.verify(query, assistant.retriever.search(query, assistant.candidates,
                                                                   exclude=assistant.passage_indices(p.left_out)))
        out.append(Row(assistant.decider.features(query, hits), False, False, None, _question_title(hits)))
    return out


def replay(rows: list[Row], model: RefusalModel) -> dict[str, float]:
    """answerable and unanswerable accuracy when ``model`` decides."""
    right = {True: [], False: []}
    for r in rows:
        answered, not_stated = answers(r, model)
        if answered:
            ok = r.ok_answered if r.answerable else False
        elif r.contact is not None and not not_stated:
            ok = r.contact if r.answerable else False
        else:
            ok = not r.answerable
        right[r.answerable].append(ok)
    return {"answerable": float(np.mean(right[True])), "unanswerable": float(np.mean(right[False]))}


def answers(r: Row, model: RefusalModel) -> tuple[bool, bool]:
    """(answered, refused as not_stated) when ``model`` decides, with the pipeline's rules after it:
    an FAQ row whose answer sentence states the asked kind of thing is decided on that sentence as
    plain text; a bare "Yes," lead answers only at the FAQ-row threshold (Assistant._answer)."""
    p = model.probability(r.features)
    if p >= 0.5 and r.not_stated:
        return False, True
    if p < 0.5:
        stated = r.stated is not None and model.probability({**r.features, "dense": r.stated, "faq": 0.0}) >= 0.5
        return stated, False
    if r.yes_title and not r.features.get("faq") and model.probability({**r.features, "faq": 1.0}) < 0.5:
        return False, True
    return True, False


def worst(scores: list[dict[str, float]]) -> tuple[float, float]:
    """Key for choosing: the worst corpus's balanced accuracy, then the mean (higher is better)."""
    bal = [(s["answerable"] + s["unanswerable"]) / 2 for s in scores]
    return (min(bal), float(np.mean(bal)))


def model_for(base: RefusalModel, probes: list[dict[str, float]], setting) -> RefusalModel:
    kind, params = setting
    if kind == "default":
        return base
    if kind == "shift":
        return sc.shifted(base, params)
    if kind == "plain":  # the plain-text threshold only; FAQ rows keep theirs
        w = base.weights["dense"]
        return replace(base, bias=base.bias - params * w, weights={**base.weights, "faq": base.weights.get("faq", 0.0) + params * w})
    q, lo, hi = params
    return sc.shifted(base, sc.fit_shift(base, probes, quantile=q, min_shift=lo, max_shift=hi))


def settings(kind: str):
    if kind == "default":
        return [("default", None)]
    if kind in ("shift", "plain"):
        return [(kind, float(s)) for s in SHIFTS]
    return [("self", p) for p in itertools.product(QUANTILES, MIN_SHIFTS, MAX_SHIFTS) if p[1] <= p[2]]


def choose(kind: str, data: dict, names: list[str]):
    return max(settings(kind), key=lambda s: worst([replay(data[n]["rows"], model_for(data[n]["base"], data[n]["probes"], s)) for n in names]))


def fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else (f"{x:.3f}" if isinstance(x, float) else str(x))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default=str(SUITE), help="folder of corpora with suite.json (default evals/corpora)")
    ap.add_argument("--index-root", default=str(ROOT / ".index" / "suite"), help="one index folder per corpus under this")
    ap.add_argument("--verifier", default="mpnet", choices=("mpnet", "none"))
    ap.add_argument("--no-self-calibration", action="store_true", help="open each corpus without the index-time self-calibration (it changes decisions only when self_calibration.APPLY_SHIFT is on)")
    ap.add_argument("--tune", action="store_true", help="also choose the refusal threshold leave-one-corpus-out")
    ap.add_argument("--only", nargs="*", help="evaluate only these corpora (names)")
    ap.add_argument("--out", metavar="DIR", help="write suite.json (every metric per corpus) and tuning.json here")
    args = ap.parse_args()
    from tabulate import tabulate

    corpora = discover(Path(args.suite))
    if args.only:
        corpora = [c for c in corpora if c.name in args.only]
    summaries, data = {}, {}
    # One encoder for every corpus: its ONNX export is made once, not once per index folder.
    encoder = open_encoder(None, Path(args.index_root) / MODEL_CACHE)
    for c in corpora:
        print(f"[{c.name}] {', '.join(str(f.relative_to(ROOT)) for f in c.files)} with {c.gold.relative_to(ROOT)}", file=sys.stderr)
        assistant, _ = Assistant.open(list(c.files), Path(args.index_root) / c.name, encoder=encoder, verifier=args.verifier,
                                      self_calibrate=not args.no_self_calibration)  # fmt: skip
        gold = load_gold(c.gold)
        run = run_eval(assistant, gold, simulate=True)
        summaries[c.name] = {**run.summary, "split": c.split, "refusal": assistant.refusal.source}
        if args.tune:
            prows = probe_rows(assistant)
            data[c.name] = {"rows": decision_rows(assistant, gold), "probes": [r.features for r in prows],
                            "probe_rows": prows, "base": RefusalModel.default_for(assistant.verifier_name),
                            "split": c.split}  # fmt: skip

    if args.out and data:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        dump = {n: {"split": d["split"], "rows": [asdict(r) for r in d["rows"]],
                    "probe_rows": [asdict(r) for r in d["probe_rows"]]} for n, d in data.items()}  # fmt: skip
        (Path(args.out) / "rows.json").write_text(json.dumps(dump))
    table = [[n, s["split"], s["n"], *[fmt(s.get(m)) for m in SHOWN]] for n, s in summaries.items()]
    print(tabulate(table, headers=["corpus", "split", "n", *SHOWN]))
    higher = {**METRICS, **SIMULATED_METRICS}
    print("\nworst corpus per metric:")
    for m in SHOWN:
        vals = {n: s.get(m) for n, s in summaries.items() if s.get(m) is not None}
        if vals:
            name = (min if higher[m] else max)(vals, key=vals.get)
            print(f"  {m}: {name} ({fmt(vals[name])})")
    bal = {n: (s["answerable_accuracy"] + s["unanswerable_accuracy"]) / 2 for n, s in summaries.items()
           if s.get("answerable_accuracy") is not None and s.get("unanswerable_accuracy") is not None}  # fmt: skip
    if bal:
        w = min(bal, key=bal.get)
        print(f"worst corpus (balanced accuracy): {w} ({bal[w]:.3f}: answerable {summaries[w]['answerable_accuracy']:.3f}, "
              f"unanswerable refused {summaries[w]['unanswerable_accuracy']:.3f})")

    tuning_out = {}
    if args.tune:
        tuning = [n for n in data if data[n]["split"] == "tuning"]
        if len(tuning) < 3:
            raise ConfigError(f"--tune needs at least 3 tuning corpora (one left out, two to choose on), got {len(tuning)}")
        print("\nleave-one-corpus-out over the tuning corpora (chosen on the others for their worst corpus):")
        loco = []
        for kind in ("default", "shift", "plain", "self"):
            per = {}
            for left in tuning:
                s = choose(kind, data, [n for n in tuning if n != left])
                d = data[left]
                per[left] = {**replay(d["rows"], model_for(d["base"], d["probes"], s)), "setting": s}
            w = min(per.values(), key=lambda r: (r["answerable"] + r["unanswerable"]) / 2)
            loco.append([kind, *[f"{per[n]['answerable']:.3f} / {per[n]['unanswerable']:.3f}" for n in tuning],
                         f"{w['answerable']:.3f} / {w['unanswerable']:.3f}"])  # fmt: skip
            tuning_out[kind] = {n: {**r, "setting": list(r["setting"]) if r["setting"] else None} for n, r in per.items()}
        print(tabulate(loco, headers=["setting", *tuning, "worst"]))
        print("(answerable right / unanswerable refused, on the corpus left out)")
        print("\nchosen on all tuning corpora, scored on every corpus:")
        final = []
        for kind in ("default", "shift", "plain", "self"):
            s = choose(kind, data, tuning)
            row = [f"{kind} {s[1] if s[1] is not None else ''}"]
            for d in data.values():
                m = model_for(d["base"], d["probes"], s)
                r = replay(d["rows"], m)
                row.append(f"{r['answerable']:.3f} / {r['unanswerable']:.3f}")
            final.append(row)
            tuning_out[f"{kind}_all"] = {"setting": list(s) if isinstance(s, tuple) else s}
        print(tabulate(final, headers=["setting", *[f"{n} ({data[n]['split']})" for n in data]]))
        shifts = {n: sc.fit_shift(d["base"], d["probes"]) for n, d in data.items()}
        print("\nself-calibration shift per corpus (shipped constants): " + ", ".join(f"{n} {v:+.3f}" for n, v in shifts.items()))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "suite.json").write_text(json.dumps(summaries, indent=2, default=str))
        if tuning_out:
            (out / "tuning.json").write_text(json.dumps(tuning_out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
