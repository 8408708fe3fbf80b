"""Content gaps by meaning: refused questions grouped by their embeddings, so staff see "gift
wrapping: 17 questions, 5 phrasings" instead of 17 rows.

Average-linkage agglomerative clustering on cosine similarity (numpy only: the server does not
need the [eval] extra): two groups merge while the mean similarity between their phrasings is
at least ``threshold``. A group is named by its most central phrasing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assistant.errors import ConfigError

# MiniLM cosine at which two refused questions count as one need (scripts/learning_curve.py
# --clusters measures the grouping of StackFAQ's paraphrases against their threads at several).
DEFAULT_THRESHOLD = 0.6
MAX_QUESTIONS = 500  # distinct questions clustered (the most asked): each merge scans an n x n matrix


@dataclass(frozen=True)
class QuestionGroup:
    """Refused questions that ask for the same thing."""

    label: str  # the most central phrasing
    count: int  # times asked, all phrasings together
    questions: tuple[tuple[str, int], ...]  # (phrasing, times asked), most asked first

    @property
    def phrasings(self) -> int:
        return len(self.questions)

    def to_dict(self) -> dict:
        return {
            "label": self.label, "count": self.count, "phrasings": self.phrasings,
            "questions": [{"question": q, "count": c} for q, c in self.questions],
        }  # fmt: skip


def cluster(vectors: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> list[list[int]]:
    """Average-linkage groups of L2-normalised ``vectors`` (row indices), largest first."""
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold must be a cosine in [-1, 1], got {threshold}")
    n = len(vectors)
    if n == 0:
        return []
    v = np.asarray(vectors, dtype=np.float64)
    sim = v @ v.T
    np.fill_diagonal(sim, -np.inf)
    sizes = np.ones(n)
    members: list[list[int] | None] = [[i] for i in range(n)]
    while n > 1:
        flat = int(np.argmax(sim))
        i, j = divmod(flat, len(sim))
        if sim[i, j] < threshold:
            break
        # The merged group's mean similarity to every other group, weighted by sizes.
        merged = (sizes[i] * sim[i] + sizes[j] * sim[j]) / (sizes[i] + sizes[j])
        sim[i], sim[:, i] = merged, merged
        sim[i, i] = -np.inf
        sim[j], sim[:, j] = -np.inf, -np.inf
        sizes[i] += sizes[j]
        members[i] = members[i] + members[j]
        members[j] = None
        n -= 1
    groups = [sorted(m) for m in members if m is not None]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def group_questions(
    questions: Sequence[tuple[str, int]], vectors: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD
) -> list[QuestionGroup]:
    """Group (question, times asked) pairs by meaning; most asked groups first.

    ``vectors``: one L2-normalised embedding per question, in the same order.
    """
    if len(questions) != len(vectors):
        raise ValueError(f"{len(questions)} questions but {len(vectors)} vectors")
    v = np.asarray(vectors, dtype=np.float64)
    out = []
    for rows in cluster(v, threshold):
        counts = np.array([questions[r][1] for r in rows], dtype=np.float64)
        centre = (v[rows] * counts[:, None]).sum(axis=0)
        central = rows[int(np.argmax(v[rows] @ centre))]
        ranked = sorted(rows, key=lambda r: (-questions[r][1], questions[r][0]))
        out.append(QuestionGroup(questions[central][0], int(counts.sum()), tuple((questions[r][0], questions[r][1]) for r in ranked)))
    return sorted(out, key=lambda g: (-g.count, -g.phrasings, g.label))
