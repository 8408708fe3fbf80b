"""Confirmed links: "this customer question is answered by passage P", said once by support staff.

A link becomes an extra key of its passage in the index (assistant/index/store.py): a new way
into the passage, never new text to quote. Links live in a JSONL file beside the corpus
(``learned.jsonl`` by default), one object per line, reviewable and versioned with the policies:

    {"question": "do you gift wrap", "passage_id": "faq:gifts-1", "passage_hash": "3f2a9c0e1b7d",
     "by": "sam", "at": "2026-12-02T12:00:00Z"}

``passage_hash`` is a short hash of the passage's text when the link was made: a link whose
passage has since changed, or vanished, is *stale*: reported and not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from assistant.errors import ConfigError, LinkError
from assistant.schema import Passage

LEARNED_FILE = "learned.jsonl"  # the default name, in the corpus folder (the corpus loader skips it)
MAX_QUESTION_CHARS = 2000
HASH_CHARS = 12
FIELDS = ("question", "passage_id", "passage_hash", "by", "at")


@dataclass(frozen=True)
class Link:
    """One confirmed question -> passage link; ``line`` is its 1-based line in the file (0: not yet saved)."""

    question: str
    passage_id: str
    passage_hash: str = ""  # empty: written by hand without one; only the passage's existence is checked
    by: str = ""
    at: str = ""
    line: int = 0

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("line")
        return d


@dataclass(frozen=True)
class StaleLink:
    """A link that is not used: its passage is gone or its text changed since the link was made."""

    link: Link
    source: str
    reason: str  # "passage not found" | "passage changed"

    def describe(self) -> str:
        return f"{self.source}:{self.link.line}: stale link to {self.link.passage_id!r} ({self.reason}); not used"


def passage_hash(text: str) -> str:
    """The short hash a link records of its passage's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_CHARS]


def normalise_question(question: str) -> str:
    return " ".join(str(question).split())


def default_links_path(corpus: Sequence[str | Path]) -> Path:
    """``learned.jsonl`` in the first corpus folder, or beside the first corpus file."""
    if not corpus:
        raise ConfigError("no corpus given: pass --corpus FILE_OR_FOLDER")
    first = Path(corpus[0])
    return (first if first.is_dir() else first.parent) / LEARNED_FILE


def parse_link(obj: object, *, where: str) -> Link:
    """One link from a decoded JSON line; ``where`` ("file:line") prefixes every error."""
    if not isinstance(obj, dict):
        raise LinkError(f"{where}: a link must be a JSON object, got {type(obj).__name__}")
    for name in ("question", "passage_id"):
        if name not in obj:
            raise LinkError(f"{where}: missing required field {name!r}")
    for name in FIELDS:
        if name in obj and not isinstance(obj[name], str):
            raise LinkError(f"{where}: field {name!r} must be a string, got {type(obj[name]).__name__}")
    question = normalise_question(obj["question"])
    if not question:
        raise LinkError(f"{where}: field 'question' is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise LinkError(f"{where}: field 'question' is {len(question)} characters, over the limit of {MAX_QUESTION_CHARS}")
    if not obj["passage_id"].strip():
        raise LinkError(f"{where}: field 'passage_id' is empty")
    line = int(where.rsplit(":", 1)[1]) if ":" in where and where.rsplit(":", 1)[1].isdigit() else 0
    return Link(question, obj["passage_id"].strip(), obj.get("passage_hash", ""), obj.get("by", ""), obj.get("at", ""), line)


def load_links(path: str | Path, *, missing_ok: bool = True) -> list[Link]:
    """Every link of a JSONL links file, in file order (blank lines skipped).

    Raises:
        LinkError: a line is not JSON or not a valid link (file and line named), or the file is
            missing and ``missing_ok`` is False.
    """
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return []
        raise LinkError(f"links file not found: {path}")
    if not path.is_file():
        raise LinkError(f"{path}: not a regular file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LinkError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    links = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LinkError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
        links.append(parse_link(obj, where=f"{path}:{n}"))
    return links


def new_link(question: str, passage: Passage, *, by: str = "", at: str | None = None) -> Link:
    """A link of ``question`` to ``passage``, recording the passage's text hash."""
    parsed = parse_link({"question": question, "passage_id": passage.id, "by": by}, where="link")
    stamp = at if at is not None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return Link(parsed.question, passage.id, passage_hash(passage.text), by, stamp)


def find_passage(passages: Sequence[Passage], passage_id: str) -> Passage:
    for p in passages:
        if p.id == passage_id:
            return p
    raise LinkError(f"no passage with id {passage_id!r} in the corpus (`assistant ask --json` shows the ids)")


def append_link(path: str | Path, link: Link) -> Link:
    """Append one link to the file (created when missing); returns it with its line number.

    A link with the same question (case and spacing aside) and passage as one already there
    is not written twice: the existing one is returned.
    """
    path = Path(path)
    existing = load_links(path)
    key = (normalise_question(link.question).casefold(), link.passage_id)
    for old in existing:
        if (normalise_question(old.question).casefold(), old.passage_id) == key:
            return old
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = len(text.splitlines())
    prefix = "\n" if text and not text.endswith("\n") else ""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(prefix + json.dumps(link.to_json(), ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return Link(**{**link.to_json(), "line": lines + 1})


def save_links(path: str | Path, links: Iterable[Link]) -> None:
    """Write the whole file (atomically: a temporary file renamed over it)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(k.to_json(), ensure_ascii=False) + "\n" for k in links), encoding="utf-8")
    tmp.replace(path)


def remove_links(path: str | Path, lines: Iterable[int]) -> list[Link]:
    """Remove the links at the given 1-based line numbers; returns the removed links.

    Raises:
        LinkError: a line number holds no link.
    """
    links = load_links(path, missing_ok=False)
    wanted = set(lines)
    by_line = {k.line for k in links}
    unknown = sorted(wanted - by_line)
    if unknown:
        raise LinkError(f"{path}: no link at line(s) {', '.join(map(str, unknown))} (`assistant learn list` numbers them)")
    save_links(path, [k for k in links if k.line not in wanted])
    return [k for k in links if k.line in wanted]


def check_links(links: Sequence[Link], passages: Sequence[Passage], *, source: str = "") -> tuple[list[Link], list[StaleLink]]:
    """Split links into usable ones and stale ones (passage gone, or its text changed)."""
    by_id = {p.id: p for p in passages}
    usable, stale = [], []
    for link in links:
        p = by_id.get(link.passage_id)
        if p is None:
            stale.append(StaleLink(link, source, "passage not found"))
        elif link.passage_hash and link.passage_hash != passage_hash(p.text):
            stale.append(StaleLink(link, source, "passage changed"))
        else:
            usable.append(link)
    return usable, stale


def link_keys(links: Sequence[Link], passages: Sequence[Passage]) -> list[tuple[str, str]]:
    """The (passage id, question) keys the index embeds: one per usable link, duplicates dropped,
    ordered by passage then question so the same links always give the same index."""
    usable, _ = check_links(links, passages)
    order = {p.id: i for i, p in enumerate(passages)}
    keys = {(k.passage_id, k.question) for k in usable}
    return sorted(keys, key=lambda key: (order[key[0]], key[1]))
