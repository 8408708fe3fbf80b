"""Load a store's FAQ/policy files (.txt, .md, .html, .jsonl, .csv) into passages with stable ids,
within documented limits."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import re
import stat
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from assistant.errors import CorpusError
from assistant.learning.links import LEARNED_FILE
from assistant.schema import Passage

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl", ".csv")
TITLE_FIELDS = ("title", "question")
TEXT_FIELDS = ("text", "answer")
BULLET_RE = re.compile(r"^\s*(?:[•·▪◦‣●○\-\*\+]|\d{1,2}[.)])\s*")
MD_HEADING_RE = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
MAX_HEADING_WORDS = 8
# UTF-32 first: its little-endian BOM starts with UTF-16's.
UTF_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"), (codecs.BOM_UTF16_LE, "UTF-16"),
            (codecs.BOM_UTF16_BE, "UTF-16"))
# Control characters (C0 but tab and newline, DEL, C1) and the bidirectional overrides/isolates
# that reorder what a terminal shows: never indexed, so never printed back to anyone.
CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class CorpusLimits:
    """How much one corpus may hold; past a limit loading stops with an error naming the file.

    The defaults keep a mistaken path (a log file, a database dump) from turning into an
    hour-long build: 10 MB per file, 20,000 characters per passage, 100,000 passages.
    """

    max_file_bytes: int = 10_000_000
    max_passage_chars: int = 20_000
    max_passages: int = 100_000

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_passage_chars", "max_passages"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise CorpusError(f"corpus limit {name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = CorpusLimits()


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "section"


def resolve_files(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders into the sorted list of supported files they hold.

    Only regular files are accepted (a FIFO or a device would hang or never end), and a
    symbolic link found in a folder must point inside that folder: one leaving it is refused,
    never followed.
    """
    if not paths:
        raise CorpusError("no corpus given: pass --corpus FILE_OR_FOLDER")
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CorpusError(f"corpus path not found: {path}")
        if path.is_dir():
            root = path.resolve()
            found = []
            for p in sorted(path.rglob("*")):
                if p.suffix.lower() not in SUPPORTED_SUFFIXES or p.name.startswith(".") or p.is_dir():
                    continue
                if p.name == LEARNED_FILE:  # the confirmed links beside the corpus, not FAQ entries
                    continue
                target = p.resolve()
                if not target.is_relative_to(root):
                    raise CorpusError(
                        f"{p}: a symbolic link to {target}, outside the corpus folder {path}; not followed "
                        "(copy the file into the folder, or name it with its own --corpus)"
                    )
                _check_regular(p)
                found.append(p)
            if not found:
                raise CorpusError(
                    f"corpus folder {path} holds no supported files ({', '.join(SUPPORTED_SUFFIXES)})"
                )
            files.extend(found)
        elif path.suffix.lower() in SUPPORTED_SUFFIXES:
            _check_regular(path)
            files.append(path)
        else:
            raise CorpusError(
                f"{path}: unsupported file type {path.suffix or '(none)'}; "
                f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
            )
    unique: list[Path] = []
    seen: set[Path] = set()
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _check_regular(path: Path) -> os.stat_result:
    """``stat`` a corpus file before it is opened: only a regular file may be read."""
    try:
        st = path.stat()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read the corpus file ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                or stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a plain file")
        raise CorpusError(f"{path}: is {kind}, not a regular file; a corpus file must be a plain text file")
    return st


def read_text(path: Path, *, max_bytes: int = DEFAULT_LIMITS.max_file_bytes) -> str:
    """Read a file as UTF-8 (BOM stripped, newlines normalised, control characters removed).

    Raises:
        CorpusError: the file is not a regular file, is over ``max_bytes``, or is not UTF-8 text.
    """
    size = _check_regular(path).st_size
    if size > max_bytes:
        raise CorpusError(
            f"{path}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB limit for one corpus file; "
            "split it into smaller files"
        )
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)  # a file that grew since the stat is still bounded
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read the corpus file ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise CorpusError(f"{path}: over the {max_bytes / 1e6:g} MB limit for one corpus file; split it into smaller files")
    for bom, encoding in UTF_BOMS:
        if data.startswith(bom):
            raise CorpusError(f"{path}: the file is {encoding} text; save it as UTF-8")
    if b"\x00" in data[:8192]:
        raise CorpusError(f"{path}: looks like a binary file (NUL bytes; or UTF-16 text without a BOM); expected UTF-8 text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CorpusError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from None
    return CONTROL_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def fingerprint_files(files: list[Path]) -> str:
    """A hash of the files' names and bytes: it changes whenever the corpus changes."""
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.resolve()).encode())
        h.update(b"\0")
        _check_regular(f)
        file_hash = hashlib.sha256()
        try:
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    file_hash.update(chunk)
        except OSError as exc:  # removed or made unreadable since it was listed
            raise CorpusError(f"{f}: cannot read the corpus file ({exc.strerror})") from None
        h.update(file_hash.digest())
    return h.hexdigest()


def load_corpus(paths: list[str | Path], *, limits: CorpusLimits = DEFAULT_LIMITS) -> list[Passage]:
    """Load every supported file under ``paths`` into passages.

    Raises:
        CorpusError: a path is missing, a file is unreadable, malformed or over a limit, ids
            collide, or nothing loadable was found.
    """
    passages: list[Passage] = []
    for f in resolve_files(paths):
        for p in load_file(f, max_bytes=limits.max_file_bytes):
            if len(p.text) > limits.max_passage_chars:
                raise CorpusError(
                    f"{p.source}:{p.line}: a passage of {len(p.text):,} characters is over the limit of "
                    f"{limits.max_passage_chars:,}; split it (a blank line starts a new passage)"
                )
            passages.append(p)
        if len(passages) > limits.max_passages:
            raise CorpusError(
                f"{f}: the corpus holds more than {limits.max_passages:,} passages (the limit is reached in this "
                "file); index a smaller corpus"
            )
    if not passages:
        raise CorpusError(f"the corpus is empty: no passages found in {', '.join(map(str, paths))}")
    seen: dict[str, Passage] = {}
    for p in passages:
        if p.id in seen:
            first = seen[p.id]
            raise CorpusError(
                f"{p.source}:{p.line}: duplicate id {p.id!r} (first seen at {first.source}:{first.line})"
            )
        seen[p.id] = p
    return passages


def load_file(path: Path, *, max_bytes: int = DEFAULT_LIMITS.max_file_bytes) -> list[Passage]:
    suffix = path.suffix.lower()
    text = read_text(path, max_bytes=max_bytes)
    if suffix == ".jsonl":
        return _load_jsonl(path, text)
    if suffix == ".csv":
        return _load_csv(path, text)
    if suffix in (".html", ".htm"):
        return _blocks_to_passages(path, _html_blocks(text), None)
    return _blocks_to_passages(path, _text_blocks(text, markdown=suffix in (".md", ".markdown")), text.split("\n"))


# --- plain text and markdown -------------------------------------------------------------


def _is_bullet(line: str) -> bool:
    return bool(BULLET_RE.match(line)) and len(BULLET_RE.sub("", line, count=1).strip()) > 0


def _looks_like_heading(block: str) -> bool:
    if "\n" in block:
        return False
    line = block.strip()
    if not line or _is_bullet(line) or line.endswith((".", "!", "?", ",", ";", ":", ")")):
        return False
    if len(line.split()) > MAX_HEADING_WORDS or len(line) > 80:
        return False
    return line[0].isupper() or line[0].isdigit()


def _text_blocks(text: str, *, markdown: bool) -> list[tuple[str, str, int]]:
    """Split text into (kind, text, line) blocks where kind is heading/para/bullet.

    Paragraphs are separated by blank lines; each bullet line is its own block so that a
    run of bullets (with or without blank lines between them) can be grouped later.
    """
    lines = text.split("\n")
    blocks: list[tuple[str, str, int]] = []
    start = None
    buf: list[str] = []

    def flush() -> None:
        nonlocal buf, start
        if buf:
            body = "\n".join(buf).strip()
            if body:
                blocks.append(("para", body, start or 1))
        buf, start = [], None

    for i, line in enumerate(lines, 1):
        if not line.strip():
            flush()
            continue
        m = MD_HEADING_RE.match(line) if markdown else None
        if m:
            flush()
            blocks.append(("heading", m.group(2).strip(), i))
            continue
        if _is_bullet(line):
            flush()
            blocks.append(("bullet", line.strip(), i))
            continue
        if start is None:
            start = i
        buf.append(line)
    flush()

    # A bare short line (the seed's "Shipping", "Order & Payment") is a heading when more
    # text follows it; a trailing short line stays a paragraph.
    out: list[tuple[str, str, int]] = []
    for n, (kind, body, line) in enumerate(blocks):
        if kind == "para" and _looks_like_heading(body) and n + 1 < len(blocks):
            nxt_kind, nxt_body, _ = blocks[n + 1]
            if nxt_kind != "heading" and not (nxt_kind == "para" and _looks_like_heading(nxt_body)):
                kind = "heading"
        out.append((kind, body, line))
    return out


def _blocks_to_passages(path: Path, blocks: list[tuple[str, str, int]], raw_lines: list[str] | None) -> list[Passage]:
    """Group blocks into passages: each paragraph alone, each run of bullets together.

    ``raw_lines``: the file's lines (plain text and Markdown), so a bullet run is quoted as written.
    """
    doc_id = path.stem
    section = ""
    counters: dict[str, int] = {}
    passages: list[Passage] = []
    pending: list[tuple[str, int]] = []  # bullet run being collected

    def emit(text: str, line: int) -> None:
        slug = slugify(section) if section else "intro"
        counters[slug] = counters.get(slug, 0) + 1
        passages.append(
            Passage(
                id=f"{doc_id}:{slug}-{counters[slug]}",
                doc_id=doc_id,
                title=section or doc_id,
                text=text,
                source=str(path),
                line=line,
            )
        )

    def flush_bullets() -> None:
        nonlocal pending
        if not pending:
            return
        if raw_lines is not None:
            # Keep the run exactly as written (blank lines included), so it is verbatim.
            text = "\n".join(raw_lines[pending[0][1] - 1 : pending[-1][1]]).strip()
        else:
            text = "\n".join(t for t, _ in pending)
        emit(text, pending[0][1])
        pending = []

    for kind, body, line in blocks:
        if kind == "bullet":
            pending.append((body, line))
            continue
        flush_bullets()
        if kind == "heading":
            section = body
        else:
            emit(body, line)
    flush_bullets()
    return passages


# --- HTML ---------------------------------------------------------------------------------


class _HTMLBlocks(HTMLParser):
    HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6", "dt", "summary"}
    BLOCKS = {"p", "div", "section", "article", "li", "dd", "td", "th", "br", "tr", "blockquote", "pre"}
    SKIP = {"script", "style", "noscript", "template", "head", "title", "nav", "footer", "svg"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str, int]] = []
        self._buf: list[str] = []
        self._kind = "para"
        self._line = 1
        self._skip = 0

    def _flush(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self._buf)).strip()
        if text:
            kind = "bullet" if self._kind == "li" else ("heading" if self._kind == "heading" else "para")
            self.blocks.append((kind, text, self._line))
        self._buf = []
        self._kind = "para"

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skip += 1
            return
        if tag in self.HEADINGS or tag in self.BLOCKS:
            self._flush()
            self._line = self.getpos()[0]
            if tag in self.HEADINGS:
                self._kind = "heading"
            elif tag == "li":
                self._kind = "li"

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
            return
        if tag in self.HEADINGS or tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data):
        if not self._skip:
            if not self._buf:
                self._line = self.getpos()[0]
            self._buf.append(data)


def _html_blocks(text: str) -> list[tuple[str, str, int]]:
    parser = _HTMLBlocks()
    parser.feed(text)
    parser.close()
    parser._flush()
    return parser.blocks


# --- JSONL and CSV FAQ rows ---------------------------------------------------------------


def _row_to_passage(path: Path, line: int, row: dict) -> Passage:
    where = f"{path}:{line}"
    if not isinstance(row, dict):
        raise CorpusError(f"{where}: expected a JSON object with id, title/question and text/answer")
    missing = [name for name, opts in (("id", ("id",)), ("title", TITLE_FIELDS), ("text", TEXT_FIELDS))
               if not any(k in row for k in opts)]
    if missing:
        needs = {"id": "'id'", "title": "'title' or 'question'", "text": "'text' or 'answer'"}
        raise CorpusError(f"{where}: missing field {', '.join(needs[m] for m in missing)}")
    values = {}
    for name, opts in (("id", ("id",)), ("title", TITLE_FIELDS), ("text", TEXT_FIELDS)):
        key = next(k for k in opts if k in row)
        value = row[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name == "id":
            value = str(value)
        if not isinstance(value, str):
            raise CorpusError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
        values[name] = CONTROL_RE.sub("", value)  # JSON escapes (\u001b) decode to control characters too
    if not values["id"].strip():
        raise CorpusError(f"{where}: field 'id' is empty")
    if not values["text"].strip():
        raise CorpusError(f"{where}: field {'text' if 'text' in row else 'answer'!r} is empty")
    return Passage(
        id=values["id"].strip(),
        doc_id=values["id"].strip(),
        title=values["title"].strip(),
        text=values["text"].strip(),
        source=str(path),
        line=line,
        kind="faq",
    )


def _load_jsonl(path: Path, text: str) -> list[Passage]:
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{n}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        out.append(_row_to_passage(path, n, row))
    return out


def _load_csv(path: Path, text: str) -> list[Passage]:
    # strict: an unclosed quote is an error, not a field that silently swallows the rest of the file
    reader = csv.DictReader(io.StringIO(text), strict=True)
    try:
        fields = reader.fieldnames or []
    except csv.Error as exc:
        raise CorpusError(f"{path}:1: malformed CSV header ({exc})") from None
    needs = [("id", ("id",)), ("title", TITLE_FIELDS), ("text", TEXT_FIELDS)]
    missing = [opts for _, opts in needs if not any(o in fields for o in opts)]
    if missing:
        names = " / ".join("|".join(o) for o in missing)
        raise CorpusError(f"{path}:1: missing column(s) {names}; header is {fields}")
    out = []
    try:
        for row in reader:
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            out.append(_row_to_passage(path, reader.line_num, {k: (v or "") for k, v in row.items() if k}))
    except csv.Error as exc:
        # reader.line_num still holds the last good row's end: the bad row starts on the next line
        raise CorpusError(f"{path}:{reader.line_num + 1}: malformed CSV row ({exc})") from None
    return out
