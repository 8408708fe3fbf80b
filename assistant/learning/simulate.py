"""The learning-curve simulation: a gold set's answerable questions split into confirmed history
(given as links) and unseen test questions, scored as the history grows.

Questions that share their relevant passages form a *group* (one FAQ entry's paraphrases).
Within each group the questions, in id order, are dealt into ``FOLDS`` folds by position: the
last fold is always the test set; the history is the first 0, 1, 2 or 3 folds (0%, 25%, 50%,
75% of each group's questions). ``halves`` scores the odd positions without links, then with the even ones linked.
Unanswerable questions are never linked and are scored at every point: links must not make
them look answerable.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from assistant.core.pipeline import Assistant
from assistant.errors import GoldError
from assistant.evaluation import metrics as m
from assistant.evaluation.gold import GoldQuestion
from assistant.evaluation.scoring import evaluate, summarize
from assistant.learning.links import Link, new_link, save_links
from assistant.schema import Passage

FOLDS = 4
HISTORY = (0, 1, 2, 3)  # folds of each group given as links at each point of the curve


@dataclass(frozen=True)
class CurvePoint:
    """The scores of the test questions with ``links`` confirmed questions linked."""

    history: str  # e.g. "50%" of each group's questions, or "halves"
    links: int
    test_questions: int  # answerable questions scored
    hit_at_1: float | None
    answerable_accuracy: float | None
    answerable_refused: float | None
    unanswerable_questions: int
    unanswerable_refused: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def folds(gold: Sequence[GoldQuestion]) -> dict[str, int]:
    """Each answerable question's fold: its position, in id order, within its group, modulo FOLDS."""
    groups: dict[tuple[str, ...], list[GoldQuestion]] = {}
    for q in gold:
        if q.answerable:
            groups.setdefault(tuple(sorted(q.relevant_ids)) or tuple(sorted(q.must_include)), []).append(q)
    out = {}
    for rows in groups.values():
        for i, q in enumerate(sorted(rows, key=lambda r: r.id)):
            out[q.id] = i % FOLDS
    return out


def link_target(q: GoldQuestion, passages: Sequence[Passage]) -> Passage:
    """The passage a question's link names: the first relevant passage in corpus order (one whose
    text holds every ``must_include`` fact first)."""
    relevant = [p for p in passages if m.passage_is_relevant(p, q.relevant_ids, q.must_include)]
    if not relevant:
        relevant = [p for p in passages if m.passage_is_relevant(p, q.relevant_ids)]
    if not relevant:
        raise GoldError(f"{q.where}: question {q.id!r} names no passage of the corpus to link")
    full = [p for p in relevant if not q.must_include or not m.missing_facts(p.text, q.must_include)]
    return (full or relevant)[0]


def history_links(history: Sequence[GoldQuestion], passages: Sequence[Passage]) -> list[Link]:
    return [new_link(q.question, link_target(q, passages), by="simulation", at="") for q in history]


def score_point(assistant: Assistant, label: str, links: int, test: Sequence[GoldQuestion]) -> CurvePoint:
    summary = summarize(evaluate(assistant, test, warm_up=False))
    return CurvePoint(
        label, links, sum(q.answerable for q in test), summary.get("hit@1"), summary.get("answerable_accuracy"),
        summary.get("over_refusal_rate"), sum(not q.answerable for q in test), summary.get("unanswerable_accuracy"),
    )


def simulate_learning(
    open_with: Callable[[Path | None], Assistant],
    gold: Sequence[GoldQuestion],
    *,
    halves: bool = True,
    history: Sequence[int] = HISTORY,
    on_point: Callable[[CurvePoint], None] | None = None,
) -> list[CurvePoint]:
    """The learning curve of ``gold`` (and the halves split): one CurvePoint per history size.

    ``open_with(links_file)`` opens the assistant with that links file (None: no links); the
    caller keeps one index folder so that each point embeds only its new keys.
    """
    fold = folds(gold)
    unanswerable = [q for q in gold if not q.answerable]
    runs: list[tuple[str, list[GoldQuestion], list[GoldQuestion]]] = []
    for h in history:
        if not 0 <= h < FOLDS:
            raise ValueError(f"history must be between 0 and {FOLDS - 1} folds, got {h}")
        runs.append((f"{100 * h // FOLDS}%", [q for q in gold if fold.get(q.id, -1) < h and q.id in fold],
                     [q for q in gold if fold.get(q.id) == FOLDS - 1]))  # fmt: skip
    if halves:  # the odd positions scored without links, then with the even ones linked
        odd = [q for q in gold if fold.get(q.id, 0) % 2 == 1]
        runs.append(("halves, no links", [], odd))
        runs.append(("halves", [q for q in gold if fold.get(q.id, 1) % 2 == 0 and q.id in fold], odd))
    points = []
    passages: list[Passage] | None = None
    with tempfile.TemporaryDirectory(prefix="learning-") as tmp:
        for label, linked, test in runs:
            path = None
            if linked:
                if passages is None:
                    passages = list(open_with(None).index.passages)
                path = Path(tmp) / f"links-{len(points)}.jsonl"
                save_links(path, history_links(linked, passages))
            assistant = open_with(path)
            passages = list(assistant.index.passages)
            point = score_point(assistant, label, len(linked), [*test, *unanswerable])
            if on_point is not None:
                on_point(point)
            points.append(point)
    return points
