"""`assistant lint`: find policy entries that contradict each other (near-duplicates whose numbers
differ, or of which one says no), so they are fixed before a customer is told both.

Exit status: 0 when none is found, 1 when some are, 2 on an error (as every command).
"""

from __future__ import annotations

import argparse
import json

from assistant.cli.common import _log, _progress_factory
from assistant.index.consistency import (
    MAX_CHECKED,
    MIN_SIMILARITY,
    Conflict,
    find_conflicts,
)
from assistant.index.layout import IndexLayout
from assistant.index.store import open_index
from assistant.models.onnx import open_encoder
from assistant.settings import encoder_backend, resolve_corpus_args


def register(sub, add_corpus_args) -> None:
    p = sub.add_parser("lint", help="report near-duplicate entries that disagree (numbers differ, or one says no)")
    add_corpus_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per disagreeing pair")
    p.add_argument(
        "--min-similarity", type=float, default=MIN_SIMILARITY, metavar="COSINE",
        help=f"how alike two questions (or texts) must be to count as the same entry (default {MIN_SIMILARITY})",
    )  # fmt: skip
    p.set_defaults(func=cmd_lint)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(conflicts: list[Conflict]) -> list[str]:
    """Report lines: each pair with where it is, why it disagrees, and both texts."""
    lines = []
    for c in conflicts:
        lines.append(f"  {c.describe()}")
        lines.append(f"      [{c.first.id}] \"{_short(c.first.text)}\"")
        lines.append(f"      [{c.second.id}] \"{_short(c.second.text)}\"")
    return lines


def index_report(index) -> list[str]:
    """What ``assistant index`` prints after its summary about contradicting entries (nothing when none)."""
    if len(index.passages) > MAX_CHECKED:
        return [f"note: contradiction check skipped ({len(index.passages):,} passages > {MAX_CHECKED:,}); "
                "run `assistant lint` for it"]
    conflicts = find_conflicts(index)
    if not conflicts:
        return []
    return [f"warning: {len(conflicts)} pair(s) of near-duplicate entries disagree (fix them, or "
            "answers will quote both with a note):", *describe(conflicts)]


def cmd_lint(args: argparse.Namespace) -> int:
    corpus, index_dir, model = resolve_corpus_args(args)
    log = _log(args.quiet)
    encoder = open_encoder(model, IndexLayout(index_dir).models, backend=encoder_backend(args), log=log)
    index, _ = open_index(
        corpus, index_dir, encoder, rebuild=args.rebuild, progress_factory=_progress_factory(args.quiet), log=log
    )
    conflicts = find_conflicts(index, min_similarity=args.min_similarity)
    if args.json:
        for c in conflicts:
            print(json.dumps(c.to_dict(), ensure_ascii=False))
    elif conflicts:
        print(f"{len(conflicts)} pair(s) of near-duplicate entries disagree in {len(index.passages)} passages:")
        print("\n".join(describe(conflicts)))
    else:
        print(f"no disagreeing near-duplicates in {len(index.passages)} passages")
    return 1 if conflicts else 0
