"""Lexical (BM25) scoring over passages with the ``bm25s`` library and a Snowball stemmer."""

from __future__ import annotations

import math
import re

import numpy as np

from assistant.schema import Passage

# A compact English stop list: question words and fillers that carry no policy content.
STOPWORDS = frozenset(
    """a about above after again all am an and any are as at be been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her
    here hers him his how i if in into is it its itself just me more most my myself no nor not of off on
    once only or other our ours out over own same she should so some such than that the their them then
    there these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself hi hello hey please thanks thank u ur pls
    plz im i'm ive dont can't cant wanna gonna get got also tell know want need like""".split()
)
TOKEN_RE = re.compile(r"(?u)\b\w\w+\b")


class LexicalIndex:
    """BM25 over title + text of every passage (k1=1.2, b=0.75, Lucene variant)."""

    def __init__(self, passages: list[Passage], *, k1: float = 1.2, b: float = 0.75) -> None:
        import bm25s
        import Stemmer

        self._stemmer = Stemmer.Stemmer("english")
        self._bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        docs = [f"{p.title}\n{p.text}" if p.title != p.doc_id else p.text for p in passages]
        tokens = [self.tokenize(d) or ["__empty__"] for d in docs]
        self._bm25.index(tokens, show_progress=False)
        self.n = len(passages)
        self.passage_terms = [set(t) for t in tokens]
        self.vocabulary = set().union(*self.passage_terms) if tokens else set()
        df: dict[str, int] = {}
        for terms in self.passage_terms:
            for t in terms:
                df[t] = df.get(t, 0) + 1
        n = max(1, len(passages))
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        self.max_idf = math.log(1 + (n + 0.5) / 0.5)

    def strength(self, question: str, passage: int) -> float:
        """How much of the question's lexical evidence one passage carries, in [0, 1].

        The idf-weighted share of the question's content terms found in the passage; terms
        the corpus never uses count with the highest idf. Exact, rare-term matches ("Amazon
        Pay", an error code) score near 1; paraphrases sharing only common words near 0.
        """
        terms = set(self.tokenize(question))
        if not terms:
            return 0.0
        total = sum(self.idf.get(t, self.max_idf) for t in terms)
        hit = sum(self.idf[t] for t in terms & self.passage_terms[passage])
        return hit / total if total > 0 else 0.0

    def coverage(self, question: str, passage: int | None = None) -> float:
        """Share of the question's content terms found in the corpus (or in one passage).

        A question whose words the store's FAQ never uses ("weather", "London") is most
        likely off-topic however close its embedding lands; 1.0 when it has no content terms.
        """
        terms = set(self.tokenize(question))
        if not terms:
            return 1.0
        vocab = self.vocabulary if passage is None else self.passage_terms[passage]
        return len(terms & vocab) / len(terms)

    def tokenize(self, text: str) -> list[str]:
        words = [w for w in TOKEN_RE.findall(text.lower()) if w not in STOPWORDS]
        return self._stemmer.stemWords(words)

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of every passage for ``question`` (zeros when no term matches)."""
        terms = self.tokenize(question)
        if not terms:
            return np.zeros(self.n, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)
