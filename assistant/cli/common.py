"""What every command that answers questions shares: opening the assistant, progress and log lines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from assistant.core.pipeline import Assistant
from assistant.errors import LinkError
from assistant.evaluation.gold import gold_digest
from assistant.settings import (
    encoder_backend,
    learned_path,
    resolve_corpus_args,
    verifier_choice,
)


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
    verifier, verifier_missing = verifier_choice(args)
    if verifier_missing:  # said even with --quiet: answers are less careful than the user expects
        print(f"warning: verifier off ({verifier_missing}); answering as with --verifier none", file=sys.stderr, flush=True)
    learned = links_file(args, corpus)
    assistant, stats = Assistant.open(
        corpus, index_dir, model=model, rebuild=getattr(args, "rebuild", False),
        progress_factory=_progress_factory(args.quiet), log=_log(args.quiet), backend=encoder_backend(args),
        verifier=verifier, self_calibrate=True, learned=learned,
    )
    assistant.verifier_missing = verifier_missing
    return assistant, stats, index_dir


def links_file(args: argparse.Namespace, corpus: list[str]) -> Path:
    """The links file the command uses; one named by --learned or ASSISTANT_LEARNED must exist."""
    path, named = learned_path(args, corpus)
    if named and not path.is_file():
        raise LinkError(f"links file not found: {path} (--learned / ASSISTANT_LEARNED)")
    return path


def keep_gold_unseen(assistant, gold: str | Path, *, quiet: bool) -> None:
    """Never score a gold set with a refusal model fitted on that same set: fall back to the default.

    ``assistant eval`` calls it with the gold file it is about to score, whether named by
    ``--gold`` or the bundled default.
    """
    if assistant.refusal.source == "default" or not Path(gold).is_file():
        return
    if gold_digest(gold) in assistant.refusal.source:
        if not quiet:
            print(f"note: the stored calibration was fitted on {gold}; scoring it with the default refusal model",
                  file=sys.stderr)
        assistant.refusal = assistant.default_refusal()
