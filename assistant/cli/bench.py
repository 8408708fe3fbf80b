"""``assistant bench``: speed and scale figures side by side with a naive RAG path and BM25 only.

Prints one table (plus the answer-quality comparison of the encoders) and writes all figures
as JSON. See docs/performance.md for what each row measures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from assistant.errors import ConfigError
from assistant.extras import require_extra
from assistant.settings import resolve_corpus_args

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STACKFAQ = ROOT.parent / "shared" / "benchmarks" / "stackfaq"


# Mirrors benchmarks.run.SECTIONS / SCALES (not imported here: building the parser stays light).
SECTIONS = ("cold", "warm", "api", "build", "reindex", "scale", "quality")
SCALES = ("10k", "100k", "1m", "2m")


def register(sub, add_corpus_args) -> None:
    p = sub.add_parser(
        "bench", help="speed and scale benchmarks (prints a table, writes JSON)",
        description="Cold start, warm latency, JSON API under concurrency, build throughput, re-index time and "
        "the 10k/100k/1M scale series, each next to a naive path (sentence-transformers + flat FAISS) and "
        "BM25 only. The 1M point is opt-in (--scale 10k,100k,1m): about 15 minutes and 6 GB of disk.",
    )
    add_corpus_args(p)
    p.add_argument("--out", default="bench-out/bench.json", help="JSON results file (default bench-out/bench.json)")
    p.add_argument("--work-dir", default="bench-out/work", help="indexes and synthetic data, reused between runs")
    p.add_argument("--gold", default=str(ROOT / "evals" / "gold.jsonl"), help="questions for latency and quality")
    p.add_argument("--dev", default=str(ROOT / "evals" / "dev.jsonl"), help="second gold set for the quality check")
    p.add_argument("--stackfaq", default=str(DEFAULT_STACKFAQ), help="StackFAQ folder (synthetic corpora and vectors)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    p.add_argument("--scale", default="10k,100k", help=f"comma list of {', '.join(SCALES)} (default 10k,100k)")
    p.add_argument("--runs", type=int, default=5, help="fresh processes per system for cold start (median)")
    p.add_argument("--clients", type=int, default=8, help="concurrent API clients")
    p.add_argument("--requests", type=int, default=400, help="API requests in all")
    p.add_argument("--build-passages", type=int, default=1000, help="passages in the build-throughput corpus")
    p.add_argument("--reindex-passages", type=int, default=10_000, help="passages in the re-index corpus")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    # Deferred: the benchmarks import the models and the web stack; `assistant --help` stays fast.
    for extra in ("web", "eval", "torch"):  # the API load test, the tables, the naive baseline
        require_extra(extra, "assistant bench")
    from benchmarks.run import run_bench
    from benchmarks.tables import format_table, quality_rows, summary_rows

    for name in ("runs", "clients", "requests", "build_passages", "reindex_passages"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    corpus, _, model = resolve_corpus_args(args)
    results = run_bench(
        corpus=corpus, work=Path(args.work_dir), gold=Path(args.gold), dev=Path(args.dev) if args.dev else None,
        stackfaq=Path(args.stackfaq), model=model,
        sections=tuple(s.strip() for s in args.sections.split(",") if s.strip()),
        scales=tuple(s.strip().lower() for s in args.scale.split(",") if s.strip()),
        runs=args.runs, clients=args.clients, requests=args.requests,
        build_passages=args.build_passages, reindex_passages=args.reindex_passages,
    )
    results["table"] = summary_rows(results)
    results["quality_table"] = quality_rows(results)
    m = results["machine"]
    print(f"\nmachine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM; load average per section: "
          + ", ".join(f"{k} {v['before']}->{v['after']}" for k, v in results["load"].items()))
    print("ratios: how many times better ours is (>1 = ours better)\n")
    print(format_table(results["table"]))
    if results["quality_table"]:
        print("\nanswer quality on the gold sets, by encoder\n")
        print(format_table(results["quality_table"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"\nwrote {out}", file=sys.stderr)
    return 0
