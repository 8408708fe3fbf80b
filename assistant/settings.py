"""Settings resolved once, at the edges (the CLI, the server, child processes): command-line
flags, then environment variables, then defaults.

Nothing below the edges reads the environment; what is resolved here is passed down as arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import assistant.models.onnx as onnx_models
from assistant.errors import ConfigError
from assistant.learning.links import default_links_path
from assistant.models.onnx import BACKENDS
from assistant.models.verifier import resolve_verifier

BUNDLED_CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def default_corpus() -> list[str]:
    env = os.environ.get("ASSISTANT_CORPUS")
    if env:
        return [p for p in env.split(os.pathsep) if p]
    if Path("corpus").is_dir():
        return ["corpus"]
    return [str(BUNDLED_CORPUS)]


def default_index_dir(corpus: list[str], model: str | None) -> Path:
    """One index folder per (corpus set, model), so switching corpora does not thrash one index."""
    env = os.environ.get("ASSISTANT_INDEX_DIR")
    if env:
        return Path(env)
    key = "|".join(sorted(str(Path(c).resolve()) for c in corpus)) + f"|{model or ''}"
    name = Path(corpus[0]).stem or "corpus"
    return Path(".index") / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def add_corpus_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--corpus", action="append", metavar="PATH",
        help="FAQ file or folder (.txt .md .html .jsonl .csv); repeatable. Default: ./corpus (env ASSISTANT_CORPUS)",
    )
    p.add_argument("--index-dir", metavar="DIR", help="index folder (env ASSISTANT_INDEX_DIR; default .index/<corpus>-<hash>)")
    p.add_argument(
        "--model", metavar="FOLDER",
        help="local sentence-transformers model folder (env ASSISTANT_MODEL; default: packaged all-MiniLM-L6-v2)",
    )
    p.add_argument(
        "--encoder", choices=("onnx", "onnx-int8", "torch"),
        help="query/index encoder (env ASSISTANT_ENCODER): onnx (default; the model exported to ONNX, no torch "
        "when answering), onnx-int8 (faster, slightly different vectors: its own index), torch (sentence-transformers)",
    )
    p.add_argument(
        "--verifier", choices=("mpnet", "mpnet-int8", "none"),
        help="model that re-reads the candidates to decide answer or refuse (env ASSISTANT_VERIFIER): mpnet "
        "(default; all-mpnet-base-v2, about 30 ms a question), mpnet-int8 (the same model quantised to int8: "
        "about twice as fast, its own index) or none (the retriever's cosines alone, fastest)",
    )
    p.add_argument(
        "--learned", metavar="FILE",
        help="confirmed question -> passage links, JSONL (env ASSISTANT_LEARNED; default: learned.jsonl in the "
        "corpus folder, or beside the corpus file; a missing default file holds no links)",
    )
    p.add_argument("--rebuild", action="store_true", help="rebuild the index even if it is up to date")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or log lines on stderr")


def resolve_corpus_args(args: argparse.Namespace) -> tuple[list[str], Path, str | None]:
    corpus = args.corpus or default_corpus()
    model = args.model or os.environ.get("ASSISTANT_MODEL") or None
    if args.index_dir:
        index_dir = Path(args.index_dir)
    else:
        index_dir = default_index_dir(corpus, model)
        if encoder_backend(args) == "onnx-int8":  # int8 vectors differ: never mix them into an fp32 index
            index_dir = index_dir.with_name(index_dir.name + "-int8")
    return corpus, index_dir, model


def encoder_backend(args: argparse.Namespace) -> str:
    backend = getattr(args, "encoder", None) or os.environ.get("ASSISTANT_ENCODER") or "onnx"
    if backend not in BACKENDS:
        raise ConfigError(f"ASSISTANT_ENCODER must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def verifier_choice(args: argparse.Namespace) -> tuple[str, str | None]:
    """The verifier to open and, when the default one is not installed, why it is off."""
    value = getattr(args, "verifier", None) or os.environ.get("ASSISTANT_VERIFIER") or None
    try:
        return resolve_verifier(value)
    except ConfigError as exc:
        raise ConfigError(f"ASSISTANT_VERIFIER: {exc}") from None


def offline_env() -> dict[str, str]:
    """The environment that keeps the model libraries offline and quiet.

    Hugging Face never reaches the network (every model is packaged or cached locally), no
    progress bars or analytics, tokenizers without their own thread pool (we fork workers).
    The CLI sets these as defaults of its own process; a spawner puts them in a child's.
    """
    return {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "TOKENIZERS_PARALLELISM": "false",
        "TRANSFORMERS_VERBOSITY": "error",
    }


def learned_path(args: argparse.Namespace, corpus: list[str]) -> tuple[Path, bool]:
    """The confirmed-links file (``--learned``, then ASSISTANT_LEARNED, then ``learned.jsonl`` beside
    the corpus) and whether it was named explicitly (then it must exist to be read)."""
    named = getattr(args, "learned", None) or os.environ.get("ASSISTANT_LEARNED") or None
    if named:
        return Path(named), True
    return default_links_path(corpus), False


QUERY_THREADS_ENV = "ASSISTANT_QUERY_THREADS"


def apply_query_threads(environ=os.environ) -> int:
    """Set the threads a question's encoding runs on from ASSISTANT_QUERY_THREADS (0: every core,
    the default); e.g. 1 for each of two replicas sharing a 2-core host. Returns the value in force."""
    raw = environ.get(QUERY_THREADS_ENV, "").strip()
    if raw:
        if not raw.isdigit():
            raise ConfigError(f"{QUERY_THREADS_ENV} must be a whole number of threads (0: every core), got {raw!r}")
        onnx_models.QUERY_THREADS = int(raw)
    return onnx_models.QUERY_THREADS
