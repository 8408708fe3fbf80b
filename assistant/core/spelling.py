"""Typo-tolerant queries: correct words unknown to both the model and the corpus to corpus words.

"can i cancle my order" becomes "can i cancel my order" because "cancle" is neither in the
model's word-piece vocabulary nor in the corpus, and "cancel" is one transposition away. A
word the model or the corpus knows is never changed, so off-topic words stay off-topic.
"""

from __future__ import annotations

import re
from pathlib import Path

WORD_RE = re.compile(r"[A-Za-z]+")


def model_vocabulary(model_path: Path | None) -> set[str]:
    """Whole words of a BERT-style word-piece vocabulary (``vocab.txt``), if the model has one."""
    if model_path is None or not (Path(model_path) / "vocab.txt").is_file():
        return set()
    words = (Path(model_path) / "vocab.txt").read_text(encoding="utf-8").split()
    return {w for w in words if w.isalpha() and w.islower()}


class TypoCorrector:
    """Map unknown query words to the closest corpus word (optimal string alignment distance)."""

    def __init__(self, corpus_texts: list[str], known_words: set[str], *, min_len: int = 4) -> None:
        self.corpus_words = sorted({w.lower() for t in corpus_texts for w in WORD_RE.findall(t) if len(w) >= 3})
        self._corpus_set = set(self.corpus_words)
        self.known = known_words | self._corpus_set
        self.min_len = min_len

    def max_distance(self, word: str) -> int:
        return 1 if len(word) < 8 else 2

    def correct_word(self, word: str) -> str:
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        low = word.lower()
        if len(low) < self.min_len or low in self.known:
            return word
        match = process.extractOne(low, self.corpus_words, scorer=OSA.distance, score_cutoff=self.max_distance(low))
        return match[0] if match else word

    def correct(self, text: str) -> str:
        """``text`` with unknown words replaced by their corpus correction (unchanged if none)."""
        return WORD_RE.sub(lambda m: self.correct_word(m.group(0)), text)
