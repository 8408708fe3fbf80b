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
# The store's own name in a question ("Does Notelyst work offline on Linux?") is read as "the store":
# every passage that names the store (its introduction, the sentence with its email address) is
# otherwise the closest match to any question that names it (the verifier's cosine 0.67 against
# 0.22 for "Does it work offline on Linux?"), and is quoted as if it answered. docs/retrieval.md, section 7.
STORE_WORD = "the store"
_NAME_TOKEN_RE = re.compile(r"[A-Za-zÀ-ÿ0-9]+")
_EMAIL_OR_URL_RE = re.compile(r"\S+@\S+|\bhttps?://\S+|\bwww\.\S+|\b[\w-]+(?:\.[\w-]+)*\.[a-z]{2,6}\b(?:/\S*)?")
_FUNCTION_WORDS = frozenset(
    "a an the is are was were do does did can could will would should may might must i you we they it my your our "
    "me us to of in on at for with from by about and or what when where who which how why there this that".split()
)


def store_name(corpus_texts: list[str], email: str | None, known_words: set[str] = frozenset()) -> str | None:
    """The store's name as the corpus writes it ("Notelyst", "Trattoria Lupo"): the words whose letters
    spell its support email's domain name (notelyst.io, trattorialupo.co.uk); None when the corpus never
    writes it outside an address, writes it in lower case anywhere (a common word: books.com's "books"),
    or it is made of words the model's vocabulary (``known_words``) all knows and never stands capitalised
    inside a sentence."""
    if not email or "@" not in email:
        return None
    label = re.sub(r"[^a-z0-9]", "", email.rsplit("@", 1)[1].split(".")[0].lower())
    if len(label) < 4:
        return None
    found: list[tuple[str, bool]] = []  # (the words as written, capitalised inside a sentence)
    for text in corpus_texts:
        text = _EMAIL_OR_URL_RE.sub(" ", text)
        tokens = list(_NAME_TOKEN_RE.finditer(text))
        for i in range(len(tokens)):
            spelled = ""
            for j in range(i, min(i + 4, len(tokens))):
                spelled += tokens[j].group(0).lower()
                if not label.startswith(spelled):
                    break
                if spelled == label:
                    words = [t.group(0) for t in tokens[i : j + 1]]
                    if all(w.islower() for w in words):
                        return None
                    before = text[: tokens[i].start()].rstrip()
                    inside = bool(before) and before[-1] not in ".!?:#\n\"'(" and words[0][:1].isupper()
                    found.append((" ".join(words), inside))
                    break
    if not found:
        return None
    words = {w.lower() for name, _ in found for w in name.split()}
    if words <= set(known_words) and not any(inside for _, inside in found):
        return None
    return max({name for name, _ in found}, key=[name for name, _ in found].count)


def model_vocabulary(model_path: Path | None) -> set[str]:
    """Whole words of a BERT-style word-piece vocabulary (``vocab.txt``), if the model has one."""
    if model_path is None or not (Path(model_path) / "vocab.txt").is_file():
        return set()
    words = (Path(model_path) / "vocab.txt").read_text(encoding="utf-8").split()
    return {w for w in words if w.isalpha() and w.islower()}


class TypoCorrector:
    """Map unknown query words to the closest corpus word (optimal string alignment distance)."""

    def __init__(
        self, corpus_texts: list[str], known_words: set[str], *, min_len: int = 4, swap_len: int | None = 3,
        store: str | None = None,
    ) -> None:
        """``min_len``: shortest word corrected by any edit; ``swap_len`` (None: off): shorter words of
        at least this length are corrected only by one swap of neighbouring letters, to one corpus word;
        ``store``: the store's name (``store_name``), read as "the store" in a question."""
        self.store = store
        self._store_re = None
        if store:
            spelled = r"[\s-]*".join(re.escape(w) for w in store.split())
            self._store_re = re.compile(rf"\b(?:{spelled}|{re.escape(re.sub(r'[^A-Za-z0-9]', '', store))})(?=(['’]s\b)?)(['’]s\b)?",
                                        re.IGNORECASE)  # fmt: skip
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
        return self.unnamed(text)

    def unnamed(self, text: str) -> str:
        """``text`` with the store's name read as "the store" ("Is Trattoria Lupo open on Mondays?" -> "Is
        the store open on Mondays?"), or dropped before another capitalised word ("Notelyst Plus" ->
        "Plus"); unchanged when nothing but the name would be asked ("What is Notelyst?")."""
        if self._store_re is None or not self._store_re.search(text):
            return text
        rest = [w for w in WORD_RE.findall(self._store_re.sub(" ", text).lower()) if w not in _FUNCTION_WORDS]
        if not rest:
            return text

        def repl(m: re.Match) -> str:
            nxt = text[m.end() :].lstrip()
            if nxt[:1].isupper() and not m.group(2):
                return ""
            return STORE_WORD + (m.group(2) or "")

        return re.sub(r"\s{2,}", " ", self._store_re.sub(repl, text)).strip()


def _same_case(word: str, like: str) -> str:
    """``word`` in the case of ``like`` (all capitals, capitalised or lower case)."""
    return word.upper() if like.isupper() else word.capitalize() if like[:1].isupper() else word
