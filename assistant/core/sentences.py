"""Sentences: passage text split into (start, end) spans, so quotes stay verbatim, and the
sentence selector that scores which of them answer a question.

The selector is a listwise model fitted on tuning data (scripts/fit_selector.py): each sentence's
features (both encoders' scores, overlap with the question's content words, whether it holds the
answer type the question asks for, ...) give it a probability of holding an asked fact;
assistant/core/answer.py quotes the best of them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from assistant.schema import Hit

# A sentence ends at . ! ? (possibly repeated, possibly followed by a closing quote or bracket)
# when the next non-space character starts a new sentence, or at a line break. Scraped text
# often lacks the space ("location.For Europe"), so a lowercase word directly followed by
# ".Capital" also splits.
_END = re.compile(
    r"""(?:[.!?]+['"’”)\]]*(?=\s+[\W\d]*[A-Z0-9•(\"'“‘])"""  # end punctuation, then space, then a new sentence
    r"""|(?<=[a-z]{2})[.!?]+(?=[A-Z][a-z])"""  # "location.For"
    r"""|\n+)"""  # hard line breaks (bullets, scraped lines)
)
_ABBREV = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|approx|no|dr|mr|mrs|ms|st|inc|ltd|co|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)|\b[A-Z])\.$", re.I)
_BULLET = re.compile(r"^\s*(?:[•·▪◦‣●○\-\*\+]|\d{1,2}[.)])\s*")
MIN_CHARS = 3
MERGE_BELOW = 12


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Return (start, end) offsets of the sentences of ``text``; ``text[start:end]`` is stripped."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _END.finditer(text):
        end = m.end() if m.group(0)[0] in ".!?" else m.start()
        if m.group(0)[0] in ".!?" and _ABBREV.search(text[start : m.start() + 1]) and "\n" not in m.group(0):
            continue  # "e.g." or an initial: not a sentence end
        _add(text, start, end, spans)
        start = m.end()
    _add(text, start, len(text), spans)
    # A fragment like "Yes!" carries no policy on its own: join it to the sentence after it.
    merged: list[tuple[int, int]] = []
    carry: int | None = None
    for s, e in spans:
        if carry is not None:
            s, carry = carry, None
        if e - s < MERGE_BELOW and len(text[s:e].split()) <= 2 and "\n" not in text[s:e]:
            carry = s
            continue
        merged.append((s, e))
    if carry is not None:
        if merged:
            merged[-1] = (merged[-1][0], spans[-1][1])
        else:
            merged.append((carry, spans[-1][1]))
    return merged


def _add(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    chunk = text[start:end]
    lead = len(chunk) - len(chunk.lstrip())
    start += lead
    # Drop a leading bullet glyph so the quote reads as a sentence (still a verbatim substring).
    m = _BULLET.match(text[start:end])
    if m and m.end() < end - start:
        start += m.end()
    end = start + len(text[start:end].rstrip())
    if end - start >= MIN_CHARS and re.search(r"\w", text[start:end]):
        spans.append((start, end))


def split_sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


def one_line(text: str) -> str:
    """A quoted sentence inside the joined answer line: verbatim, its line breaks become spaces."""
    return " ".join(text.split())


# --- the sentence selector ---------------------------------------------------------------------
# A sentence stating an amount (the answer to "how much ...?"; answer.py's not_stated reads it too). A share
# in words is one when it is a share of something ("20 percent of the trip price", "50 per cent off"),
# not "shipped 90 percent assembled".
STATES_AMOUNT_RE = re.compile(
    r"[$€£]\s*\d|\b\d+(?:[.,]\d+)?\s*(?:usd|eur|gbp|dollars?|euros?|pounds|%|per ?cent (?:of|off)\b)|\bfree\b|\bno (?:extra )?(?:charge|cost)\b"
    r"|\bfull (?:refund|price|amount)\b",
    re.IGNORECASE,
)
# Sentences that lean on the one before them ("These fees ...") are quoted with it.
ANAPHORA_RE = re.compile(r"^(?:these|this|that|those|it|they|such|however|and|but|also|otherwise)\b", re.IGNORECASE)

# What kind of answer a question asks for, and whether a sentence holds one. A "how long"
# question is answered by a duration, "how much" by an amount, "can I / do you" by a policy
# statement (often a negation: "We do not accept cash."), "which cards" by a list.
QUESTION_TYPES: dict[str, re.Pattern[str]] = {
    "duration": re.compile(
        r"\bhow (?:long|soon|quickly|fast|many (?:days|hours|weeks))\b|\b(?:delivery|shipping|processing|response|reply) times?\b"
        r"|\bwhen (?:will|would|can|do|does|should|is|are)\b|\b(?:days|hours|weeks) (?:to|until|till|for|before)\b"
        r"|\bdeadlines?\b|\btime ?limits?\b", re.IGNORECASE),
    "amount": re.compile(r"\bhow much\b|\bcosts?\b|\bprices?\b|\bfees?\b|\bcharges?\b", re.IGNORECASE),
    "contact": re.compile(r"\b(?:e-?mail|contact|reach|phone|call|talk|chat|speak|human|person|agent|representative)\b", re.IGNORECASE),
    "list": re.compile(r"\b(?:which|what) (?:\w+ )?(?:cards?|payments?|methods?|metals?|materials?|options?|kinds?|types?)\b", re.IGNORECASE),
    "yesno": re.compile(r"^\W*(?:can|could|do|does|did|is|are|will|would|should|may|must|am)\b", re.IGNORECASE),
}
SENTENCE_TRAITS: dict[str, re.Pattern[str]] = {
    "duration": re.compile(r"\b\d+(?:\s*(?:-|to)\s*\d+)?\s*(?:working |business )?(?:days?|hours?|weeks?|months?)\b", re.IGNORECASE),
    "amount": re.compile(r"[$€£]\s*\d|\b\d+(?:\.\d\d)?\s*(?:usd|eur|gbp|dollars?|euros?|pounds)\b|\bfree\b|\bcosts?\b|\bfees?\b|\bprices?\b", re.IGNORECASE),
    "contact": re.compile(r"[\w.+-]+@[\w-]+\.\w|\bchat\b|\bcall us\b|\bphone\b", re.IGNORECASE),
    "list": re.compile(r",[^,]+,|\bincluding\b|&", re.IGNORECASE),
    "yesno": re.compile(r"\b(?:not|no|never|cannot|only)\b|n't\b|^\W*(?:yes|no)\b|\b(?:we|you) (?:accept|offer|do|will|can|must|may)\b", re.IGNORECASE),
}
# What a sentence must *state* to open the answer to a question of each type (the lead rule,
# AnswerConfig.lead_type_rel). Stricter than SENTENCE_TRAITS, which also count a sentence that
# only names the topic ("The phone line is open ...", "... fees may apply"): a contact question
# is answered by an address, a number or the chat, an amount question by an amount.
ANSWER_TRAITS: dict[str, re.Pattern[str]] = {
    "duration": SENTENCE_TRAITS["duration"],
    "amount": STATES_AMOUNT_RE,
    "contact": re.compile(r"[\w.+-]+@[\w-]+\.\w|\+?\d[\d ()/-]{6,}\d|\bchat\b|\bcall us\b", re.IGNORECASE),
    "list": SENTENCE_TRAITS["list"],
}
# Pointers elsewhere ("Check out our Shipping Policy Page for more details!") answer nothing.
GENERIC_RE = re.compile(r"\bfor more details?\b|\bcheck out our\b|\bunable to find\b", re.IGNORECASE)
WORD_RE = re.compile(r"(?u)\b\w\w+\b")


def question_types(question: str) -> set[str]:
    """The answer types ``question`` asks for (QUESTION_TYPES keys; empty when none is recognised)."""
    return {name for name, rx in QUESTION_TYPES.items() if rx.search(question)}


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer, already used by the BM25 index

    return Stemmer.Stemmer("english")


def content_terms(text: str) -> set[str]:
    """Stemmed words of ``text`` that carry content (the BM25 stop list removed)."""
    from assistant.core.lexical import STOPWORDS

    return set(_stemmer().stemWords([w for w in WORD_RE.findall(text.lower()) if w not in STOPWORDS]))


# The selector's inputs, in the order of its weights (scripts/fit_selector.py computes them the
# same way, through sentence_features).
SELECTOR_FEATURES = (
    "retr", "retr_gap", "ver", "ver_gap", "overlap", "type_match", "type_miss", "passage_rank",
    "position", "generic", "anaphor", "ver_top", "specific", "first_short", "negation",
)  # fmt: skip
# A concrete detail (a number, an address, an amount) is what an asked fact usually is; a
# negation is how a policy answers "can I / do you" ("We do not accept man-made damage!").
SPECIFIC_RE = re.compile(r"\d|@|%|[$€£]")
NEGATION_RE = re.compile(r"\b(?:not|no|never|cannot|only)\b|n't\b", re.IGNORECASE)


def sentence_features(
    question: str,
    types: set[str],
    terms: set[str],
    text: str,
    *,
    retr: float,
    retr_best: float,
    ver: float | None,
    ver_best: float | None,
    passage_rank: int,
    position: int,
    passage_sentences: int | None = None,
) -> dict[str, float]:
    """The selector's features for one candidate sentence ``text`` of a question.

    Args:
        types: ``question_types(question)``; terms: ``content_terms(question)``.
        retr, retr_best: the retriever's cosine of the question with this sentence, and the
            best over all candidate sentences; ver, ver_best: the same from the verifier (None
            without one: the retriever's stand in).
        passage_rank: 0 for the best candidate passage; position: the sentence's index in its passage;
            passage_sentences: how many sentences its passage has (None: unknown). The first
            sentence of a one- or two-sentence passage (a short FAQ answer) usually is the answer.
    """
    if ver is None or ver_best is None:
        ver, ver_best = retr, retr_best
    words = content_terms(text)
    asked = [t for t in types if t != "yesno"] or [t for t in types]
    match = any(SENTENCE_TRAITS[t].search(text) for t in asked) if asked else False
    return {
        "retr": retr,
        "retr_gap": retr - retr_best,
        "ver": ver,
        "ver_gap": ver - ver_best,
        "overlap": len(terms & words) / len(terms) if terms else 0.0,
        "type_match": 1.0 if match else 0.0,
        "type_miss": 1.0 if asked and not match else 0.0,
        "passage_rank": float(min(passage_rank, 3)),
        "position": float(min(position, 4)),
        "generic": 1.0 if GENERIC_RE.search(text) else 0.0,
        "anaphor": 1.0 if ANAPHORA_RE.match(text) else 0.0,
        "ver_top": 1.0 if ver >= ver_best else 0.0,
        "specific": 1.0 if SPECIFIC_RE.search(text) else 0.0,
        "first_short": 1.0 if position == 0 and passage_sentences is not None and passage_sentences <= 2 else 0.0,
        "negation": 1.0 if "yesno" in types and NEGATION_RE.search(text) else 0.0,
    }


# Fitted by scripts/fit_selector.py (tuning data only, listwise); rerun it after changing the features.
SELECTOR_WEIGHTS: dict[str, float] = {
    "retr": 0.5363, "retr_gap": 0.7347, "ver": 1.1215, "ver_gap": 1.4145, "overlap": 1.4091, "type_match": 0.5198,
    "type_miss": -0.4788, "passage_rank": -0.1705, "position": -0.0509, "generic": -1.0634, "anaphor": -0.1517,
    "ver_top": 0.4799, "specific": 0.669, "first_short": 1.104, "negation": -0.2638,
}  # fmt: skip
SELECTOR_BIAS = -0.9059


@dataclass(frozen=True)
class SentenceSelector:
    """A sentence's score sigmoid(bias + weights . features): the higher, the likelier it is the answer.

    The default weights were fitted by ``scripts/fit_selector.py`` on the tuning questions only
    (evals/dev.jsonl and evals/gold.jsonl on the bundled corpus and the suite's tuning corpora;
    never evals/test.jsonl or a test corpus) with a listwise objective: a softmax over each
    question's candidate sentences, so the weights rank a question's sentences against each
    other (docs/retrieval.md, section 6).
    """

    weights: Mapping[str, float] = field(default_factory=lambda: dict(SELECTOR_WEIGHTS))
    bias: float = SELECTOR_BIAS

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(SELECTOR_FEATURES)
        if unknown:
            raise ValueError(f"unknown selector feature(s) {', '.join(sorted(unknown))}; known: {', '.join(SELECTOR_FEATURES)}")

    def probability(self, features: Mapping[str, float]) -> float:
        z = self.bias + sum(w * features[f] for f, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def score_sentences(
    question: str,
    candidates: Sequence[Hit],
    scores: Mapping[str, list[tuple[int, int, float]]],
    selector: SentenceSelector,
    verified: Mapping[str, list[tuple[int, int, float]]] | None = None,
) -> list[tuple[float, int, int, int, dict[str, float]]]:
    """Every candidate sentence as (p, passage rank, start, end, features), best first."""
    rank_of = {h.passage.id: r for r, h in enumerate(candidates)}
    rows = [(pid, i, s, e, sc) for pid, sents in scores.items() if pid in rank_of for i, (s, e, sc) in enumerate(sents)]
    if not rows:
        return []
    ver_of: dict[tuple[str, int], float] = {}
    for pid, sents in (verified or {}).items():
        for s, e, sc in sents:
            ver_of[(pid, s)] = sc
    retr_best = max(r[4] for r in rows)
    vers = [ver_of.get((pid, s)) for pid, _, s, _, _ in rows]
    have_ver = bool(vers) and all(v is not None for v in vers)
    ver_best = max(vers) if have_ver else None
    types, terms = question_types(question), content_terms(question)
    out = []
    for (pid, i, s, e, sc), v in zip(rows, vers):
        text = candidates[rank_of[pid]].passage.text[s:e]
        f = sentence_features(
            question, types, terms, text, retr=sc, retr_best=retr_best, ver=v if have_ver else None,
            ver_best=ver_best, passage_rank=rank_of[pid], position=i, passage_sentences=len(scores[pid]),
        )  # fmt: skip
        out.append((selector.probability(f), rank_of[pid], s, e, f))
    out.sort(key=lambda x: (-x[0], x[1], x[2]))
    return out
