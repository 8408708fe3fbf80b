"""Shared fixtures: tiny FAQ corpora, a deterministic fake encoder, and the real model loaded once."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parent.parent
SEED_CORPUS = ROOT / "corpus" / "coco-jewelry-faq.txt"
GOLD = ROOT / "evals" / "gold.jsonl"
STACKFAQ = ROOT.parent / "shared" / "benchmarks" / "stackfaq"

TINY_FAQ = """Shipping

All orders ship within 2 working days.

Returns

You can return items within 30 days for a refund.

Payment

We accept Visa and PayPal.

We do not accept cash.

Contact

Email help@tiny-shop.example for anything else.
"""


# Caches that libraries put under ~ unless told otherwise (HF hub, matplotlib's font list, torch).
HOME_CACHES = ("HF_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR", "TORCH_HOME")


@pytest.fixture(scope="session", autouse=True)
def run_caches(tmp_path_factory):
    """The run owns its caches: nothing is written under ~, and no test relies on another's cache.

    The verifier's unpacked model and ONNX export go to a per-run folder (about 1 GB, made once
    per run by whichever test needs it first; the xdist workers share it, and the product's lock
    lets one of them make it while the others wait), unless ASSISTANT_MODEL_CACHE is set, which is
    then used as it is (a filled one saves about a minute locally). Child processes inherit all of it.
    """
    root = tmp_path_factory.mktemp("caches")
    # Under xdist every worker's base folder sits in the run's own folder: share the model cache there.
    shared = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("ASSISTANT_MODEL_CACHE"):
            mp.setenv("ASSISTANT_MODEL_CACHE", str(shared / "faq-assistant"))
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        if workers > 1:  # the workers share the cores, as replicas on one host do (docs/deployment.md)
            import assistant.models.onnx as onnx_models

            share = max(1, (os.cpu_count() or 1) // workers)
            mp.setattr(onnx_models, "QUERY_THREADS", share)
            mp.setenv("ASSISTANT_QUERY_THREADS", str(share))
        for name in HOME_CACHES:
            mp.setenv(name, str(root / name.lower()))
        yield Path(os.environ["ASSISTANT_MODEL_CACHE"])


class FakeEncoder:
    """Deterministic bag-of-words hashing encoder: fast plumbing tests without the model."""

    name = "fake-bow"
    fingerprint = "fake-bow-v1"
    dim = 64

    def __init__(self) -> None:
        self.calls = 0
        self.texts_encoded = 0

    def encode(self, texts, *, batch_size=64, progress=False):
        self.calls += 1
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms


@pytest.fixture
def fake_encoder():
    return FakeEncoder()


@pytest.fixture
def fake_model(monkeypatch, fake_encoder):
    """The CLI opens its assistant (corpus, index folder from the flags) with a fresh fake encoder."""
    from assistant.core.pipeline import Assistant
    from assistant.settings import resolve_corpus_args

    opened = []

    def open_assistant(args):
        corpus, index_dir, _ = resolve_corpus_args(args)
        from assistant.core.answer import AnswerConfig
        from assistant.core.refusal import RefusalModel

        assistant, stats = Assistant.open(corpus, index_dir, encoder=type(fake_encoder)(), answer=AnswerConfig(part_min_dense=0.3), default_refusal=RefusalModel.default(0.3))
        opened.append(assistant)
        return assistant, stats, index_dir

    monkeypatch.setattr("assistant.cli.common.open_assistant", open_assistant)
    return opened


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    folder = tmp_path / "faq"
    folder.mkdir()
    (folder / "tiny.txt").write_text(TINY_FAQ, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def real_encoder():
    """The packaged all-MiniLM-L6-v2 through sentence-transformers, loaded once per session."""
    from assistant.models.embeddings import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder()
    enc.encode(["warm up"])
    return enc


@pytest.fixture(scope="session")
def real_verifier():
    """The packaged all-mpnet-base-v2 verifier through sentence-transformers, loaded once per session."""
    from assistant.models.embeddings import SentenceTransformerEncoder
    from assistant.models.verifier import MAX_TOKENS, VERIFIER_NAME, packaged_model_path

    enc = SentenceTransformerEncoder(packaged_model_path(), max_tokens=MAX_TOKENS or None)
    enc.name = VERIFIER_NAME
    enc.encode(["warm up"])
    return enc


PREBUILT_MODELS = ROOT / ".cache" / "seed-index" / "models"  # `make test` exports MiniLM here (its seed index)


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory, model_cache) -> Path:
    """The seed index's folder; its ``models/`` is the session's export, so a CLI child opening it
    loads MiniLM as a user's second run does instead of exporting it again."""
    from .app_process import index_dir_with_model

    # `make test`'s index of the same corpus, opened and checked like any index (rebuilt if stale)
    return index_dir_with_model(tmp_path_factory.mktemp("seed-index"), model_cache, seeded=True)


@pytest.fixture(scope="session")
def seed_assistant(onnx_encoder, onnx_verifier, seed_index_dir):
    """The real pipeline as shipped (ONNX encoders, retriever, verifier, FAISS index) on the bundled corpus."""
    from assistant.core.pipeline import Assistant

    assistant, _ = Assistant.open([str(SEED_CORPUS.parent)], seed_index_dir, encoder=onnx_encoder, verifier=onnx_verifier)
    return assistant


def _suite_assistant(relative: str, encoder, verifier, tmp_path_factory):
    """The real pipeline (MiniLM, mpnet verifier, FAISS) on one corpus of the suite (evals/corpora/)."""
    from assistant.core.pipeline import Assistant

    path = Path(__file__).resolve().parent.parent / "evals" / "corpora" / relative
    a, _ = Assistant.open([path], tmp_path_factory.mktemp(path.parent.name), encoder=encoder, verifier=verifier)
    return a


@pytest.fixture(scope="session")
def bike_assistant(onnx_encoder, onnx_verifier, tmp_path_factory):
    """The bike shop's Markdown FAQ (a tuning corpus)."""
    return _suite_assistant("bike-shop/speichenwerk-faq.md", onnx_encoder, onnx_verifier, tmp_path_factory)


@pytest.fixture(scope="session")
def restaurant_assistant(onnx_encoder, onnx_verifier, tmp_path_factory):
    """The restaurant's help-desk CSV export (FAQ rows; a tuning corpus)."""
    return _suite_assistant("restaurant/helpdesk-export.csv", onnx_encoder, onnx_verifier, tmp_path_factory)


@pytest.fixture(scope="session")
def software_assistant(onnx_encoder, onnx_verifier, tmp_path_factory):
    """The software subscription's prose policy page (a tuning corpus)."""
    return _suite_assistant("software-subscription/terms.txt", onnx_encoder, onnx_verifier, tmp_path_factory)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """The packaged model's ONNX export, once per session: a copy of the one `make test` made
    (checked against its seal on open) or, without it, exported now (about 20 s). Tests that start
    the real server or CLI as a child link their index folder's ``models/`` here (see
    tests/app_process.py), so each child loads the model as a user's second run does."""
    from assistant.models.onnx import open_encoder

    folder = tmp_path_factory.mktemp("model-cache")
    if PREBUILT_MODELS.is_dir():
        shutil.copytree(PREBUILT_MODELS, folder, dirs_exist_ok=True)
    open_encoder(None, folder)  # a damaged or missing export is made again
    return folder


@pytest.fixture(scope="session")
def onnx_encoder(model_cache):
    """MiniLM as the product runs it: its ONNX export (no torch on the question path)."""
    from assistant.models.onnx import open_encoder

    return open_encoder(None, model_cache, export=False)


@pytest.fixture(scope="session")
def onnx_verifier():
    """The verifier as the product runs it: its ONNX export in the run's model cache."""
    from assistant.models.verifier import open_verifier_encoder

    return open_verifier_encoder()


# --- PostgreSQL: a throwaway cluster (tests/pg.py), one database per test ------------------


@pytest.fixture(scope="session")
def pg_cluster():
    """A PostgreSQL server for the session: started from the installed binaries (stopped at the
    end) or the one ASSISTANT_TEST_DATABASE_URL names. Without either the tests skip, except
    under CI (env CI set), where they fail."""
    from .pg import cluster_from_env_or_start

    cluster = cluster_from_env_or_start()
    if isinstance(cluster, str):
        if os.environ.get("CI"):
            pytest.fail(f"{cluster} (CI is set, so the PostgreSQL tests must run)")
        pytest.skip(cluster)
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """The URL of a new, empty PostgreSQL database (password included)."""
    return pg_cluster.create_database()


BACKENDS = ["sqlite", "postgresql"]


def new_database_url(request, backend: str, folder: Path) -> str:
    """A fresh feedback database: a SQLite file in ``folder``, or a new PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite:///{folder / 'feedback.sqlite3'}"
    return request.getfixturevalue("pg_cluster").create_database()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> str:
    """A fresh feedback database on each backend: a SQLite file URL, then a PostgreSQL database URL."""
    return new_database_url(request, request.param, tmp_path / "data")


@pytest.fixture
def fake_assistant(tiny_corpus, tmp_path, fake_encoder):
    """The pipeline over the tiny FAQ with the fake encoder (its cosines run lower than MiniLM's:
    refusal and part thresholds for its scale), indexed in ``tmp_path / "idx"``."""
    from assistant.core.answer import AnswerConfig
    from assistant.core.pipeline import Assistant
    from assistant.core.refusal import RefusalModel

    a, _ = Assistant.open([tiny_corpus], tmp_path / "idx", encoder=fake_encoder, answer=AnswerConfig(part_min_dense=0.3),
                          default_refusal=RefusalModel.default(0.3))  # fmt: skip
    return a


# The longest tests (8-40 s each in `pytest --durations=25`: child servers, real exports, the gate,
# the browser), started first: with a few workers, a long test picked up last would leave one worker
# idle at the end (longest-first scheduling). Order only; no test depends on it.
LONGEST_FIRST = (
    "tests/test_verifier.py::test_the_int8_verifier_is_added_to_the_export",
    "tests/test_onnx.py",
    "tests/test_replicas.py",
    "tests/test_api.py::test_app_py_builds_the_index_then_serves",
    "tests/test_load.py",
    "tests/test_eval.py::test_bundled_eval_passes_its_gate",
    "tests/test_faults.py::test_real_server_answers_from_the_edited_corpus",
    "tests/test_bad_input.py::test_a_50_mb_corpus_file",
    "tests/test_integrity.py::test_a_truncated_model_is_exported_again",
    "tests/test_browser.py",
    "tests/test_faults.py",
    "tests/test_self_calibration.py::test_real_model",
    "tests/test_install.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order
