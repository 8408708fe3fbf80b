"""The parts of a question a follow-up can swap ("what about Asia?" after a delivery question):
places, payment methods and items, found by small word lists, plus the shape of a follow-up.

No language model: a fragment such as "and to Canada?" is recognised by its lead-in and its
slot, and the previous question is asked again with that slot changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# More countries and large cities, by the region a policy names them by (REGIONS adds them there).
MORE_PLACES: dict[str, tuple[str, ...]] = {
    "asia": ("seoul", "busan", "beijing", "shanghai", "shenzhen", "guangzhou", "osaka", "kyoto", "delhi", "new delhi",
             "mumbai", "bangalore", "bangkok", "hanoi", "ho chi minh city", "manila", "jakarta", "kuala lumpur", "taipei",
             "macau", "pakistan", "bangladesh", "sri lanka", "nepal", "cambodia", "laos", "myanmar", "mongolia", "brunei",
             "afghanistan", "bhutan", "maldives", "burma", "kazakhstan", "uzbekistan", "kyrgyzstan", "tajikistan",
             "turkmenistan", "timor-leste", "east timor", "yokohama", "nagoya", "sapporo", "fukuoka", "incheon",
             "hangzhou", "chengdu", "wuhan", "nanjing", "tianjin", "chongqing", "kowloon", "hyderabad", "chennai",
             "kolkata", "pune", "karachi", "lahore", "dhaka", "kathmandu", "colombo", "chiang mai", "phuket", "penang",
             "cebu", "bali", "surabaya"),
    "europe": ("amsterdam", "brussels", "vienna", "zurich", "geneva", "stockholm", "oslo", "copenhagen", "helsinki",
               "warsaw", "prague", "czech republic", "czechia", "hungary", "budapest", "romania", "bulgaria", "croatia",
               "slovakia", "slovenia", "luxembourg", "iceland", "estonia", "latvia", "lithuania", "lisbon", "milan",
               "munich", "hamburg", "barcelona", "dublin", "athens", "ukraine", "serbia", "albania", "andorra",
               "belarus", "bosnia and herzegovina", "bosnia", "cyprus", "kosovo", "liechtenstein", "malta", "moldova",
               "monaco", "montenegro", "holland", "north macedonia", "macedonia", "san marino", "lyon", "marseille",
               "bordeaux", "toulouse", "frankfurt", "cologne", "stuttgart", "dusseldorf", "düsseldorf",
               "rotterdam", "the hague", "antwerp", "ghent", "bruges", "porto", "seville", "valencia", "bilbao",
               "naples", "turin", "florence", "venice", "krakow", "gdansk", "bratislava", "ljubljana", "zagreb",
               "belgrade", "sofia", "bucharest", "riga", "tallinn", "vilnius", "reykjavik", "bergen", "gothenburg",
               "malmo", "aarhus", "salzburg", "innsbruck", "basel", "lausanne", "cork", "galway"),
    "uk": ("northern ireland", "edinburgh", "glasgow", "manchester", "liverpool", "cardiff", "belfast", "birmingham",
           "leeds", "bristol", "newcastle", "sheffield", "nottingham", "aberdeen", "oxford", "cambridge", "brighton"),
    "north america": ("chicago", "san francisco", "miami", "boston", "seattle", "houston", "dallas", "vancouver",
                      "montreal", "ottawa", "calgary", "mexico city", "california", "texas", "florida", "washington",
                      "philadelphia", "atlanta", "denver", "phoenix", "las vegas", "san diego", "austin",
                      "minneapolis", "detroit", "new orleans", "nashville", "new jersey", "quebec", "edmonton",
                      "winnipeg", "halifax", "ontario", "british columbia", "alberta", "guadalajara", "monterrey"),
    "south america": ("bogota", "buenos aires", "lima", "sao paulo", "rio de janeiro", "venezuela",
                      "ecuador", "uruguay", "paraguay", "bolivia"),
    "oceania": ("melbourne", "auckland", "brisbane", "fiji"),
}
PLACES = (
    "north america", "south america", "latin america", "central america", "the middle east", "middle east",
    "europe", "asia", "africa", "oceania", "australia", "new zealand", "the uk", "uk", "united kingdom", "england",
    "scotland", "wales", "ireland", "britain", "great britain", "the us", "the usa", "usa", "united states", "the states",
    "the united states", "america", "canada", "mexico", "brazil", "argentina", "chile", "peru", "colombia",
    "china", "japan", "korea", "south korea", "india", "singapore", "hong kong", "taiwan", "thailand", "vietnam",
    "malaysia", "indonesia", "philippines", "germany", "france", "spain", "italy", "portugal", "netherlands",
    "belgium", "switzerland", "austria", "sweden", "norway", "denmark", "finland", "poland", "greece", "turkey",
    "russia", "israel", "egypt", "nigeria", "kenya", "south africa", "morocco", "dubai", "uae", "saudi arabia",
    "london", "paris", "berlin", "tokyo", "new york", "los angeles", "sydney", "toronto", "madrid", "rome",
    *(place for places in MORE_PLACES.values() for place in places),
)
PAYMENTS = (
    "visa", "mastercard", "master card", "american express", "amex", "discover", "paypal", "amazon pay",
    "apple pay", "google pay", "samsung pay", "klarna", "afterpay", "affirm", "venmo", "zelle", "alipay",
    "wechat pay", "bitcoin", "crypto", "cryptocurrency", "cash", "checks", "cheques", "cheque",
    "money orders", "money order", "bank transfer", "wire transfer", "debit cards", "debit card", "credit cards",
    "credit card", "gift cards", "gift card", "installments", "instalments", "cash on delivery",
)
ITEMS = (
    "rings", "ring", "necklaces", "necklace", "bracelets", "bracelet", "earrings", "earring", "pendants",
    "pendant", "chains", "chain", "anklets", "anklet", "watches", "watch", "brooches", "brooch", "charms", "charm",
)
MATERIALS = (
    "sterling silver", "silver", "rose gold", "white gold", "gold", "platinum", "stainless steel", "titanium",
    "base metal", "brass", "copper", "diamonds", "diamond", "pearls", "pearl",
)
SERVICES = ("engraving", "resizing", "resize", "customization", "customisation", "custom sizes", "gift wrapping", "gift wrap")
KINDS: dict[str, tuple[str, ...]] = {
    "place": PLACES, "payment": PAYMENTS, "item": ITEMS, "material": MATERIALS, "service": SERVICES,
}
# Where a place lies: a policy that names the region covers the country ("Japan" -> "Asia").
REGIONS: dict[str, tuple[str, ...]] = {
    "north america": ("the us", "the usa", "usa", "united states", "the united states", "the states", "america", "canada", "mexico",
                      "new york", "los angeles", "toronto"),
    "europe": ("germany", "france", "spain", "italy", "portugal", "netherlands", "belgium", "switzerland", "austria",
               "sweden", "norway", "denmark", "finland", "poland", "greece", "ireland", "paris", "berlin", "madrid",
               "rome", "uk", "the uk", "united kingdom", "england", "scotland", "wales", "britain", "great britain",
               "london"),
    "uk": ("the uk", "united kingdom", "england", "scotland", "wales", "britain", "great britain", "london"),
    "asia": ("china", "japan", "korea", "south korea", "india", "singapore", "hong kong", "taiwan", "thailand",
             "vietnam", "malaysia", "indonesia", "philippines", "tokyo"),
    "south america": ("brazil", "argentina", "chile", "peru", "colombia"),
    "africa": ("egypt", "nigeria", "kenya", "south africa", "morocco"),
    "oceania": ("australia", "new zealand", "sydney"),
}
for _region, _places in MORE_PLACES.items():
    REGIONS[_region] = (*REGIONS[_region], *_places)
REGIONS["europe"] = (*REGIONS["europe"], *MORE_PLACES["uk"])


# Other ways a policy names a slot ("checks" for "cheque", "American Express" for "Amex").
ALIASES: dict[str, tuple[str, ...]] = {
    "cheque": ("check", "checks", "cheques"), "cheques": ("checks", "check", "cheque"), "checks": ("cheques", "check"),
    "amex": ("american express",), "american express": ("amex",), "master card": ("mastercard",),
    "mastercard": ("master card",), "instalments": ("installments",), "installments": ("instalments",),
    "cash on delivery": ("cash",), "credit card": ("credit cards", "credit and debit cards"),
    "debit card": ("debit cards", "credit and debit cards"),
}
# A piece of jewellery is named by a policy on "jewelry" as a whole (a watch is not jewellery).
JEWELRY = ("jewelry", "jewellery")


def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)


SLOT_RES = {kind: _pattern(words) for kind, words in KINDS.items()}
# "what about", "and", "how about", "and to", "what if": a message that leans on the one before.
# A filler before the lead-in ("hm and for a friend in Scotland?", "ok so what about Asia?") changes nothing.
FILLER = r"(?:(?:hm+|um+|uh+|oh|ah|ok(?:ay)?|right|cool|thanks|thx)\W+)*"
LEAD_RE = re.compile(
    r"^\W*" + FILLER + r"(?:(?:and|so|ok(?:ay)?|also|but|or)\s+)?"
    r"(?:what about|how about|what of|same (?:deal |thing |question |goes )?for|and|also|or)\b\s*",
    re.IGNORECASE,
)
FRAGMENT_PREP_RE = re.compile(r"^(?:to|for|in|into|with|by|from|on|of)\s+", re.IGNORECASE)
FRAGMENT_TAIL_RE = re.compile(r"\s*\b(?:too|as well|instead|then|please)\b\W*$|\W+$", re.IGNORECASE)
FOLLOWUP_LEAD_RE = re.compile(
    r"^\W*" + FILLER + r"(?:and|also|but|or|so|then|what about|how about|what if|even if|even|why not|why|same|what else|otherwise|instead)\b",
    re.IGNORECASE,
)
# "there" points back ("how long to get there?") except as the existential "is there ...", "there's ...".
PRONOUN_RE = re.compile(
    r"\b(?:it|its|it's|that|this|they|them|their|those|these|one|ones|him|her)\b"
    r"|(?<!\bis )(?<!\bare )(?<!\bwas )(?<!\bwere )\bthere\b(?!\s*(?:is|are|was|were|'s|’s)\b)",
    re.IGNORECASE,
)
QUESTION_START_RE = re.compile(
    r"^\W*(?:who|what|when|where|why|how|which|can|could|do|does|did|is|are|was|were|will|would|should|may|must|am|have|has|i|my|you|your)\b",
    re.IGNORECASE,
)
WORD_RE = re.compile(r"[\w'-]+")


@dataclass(frozen=True)
class Slot:
    kind: str  # a KINDS key
    text: str  # as written
    start: int
    end: int


def find_slots(text: str, kind: str | None = None) -> list[Slot]:
    """The slots in ``text`` (of ``kind``, or of every kind), in order."""
    kinds = [kind] if kind is not None else list(SLOT_RES)
    found = [Slot(k, m.group(0), m.start(), m.end()) for k in kinds for m in SLOT_RES[k].finditer(text)]
    return sorted(found, key=lambda s: s.start)


def fragment(message: str) -> str | None:
    """What a slot-changing follow-up names ("what about Asia?" -> "Asia"; a bare slot such as
    "Philippines?" names itself), or None when the message is not such a fragment (it is a
    question of its own, or too long to be one)."""
    lead = LEAD_RE.match(message)
    if lead is None or lead.end() == 0:
        bare = FRAGMENT_TAIL_RE.sub("", message).strip()
        bare = re.sub(r"^(?:the|a|an)\s+", "", bare, flags=re.IGNORECASE)
        slots = find_slots(bare)
        return bare if len(slots) == 1 and (slots[0].start, slots[0].end) == (0, len(bare)) else None
    rest = FRAGMENT_TAIL_RE.sub("", message[lead.end():]).strip()
    rest = FRAGMENT_PREP_RE.sub("", rest).strip()
    if not rest or len(WORD_RE.findall(rest)) > 4:
        return None
    return rest


def fragment_slot(message: str, frame: str) -> tuple[Slot, str] | None:
    """The slot of ``frame`` that the fragment ``message`` replaces, with its replacement.

    The fragment must name a slot of a kind that ``frame`` holds ("and Bitcoin?" after a card
    question: a payment), or be a capitalised name where ``frame`` names a place ("and Peru?").
    """
    value = fragment(message)
    if value is None:
        return None
    own = find_slots(value)
    if len(own) == 1:
        value = own[0].text  # "paying by cheque" swaps in "cheque"
    kinds = [own[0].kind] if own else (["place"] if value[:1].isupper() else [])
    for kind in kinds:
        slots = find_slots(frame, kind)
        if slots:
            return slots[-1], value
    return None


def swap(frame: str, slot: Slot, value: str) -> str:
    """``frame`` with ``slot`` replaced by ``value`` ("the" kept out of doubled articles)."""
    before = frame[: slot.start]
    if before.lower().endswith("the ") and value.lower().startswith("the "):
        value = value[4:]
    return f"{before}{value}{frame[slot.end:]}"


def names(value: str) -> list[str]:
    """The ways a policy may name ``value``: itself, its ALIASES, for a piece of jewellery "jewelry",
    and for a place the regions it lies in."""
    key = value.lower().strip()
    kinds = ALIASES.get(key, ())
    if key in ITEMS and key not in ("watch", "watches"):
        kinds = (*kinds, *JEWELRY)
    return [key, *kinds, *(region for region, places in REGIONS.items() if key in places)]


def mentions(text: str, value: str) -> bool:
    """Whether ``text`` names ``value``: an alias or a region holding it (a place) as whole
    words, or each of its words by its stem ("custom sizes" in "customization and resize
    service"); a stem that is only a shorter word of its own ("after" for "Afterpay") is not it."""
    if any(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE) for name in names(value)[1:]):
        return True
    tokens = WORD_RE.findall(text.lower())
    words = [w for w in WORD_RE.findall(value.lower()) if w not in ("the", "a", "an")]

    def named(word: str) -> bool:
        stem = word[: max(4, len(word) - 3)]
        return any(stem in t and (t == word or t != stem) for t in tokens)

    return all(named(w) for w in words)


SHORT_WORDS = 0  # a message up to this many words that names a topic may lean on the conversation (0: none; see docs/dialogue.md)


# Words that name no topic: question words, auxiliaries, pronouns, light verbs, time and degree,
# discourse markers ("though", "anyway", "thanks").
# A message made only of them ("how fast do you reply?", "what should I send you?") says what
# it asks but not about what: the conversation says that.
GENERIC_WORDS = frozenset(
    """what when where who whom whose why how which whether if else then now still yet already again
    can could do does did done doing is are was were be been being am will would shall should may might must
    have has had having get gets got getting i me my mine you your yours we us our ours he she him her his
    they them their it its this that these those there here a an the to of for in on at by with from about
    as so and or but not no yes please just also too very really much many more most long fast soon quickly
    early late days day hours hour weeks week months month time times take takes took need needs needed
    want wants send sent ask asked tell told say said know make go going come reply answer answers respond
    happen happens happened next first last any some all one ok okay even see look find view show
    someone anyone somebody anybody something anything suggestion suggestions advice idea ideas
    suggest suggests recommend recommends recommendation advise propose way ways
    it's that's what's there's here's how's where's when's who's let's i'm i've i'd i'll you're you've you'll
    we're we've they're don't doesn't didn't isn't aren't wasn't weren't won't can't couldn't wouldn't shouldn't
    haven't hasn't
    though although however anyway anyways actually btw well hi hello thanks thank""".split()
)


def topical_words(message: str) -> list[str]:
    """The words of ``message`` that name a topic (not in GENERIC_WORDS)."""
    return [w for w in WORD_RE.findall(message.lower()) if w not in GENERIC_WORDS and not w.isdigit()]


def followup_strength(message: str) -> int:
    """How surely ``message`` leans on an earlier one: 2 for a lead-in ("and", "what about"), a
    pronoun, or no topical word of its own; 1 for a short message (at most SHORT_WORDS words)
    without any of these; else 0."""
    if FOLLOWUP_LEAD_RE.match(message) or PRONOUN_RE.search(message) or not topical_words(message):
        return 2
    return 1 if len(WORD_RE.findall(message)) <= SHORT_WORDS else 0


def is_followup(message: str) -> bool:
    """Whether ``message`` may lean on an earlier one (followup_strength above 0)."""
    return followup_strength(message) > 0
