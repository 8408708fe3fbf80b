"""``assistant eval``: score the assistant on a gold set, print a summary, write reports, gate CI."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from assistant.cli import common
from assistant.errors import ConfigError
from assistant.extras import require_extra
from assistant.settings import BUNDLED_CORPUS, resolve_corpus_args

BUNDLED_ROOT = Path(__file__).resolve().parents[2]
# The held-out set for the bundled corpus: scored by default, gated in CI, never tuned on.
BUNDLED_GOLD = BUNDLED_ROOT / "evals" / "test.jsonl"
BUNDLED_GATE = BUNDLED_ROOT / "evals" / "gate.json"
# The tuning sets (evals/gold.jsonl, the former held-out set, and evals/dev.jsonl): pass them
# with --gold to tune.
BUNDLED_TUNING = (BUNDLED_ROOT / "evals" / "gold.jsonl", BUNDLED_ROOT / "evals" / "dev.jsonl")
# The bounds gold.jsonl had while it was the held-out set still hold for it (bounds only rise,
# on the same set): scoring it with --gold applies them.
BUNDLED_GATES = {BUNDLED_GOLD: BUNDLED_GATE, BUNDLED_TUNING[0]: BUNDLED_ROOT / "evals" / "gate-gold.json"}


def register(sub, add_corpus_args) -> None:
    p = sub.add_parser(
        "eval",
        help="score the assistant on a gold question set",
        description=(
            "Ask every question of a gold set, score retrieval, answers, refusals and citations, "
            "print a summary and the failing questions. Exit 0 when the gate passes, 1 when a "
            "gate bound fails or a question regressed against --baseline, 2 on bad input."
        ),
    )
    add_corpus_args(p)
    p.add_argument("--gold", metavar="PATH", help="gold set (.jsonl or .csv); default: the bundled held-out set evals/test.jsonl")
    p.add_argument("--out", metavar="DIR", help="write results.csv, summary.json, report.md and report.html here")
    p.add_argument("--json", metavar="FILE", help="write the summary object (metric -> value, plus n) to FILE")
    p.add_argument("--baseline", metavar="FILE", help="earlier results.csv (or its --out folder) to compare with")
    p.add_argument(
        "--allow-regressions", action="store_true",
        help="with --baseline: list questions that went right -> wrong but do not exit 1 for them",
    )  # fmt: skip
    p.add_argument(
        "--fail-under", action="append", default=[], metavar="METRIC=VALUE",
        help="exit 1 when METRIC is below VALUE (repeatable), e.g. --fail-under answer_accuracy=0.9",
    )  # fmt: skip
    p.add_argument(
        "--fail-over", action="append", default=[], metavar="METRIC=VALUE",
        help="exit 1 when a lower-is-better METRIC is above VALUE, e.g. --fail-over over_refusal_rate=0.1",
    )  # fmt: skip
    p.add_argument(
        "--gate", metavar="FILE",
        help="JSON file of metric -> minimum; default: evals/gate.json when corpus and gold are the bundled ones",
    )  # fmt: skip
    p.add_argument("--no-gate", action="store_true", help="ignore the default gate file (flags still apply)")
    p.add_argument(
        "--max-failures", type=int, default=20, metavar="N",
        help="failing questions to print (0: all; default 20); the report lists all",
    )  # fmt: skip
    p.add_argument(
        "--compare-retrievers", action="store_true",
        help="also score retrieval alone with each retriever (dense, BM25, hybrid) and add the table to the report",
    )  # fmt: skip
    p.add_argument(
        "--simulate-unanswerable", action="store_true",
        help="also ask every answerable question with the passages that answer it left out (it must then be "
        "refused) and report the simulated_* refusal figures; no unanswerable gold rows needed (implied when a "
        "gate bound names a simulated_* metric)",
    )  # fmt: skip
    p.add_argument(
        "--simulate-learning", action="store_true",
        help="instead of the usual run: split each answer's gold questions into confirmed history (given as links) "
        "and unseen test questions, and print hit@1 and the refusal figures as the history grows (0-75%%), "
        "unanswerable rows scored at every point (docs/learning.md)",
    )  # fmt: skip
    p.set_defaults(func=cmd_eval)


def _is_bundled(corpus: list[str]) -> bool:
    root = BUNDLED_CORPUS.resolve()
    return bool(corpus) and all(Path(c).resolve() == root or root in Path(c).resolve().parents for c in corpus)


def cmd_eval(args: argparse.Namespace) -> int:
    require_extra("eval", "assistant eval")  # before the imports below need pandas
    # Deferred: pandas, matplotlib and the models are heavy; `assistant --help` stays fast.
    from tqdm import tqdm

    import assistant.evaluation as ev
    from assistant.evaluation.console import (
        format_comparison,
        format_failures,
        format_summary,
        format_table,
    )
    from assistant.evaluation.report import write_report, write_summary_json
    from assistant.evaluation.retrieval_report import (
        compare_retrievers,
        fields_used,
        refusal_section,
        retriever_section,
        simulated_section,
    )

    if args.max_failures < 0:
        raise ConfigError(f"--max-failures must be >= 0, got {args.max_failures}")
    # Everything that can be wrong with the input is checked before the model loads.
    flags = [ev.parse_bound(t, "min", option="--fail-under") for t in args.fail_under]
    flags += [ev.parse_bound(t, "max", option="--fail-over") for t in args.fail_over]
    corpus, _, _ = resolve_corpus_args(args)
    bundled_corpus = _is_bundled(corpus)
    if args.gold:
        gold_path = Path(args.gold)
    elif bundled_corpus:
        gold_path = BUNDLED_GOLD
    else:
        raise ConfigError("--gold is required with a corpus other than the bundled one")
    gold = ev.load_gold(gold_path)
    if args.gate:
        gate = ev.load_gate(args.gate)
    elif not args.no_gate and bundled_corpus and BUNDLED_GATES.get(gold_path.resolve(), Path()).is_file():
        gate = ev.load_gate(BUNDLED_GATES[gold_path.resolve()])
    else:
        gate = []
    bounds = ev.merge_bounds(gate, flags)
    # A gate on a simulated_* figure runs the leave-out simulation it needs.
    simulate = args.simulate_unanswerable or any(b.metric in ev.SIMULATED_METRICS for b in bounds)
    baseline = ev.load_results(args.baseline) if args.baseline else None

    if args.simulate_learning:
        if not args.gold:  # the bundled held-out set is scored to report, never simulated on
            raise ConfigError("--simulate-learning needs --gold (a tuning set, e.g. evals/dev.jsonl)")
        return _simulate_learning(args, gold)
    t0 = time.perf_counter()
    assistant, _, _ = common.open_assistant(args)
    common.keep_gold_unseen(assistant, gold_path, quiet=args.quiet)
    bar = None
    if not args.quiet:
        total_q = len(gold) + (sum(q.answerable for q in gold) if simulate else 0)
        bar = tqdm(total=total_q, desc="eval", unit="q", file=sys.stderr, leave=False)
    try:
        run = ev.run_eval(
            assistant, gold, bounds=bounds, baseline=baseline,
            on_result=(lambda q, a: bar.update()) if bar else None, simulate=simulate,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    total = time.perf_counter() - t0

    print(format_summary(run))
    answering = float(run.results["latency_ms"].sum()) / 1000
    print(f"\n{len(gold)} questions answered in {answering:.1f}s; {total:.1f}s in all (model and index load included)")
    if run.comparison is not None:
        print(format_comparison(run.comparison))
    print(format_failures(run.results, args.max_failures))
    if (run.results["conversation"] == "follow-up").any():  # gold rows with history: accuracy both ways
        from assistant.evaluation.scoring import (  # pandas-backed, as the imports above
            breakdown,
            clarify_count,
        )

        print(f"\naccuracy with and without history (clarify replies: {clarify_count(run.results)}):")
        print(format_table(breakdown(run.results, "conversation").round(3)))
    if args.json:
        try:
            write_summary_json(args.json, run.summary)
        except OSError as exc:
            raise ConfigError(f"--json {args.json}: cannot write ({exc.strerror or exc})") from None
    extra_sections = []
    section = refusal_section(run.results)
    if section is not None:
        extra_sections.append(section)
        print("\n" + format_table(section.tables[0].frame))
    if run.simulated is not None:
        section = simulated_section(run.results, run.simulated)
        if section is None:
            print("\nleave-out simulation: no answerable question names passages to leave out")
        else:
            extra_sections.append(section)
            at_90 = run.summary.get("simulated_answerable_refused_at_90")
            print(
                "\nleave-out simulation (each answerable question asked with its passages left out):\n"
                + format_table(section.tables[0].frame)
                + (f"\nto refuse 90% of the left-out questions, {at_90:.1%} of answerable ones would be refused" if at_90 is not None else "")
            )
    if args.compare_retrievers:
        table = compare_retrievers(assistant, gold)
        print("\nretrievers compared (answerable questions):\n" + format_table(table))
        extra_sections.append(retriever_section(table))
    if args.out:
        meta = {
            "corpus": ", ".join(str(Path(c).resolve()) for c in corpus),
            "gold": str(gold_path),
            "model": str(assistant.index.manifest.get("model", "")),
            "passages": str(len(assistant.index.passages)),
            "retrieval": f"{assistant.retriever.config.mode}; fields: {fields_used(assistant.index)}",
            "verifier": getattr(assistant, "verifier_name", "none"),
            "run": f"{time.strftime('%Y-%m-%d %H:%M')}; {len(gold)} questions answered in {answering:.1f}s, "
            f"{total:.1f}s in all (model and index load included)",
        }
        refusal = getattr(assistant, "refusal", None)
        if refusal is not None:
            meta["refusal model"] = str(getattr(refusal, "source", type(refusal).__name__))
        if args.baseline:
            meta["baseline"] = str(args.baseline)
        try:
            paths = write_report(args.out, run, meta=meta, extra_sections=extra_sections)
        except OSError as exc:
            raise ConfigError(f"--out {args.out}: cannot write the report ({exc.strerror or exc})") from None
        print(f"\nreport: {paths['html']} (also {paths['markdown'].name}, {paths['results'].name}, {paths['summary'].name})")
    status = 0
    if run.failures:
        print("\nGATE FAILED:", file=sys.stderr)
        for f in run.failures:
            print(f"  {f}", file=sys.stderr)
        status = 1
    elif bounds:
        print(f"\ngate passed ({len(bounds)} bound(s))")
    if run.regressed:
        n = len(run.comparison.regressions)
        if args.allow_regressions:
            print(f"{n} regression(s) against the baseline (allowed by --allow-regressions)", file=sys.stderr)
        else:
            print(f"REGRESSED: {n} question(s) went from right to wrong against the baseline", file=sys.stderr)
            status = 1
    return status


def _simulate_learning(args: argparse.Namespace, gold) -> int:
    """``--simulate-learning``: the learning curve of the gold set (assistant/learning/simulate.py)."""
    import tempfile

    import pandas as pd

    from assistant.evaluation.console import format_table
    from assistant.evaluation.report import write_summary_json
    from assistant.learning.simulate import simulate_learning

    with tempfile.TemporaryDirectory(prefix="no-links-") as tmp:
        empty = Path(tmp) / "learned.jsonl"  # the points without links use none, not the corpus's own
        empty.write_text("", encoding="utf-8")

        def open_with(links: Path | None):
            # The command's index folder is reused: each point embeds only its new keys.
            args.learned = str(links if links is not None else empty)
            assistant, _, _ = common.open_assistant(args)
            common.keep_gold_unseen(assistant, args.gold or BUNDLED_GOLD, quiet=args.quiet)
            return assistant

        points = simulate_learning(open_with, gold)
    frame = pd.DataFrame([p.to_dict() for p in points]).round(4)
    print("learning curve (links from each answer's earlier gold questions; the test questions are never linked):")
    print(format_table(frame))
    if args.json:
        write_summary_json(args.json, {"learning_curve": [p.to_dict() for p in points]})
    return 0
