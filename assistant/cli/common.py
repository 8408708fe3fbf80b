"""What every command that answers questions shares: opening the assistant, progress and log lines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from assistant.cli.settings import encoder_backend, resolve_corpus_args, verifier_choice
from assistant.core.pipeline import Assistant
from assistant.evaluation.gold import gold_digest

def _log(quiet: bool):
    return None if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))


def _progress_factory(quiet: bool):
    if quiet:
        return None

    def factory(total: int):
        bar = tqdm(total=total, desc="embedding", unit="vec", file=sys.stderr, leave=False)

        def update(n: int) -> None:
            bar.update(n)
            if bar.n >= bar.total:
                bar.close()

        return update

    return factory


def open_assistant(args: argparse.Namespace):
    """Open the assistant for the corpus/index/model the command line names."""
    corpus, index_dir, model = resolve_corpus_args(args)
    assistant, stats = Assistant.open(
        corpus, index_dir, model=model, rebuild=getattr(args, "rebuild", False),
        progress_factory=_progress_factory(args.quiet), log=_log(args.quiet), backend=encoder_backend(args),
        verifier=verifier_choice(args), self_calibrate=True,
    )
    gold = getattr(args, "gold", None)
    if args.command == "eval" and gold and Path(gold).is_file() and assistant.refusal.source != "default":
        # Never score a gold set with a refusal model fitted on that same set.
        if gold_digest(gold) in assistant.refusal.source:
            if not args.quiet:
                print(f"note: the stored calibration was fitted on {gold}; scoring it with the default refusal model",
                      file=sys.stderr)
            assistant.refusal = assistant.default_refusal()
    return assistant, stats, index_dir
