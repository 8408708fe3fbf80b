"""Load and validate gold question sets (JSONL, or CSV with ``|``-separated lists).

The format is a documented contract (see README, "Writing a gold set"): every row either
scores or is an error naming its file and line; nothing is skipped silently.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import GoldError

KNOWN_FIELDS = ("id", "question", "answerable", "relevant_ids", "must_include", "support", "reference_answer", "history")
MAX_HISTORY = 20  # earlier messages a row's ``history`` may hold (as /api/ask accepts)
LIST_FIELDS = ("relevant_ids", "must_include", "support")
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
TRUE_WORDS = {"true", "yes", "1", "y", "t"}
FALSE_WORDS = {"false", "no", "0", "n", "f"}


@dataclass(frozen=True)
class GoldQuestion:
    """One gold row. ``metadata`` holds the extra fields (e.g. ``category``) as given: any JSON value."""

    id: str
    question: str
    answerable: bool = True
    relevant_ids: tuple[str, ...] = ()
    must_include: tuple[str, ...] = ()
    # Verbatim sentences that may rightly be quoted beside the asked facts (answer_precision).
    support: tuple[str, ...] = ()
    reference_answer: str | None = None
    # The customer's earlier messages, oldest first: ``question`` is a follow-up to them.
    history: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)
    source: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        """``file:line`` of the row, for error messages."""
        return f"{self.source}:{self.line}"

    @property
    def category(self) -> str:
        value = self.metadata.get("category", "")
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def load_gold(path: str | Path) -> list[GoldQuestion]:
    """Read a gold file (``.jsonl``/``.ndjson`` or ``.csv``) and validate every row.

    Raises:
        GoldError: naming the file and line (and the field) of the first bad row.
    """
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise GoldError(f"{path}: unsupported gold file type {path.suffix or '(none)'!r}; use .jsonl or .csv")
    if not path.is_file():
        raise GoldError(f"{path}: gold file not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise GoldError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows = _jsonl_rows(path, text) if kind == "jsonl" else _csv_rows(path, text)
    questions: list[GoldQuestion] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        q = parse_row(row, source=str(path), line=line, csv_cells=(kind == "csv"))
        if q.id in seen:
            raise GoldError(f"{path}:{line}: duplicate id {q.id!r} (first used on line {seen[q.id]})")
        seen[q.id] = line
        questions.append(q)
    if not questions:
        raise GoldError(f"{path}: no gold questions in the file")
    return questions


def parse_row(row: dict[str, Any], *, source: str, line: int, csv_cells: bool = False) -> GoldQuestion:
    """Validate one row (a JSON object, or a CSV record of strings when ``csv_cells``)."""
    where = f"{source}:{line}"
    if not isinstance(row, dict):
        raise GoldError(f"{where}: expected a JSON object, got {_type_name(row)}")

    def text_field(name: str, *, required: bool) -> str | None:
        value = _id_text(row.get(name)) if name == "id" else row.get(name)
        if value is None or (csv_cells and value == "" and not required):
            if required:
                raise GoldError(f"{where}: missing required field {name!r}")
            return None
        if not isinstance(value, str):
            raise GoldError(f"{where}: field {name!r} must be a string, got {_type_name(value)}")
        value = value.strip()
        if required and not value:
            raise GoldError(f"{where}: field {name!r} is empty")
        return value or None

    qid = text_field("id", required=True)
    question = text_field("question", required=True)
    answerable = _bool_field(row.get("answerable"), where, csv_cells)
    relevant = _list_field(row.get("relevant_ids"), "relevant_ids", where, csv_cells, ints=True)
    facts = _list_field(row.get("must_include"), "must_include", where, csv_cells)
    support = _list_field(row.get("support"), "support", where, csv_cells)
    reference = text_field("reference_answer", required=False)
    history = _list_field(row.get("history"), "history", where, csv_cells)
    if len(history) > MAX_HISTORY:
        raise GoldError(f"{where}: field 'history' holds {len(history)} messages; at most {MAX_HISTORY} are allowed")
    metadata: dict[str, Any] = {}
    for key, value in row.items():
        if key in KNOWN_FIELDS:
            continue
        if key is None:  # csv.DictReader puts surplus cells under None
            raise GoldError(f"{where}: more cells than header columns")
        if value is None or (csv_cells and value == ""):
            continue
        metadata[key] = value  # any JSON value (numbers, lists, objects): kept as given, never scored
    if answerable and not relevant and not facts:
        raise GoldError(f"{where}: answerable row {qid!r} has neither 'relevant_ids' nor 'must_include', so it cannot be scored")
    if not answerable and (relevant or facts or support):
        name = "relevant_ids" if relevant else "must_include" if facts else "support"
        raise GoldError(f"{where}: row {qid!r} is unanswerable (answerable: false) but lists {name!r}")
    return GoldQuestion(
        id=qid,
        question=question,
        answerable=answerable,
        relevant_ids=relevant,
        must_include=facts,
        support=support,
        reference_answer=reference,
        history=history,
        metadata=metadata,
        source=source,
        line=line,
    )


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, Any]]:
    rows = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            rows.append((n, json.loads(raw)))
        except json.JSONDecodeError as exc:
            raise GoldError(f"{path}:{n}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines(keepends=True), strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise GoldError(f"{path}:1: bad CSV header ({exc})") from None
    if not header:
        raise GoldError(f"{path}: no gold questions in the file")
    names = [h.strip() for h in header]
    missing = [f for f in ("id", "question") if f not in names]
    if missing:
        raise GoldError(f"{path}:1: CSV header lacks column(s) {', '.join(map(repr, missing))} (got {', '.join(names)})")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise GoldError(f"{path}:1: CSV header repeats column(s) {', '.join(map(repr, dupes))}")
    reader.fieldnames = names
    rows = []
    start = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise GoldError(f"{path}:{start}: bad CSV ({exc})") from None
        if any(v is None for k, v in record.items() if k is not None):
            raise GoldError(f"{path}:{start}: fewer cells than header columns")
        if any((v or "").strip() for k, v in record.items() if k is not None) or None in record:
            rows.append((start, record))
        start = reader.line_num + 1
    return rows


def _bool_field(value: Any, where: str, csv_cells: bool) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if csv_cells and isinstance(value, str):
        word = value.strip().lower()
        if word == "":
            return True
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise GoldError(f"{where}: field 'answerable' must be true or false, got {value!r}")
    raise GoldError(f"{where}: field 'answerable' must be true or false, got {_type_name(value)} {value!r}")


def _id_text(value: Any) -> Any:
    # Integer ids are read as text, as the corpus loader reads integer row ids.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _list_field(value: Any, name: str, where: str, csv_cells: bool, *, ints: bool = False) -> tuple[str, ...]:
    if value is None:
        return ()
    if csv_cells and isinstance(value, str):
        return tuple(part.strip() for part in value.split("|") if part.strip())
    if not isinstance(value, list):
        raise GoldError(f"{where}: field {name!r} must be a list of strings, got {_type_name(value)}")
    items = []
    for i, item in enumerate(value):
        item = _id_text(item) if ints else item
        if not isinstance(item, str):
            raise GoldError(f"{where}: field {name!r} item {i} must be a string, got {_type_name(item)}")
        if not item.strip():
            raise GoldError(f"{where}: field {name!r} item {i} is empty")
        items.append(item.strip())
    return tuple(items)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def gold_digest(path: str | Path) -> str:
    """A short content hash of a gold file: a calibration fitted on it records it, so that file
    is never scored with a model that saw it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
