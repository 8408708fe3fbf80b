"""Typo-tolerant queries: correct words unknown to both the model and the corpus to corpus words.

"can i cancle my order" becomes "can i cancel my order" because "cancle" is neither in the
model's word-piece vocabulary nor in the corpus, and "cancel" is one transposition away. A
word the model or the corpus knows is never changed, so off-topic words stay off-topic. Words
of three letters are corrected only by swapping two neighbouring letters ("dgo" -> "dog"): one
edit of any other kind turns most three-letter words into several others.
"""

from __future__ import annotations

import re
from pathlib import Path

WORD_RE = re.compile(r"[A-Za-z]+")
# "Which cards do you take?": customers say "take" where policies say "accept" ("We accept all
# major credit cards"), and neither encoder reads them as one (the verifier's cosine 0.38 against
# 0.56 for "Which cards do you accept?"). A "take" whose subject is the store ("do you / will
# they take") and that is not "take to / long / effect / back ..." nor in a "how long / when" question (time,
# not acceptance) is read as "accept" when the corpus says "accept".
TAKE_RE = re.compile(
    r"\b((?:do|does|did|will|would|can|could)\s+(?:you|u|ya|they|you guys|u guys)\s+)take\b"
    r"(?!\s+(?:to|too|long|longer|for|about|around|over|up|off|out|back|down|into|in|on|place|effect|part|care|time|days?|weeks?|hours?|a\s+while)\b)",
    re.IGNORECASE,
)
TIME_QUESTION_RE = re.compile(r"\bhow\s+(?:long|many|soon|quickly|fast)\b|\bwhen\b", re.IGNORECASE)


def model_vocabulary(model_path: Path | None) -> set[str]:
    """Whole words of a BERT-style word-piece vocabulary (``vocab.txt``), if the model has one."""
    if model_path is None or not (Path(model_path) / "vocab.txt").is_file():
        return set()
    words = (Path(model_path) / "vocab.txt").read_text(encoding="utf-8").split()
    return {w for w in words if w.isalpha() and w.islower()}


class TypoCorrector:
    """Map unknown query words to the closest corpus word (optimal string alignment distance)."""

    def __init__(
        self, corpus_texts: list[str], known_words: set[str], *, min_len: int = 4, swap_len: int | None = 3
    ) -> None:
        """``min_len``: shortest word corrected by any edit; ``swap_len`` (None: off): shorter words of
        at least this length are corrected only by one swap of neighbouring letters, to one corpus word."""
        self.corpus_words = sorted({w.lower() for t in corpus_texts for w in WORD_RE.findall(t) if len(w) >= 3})
        self._corpus_set = set(self.corpus_words)
        self.known = known_words | self._corpus_set
        self.min_len = min_len
        self.swap_len = swap_len

    def max_distance(self, word: str) -> int:
        return 1 if len(word) < 8 else 2

    def correct_word(self, word: str) -> str:
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        low = word.lower()
        if low in self.known:
            return word
        if len(low) < self.min_len:
            short_ok = self.swap_len is not None and len(low) >= self.swap_len
            return (self._swapped(low) or word) if short_ok else word
        match = process.extractOne(low, self.corpus_words, scorer=OSA.distance, score_cutoff=self.max_distance(low))
        return match[0] if match else word

    def _swapped(self, low: str) -> str | None:
        """The one corpus word that ``low`` becomes by swapping two neighbouring letters, if exactly one."""
        found = {low[:i] + low[i + 1] + low[i] + low[i + 2 :] for i in range(len(low) - 1)} & self._corpus_set
        return found.pop() if len(found) == 1 else None

    def correct(self, text: str) -> str:
        """``text`` with unknown words replaced by their corpus correction (unchanged if none), and a
        store's "take" read as the corpus's "accept" (TAKE_RE)."""
        text = WORD_RE.sub(lambda m: self.correct_word(m.group(0)), text)
        if "accept" in self._corpus_set and not TIME_QUESTION_RE.search(text):
            text = TAKE_RE.sub(lambda m: m.group(1) + _same_case("accept", m.group(0)[len(m.group(1)) :]), text)
        return text


def _same_case(word: str, like: str) -> str:
    """``word`` in the case of ``like`` (all capitals, capitalised or lower case)."""
    return word.upper() if like.isupper() else word.capitalize() if like[:1].isupper() else word
