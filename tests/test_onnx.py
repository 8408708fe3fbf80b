"""The ONNX encoder against the reference sentence-transformers model, and a query path without torch."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from assistant.errors import ModelError
from assistant.index.store import open_index
from assistant.models.onnx import (
    EXPORT_META,
    MODEL_CACHE,
    OnnxEncoder,
    export_onnx,
    open_encoder,
)
from assistant.models.onnx_graph import sentence_transformer_parts

from .conftest import ROOT, SEED_CORPUS

TEXTS = [
    "How long does shipping take?",
    "can i send back earrings i already wore",
    "Ünïcödé and emoji 💍 in a question",
    "Refunds are issued to the original payment method within 5 business days. " * 40,  # > 256 tokens
]


@pytest.fixture(scope="module")
def onnx_index(tmp_path_factory, model_cache):
    """The bundled corpus indexed the default way, as `assistant index` does: the model's ONNX export
    beside the index (the session's, as a second index finds it: the export itself runs end to end
    in tests/test_integrity.py's re-export), the verifier's export and index beside it."""
    from assistant.core.pipeline import Assistant

    from .app_process import index_dir_with_model

    index_dir = index_dir_with_model(tmp_path_factory.mktemp("onnx-index"), model_cache)
    assistant, stats = Assistant.open([str(SEED_CORPUS.parent)], index_dir, verifier="mpnet")
    assert assistant.verifier is not None and isinstance(assistant.verifier.encoder, OnnxEncoder)
    assert stats.rebuilt and isinstance(assistant.encoder, OnnxEncoder)
    return index_dir, assistant.encoder


@pytest.mark.slow
def test_onnx_vectors_match_sentence_transformers(onnx_index, real_encoder):
    _, onnx = onnx_index
    assert (onnx.name, onnx.fingerprint, onnx.dim) == (real_encoder.name, real_encoder.fingerprint, real_encoder.dim)
    got, want = onnx.encode(TEXTS), real_encoder.encode(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), real_encoder.dim)
    cosines = np.sum(got * want, axis=1)
    assert cosines.min() >= 0.999, cosines
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    # batched and one-by-one give the same vectors (padding does not leak into the mean)
    one_by_one = np.stack([onnx.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(one_by_one, got, atol=1e-5)


@pytest.mark.slow
def test_export_is_checked_recorded_and_reused(onnx_index):
    index_dir, onnx = onnx_index
    meta = json.loads((onnx.path / EXPORT_META).read_text())
    assert meta["check"]["min_cosine"] >= 0.999 and meta["max_seq_length"] == 256 and meta["pooling"] == "mean"
    assert onnx.path.parent == index_dir / MODEL_CACHE
    before = (onnx.path / "model.onnx").stat().st_mtime_ns
    assert export_onnx(None, index_dir / MODEL_CACHE) == onnx.path  # found, not exported again
    assert (onnx.path / "model.onnx").stat().st_mtime_ns == before


def test_questions_and_bulk_texts_run_on_their_own_sessions_with_the_same_vectors(onnx_encoder):
    """A question runs on QUERY_THREADS threads that sleep between calls, a bulk call on every core
    spinning; the thread settings change the speed, never the vectors."""
    from assistant.models.onnx import QUERY_BATCH, QUERY_THREADS

    encoder = OnnxEncoder(onnx_encoder.path)
    texts = [f"How long does shipping to zone {i} take?" for i in range(QUERY_BATCH + 1)]
    one = encoder.encode(texts[:1])
    assert set(encoder._sessions) == {(QUERY_THREADS, False)}
    bulk = encoder.encode(texts)
    assert set(encoder._sessions) == {(QUERY_THREADS, False), (0, True)}
    np.testing.assert_allclose(one[0], bulk[0], atol=1e-5)
    pinned = OnnxEncoder(onnx_encoder.path, threads=1)  # an explicit thread count is kept
    np.testing.assert_allclose(pinned.encode(texts[:1])[0], one[0], atol=1e-5)
    assert set(pinned._sessions) == {(1, False)}


def _packs_weights(session) -> bool:
    try:
        return session.get_session_options().get_session_config_entry("session.disable_prepacking") != "1"
    except RuntimeError:  # the entry is not set: onnxruntime packs
        return True


def test_a_one_question_process_skips_packing_the_weights_and_gets_the_same_vectors(onnx_encoder, monkeypatch):
    """PACK_QUESTION_WEIGHTS off: question sessions start without packing (sooner for one question),
    bulk sessions still pack, and the vectors do not change."""
    import assistant.models.onnx as onnx_models

    texts = [f"How long does shipping to zone {i} take?" for i in range(10)]
    packed = OnnxEncoder(onnx_encoder.path)
    want = packed.encode(texts[:1])
    assert all(_packs_weights(s) for s in packed._sessions.values())
    monkeypatch.setattr(onnx_models, "PACK_QUESTION_WEIGHTS", False)
    unpacked = OnnxEncoder(onnx_encoder.path)
    np.testing.assert_allclose(unpacked.encode(texts[:1]), want, atol=1e-5)
    unpacked.encode(texts)  # a bulk call (an index build) packs as before
    assert {key: _packs_weights(s) for key, s in unpacked._sessions.items()} == {
        (onnx_models.QUERY_THREADS, False): False,
        (0, True): True,
    }


def test_ask_with_one_question_turns_packing_off_for_that_call_only(monkeypatch):
    import io

    import assistant.cli.main as cli
    import assistant.models.onnx as onnx_models

    seen = []
    monkeypatch.setattr(cli, "_ask", lambda args, questions: seen.append(onnx_models.PACK_QUESTION_WEIGHTS) or 0)
    monkeypatch.setattr(cli, "_draft", lambda args, questions: seen.append(onnx_models.PACK_QUESTION_WEIGHTS) or 0)
    assert cli.main(["ask", "-q", "Do you take PayPal?"]) == 0
    assert cli.main(["draft", "-q", "Do you take PayPal?"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("Do you take PayPal?\nCan I pay in bitcoin?\n"))
    assert cli.main(["ask", "-q", "-"]) == 0  # a batch keeps packed sessions: each question after the first gains
    monkeypatch.setattr("sys.stdin", io.StringIO("Do you take PayPal?\n"))
    assert cli.main(["ask", "-q", "-"]) == 0
    assert seen == [False, False, True, True]
    assert onnx_models.PACK_QUESTION_WEIGHTS is True  # restored for whatever the process does next


def test_query_threads_come_from_the_environment_or_a_clear_error(onnx_encoder, monkeypatch, capsys):
    import assistant.models.onnx as onnx_models
    from assistant.cli.main import main
    from assistant.settings import QUERY_THREADS_ENV, apply_query_threads

    monkeypatch.setattr(onnx_models, "QUERY_THREADS", 0)  # the shipped default (the suite's workers set their share)
    assert apply_query_threads({}) == 0  # unset: every core
    assert apply_query_threads({QUERY_THREADS_ENV: "1"}) == 1  # e.g. two replicas on a 2-core host
    encoder = OnnxEncoder(onnx_encoder.path)
    encoder.encode(["Do you take PayPal?"])
    assert set(encoder._sessions) == {(1, False)}
    monkeypatch.setenv(QUERY_THREADS_ENV, "two")
    assert main(["ask", "-q", "Do you take PayPal?"]) == 2  # refused at the edge, before any model loads
    assert capsys.readouterr().err.strip() == (
        "error: ASSISTANT_QUERY_THREADS must be a whole number of threads (0: every core), got 'two'"
    )


def test_an_encoder_told_to_read_fewer_tokens_truncates_and_has_its_own_fingerprint(onnx_encoder, onnx_verifier):
    from assistant.models.embeddings import SentenceTransformerEncoder
    from assistant.models.verifier import MAX_TOKENS

    short = OnnxEncoder(onnx_encoder.path, max_tokens=16)
    assert (short.max_tokens, short.fingerprint) == (16, f"{onnx_encoder.fingerprint}-t16")
    # at or above the model's own limit (256) it is the plain model: the same fingerprint, the same index
    assert OnnxEncoder(onnx_encoder.path, max_tokens=256).fingerprint == onnx_encoder.fingerprint
    head = "Refunds are issued to the original payment method within five business days of receiving"
    texts = [f"{head} the parcel back.", f"{head} a cancelled subscription, minus any fees already paid."]
    cut, whole = short.encode(texts), onnx_encoder.encode(texts)
    assert float(cut[0] @ cut[1]) > 0.9999  # only the first 16 tokens (the same) were read
    assert float(whole[0] @ whole[1]) < 0.99
    assert SentenceTransformerEncoder(max_tokens=16).fingerprint == f"{onnx_encoder.fingerprint}-t16"
    assert SentenceTransformerEncoder(max_tokens=512).fingerprint == onnx_encoder.fingerprint
    # the verifier as shipped reads MAX_TOKENS tokens, and its index is keyed by that
    assert onnx_verifier.max_tokens == MAX_TOKENS and onnx_verifier.fingerprint.endswith(f"-t{MAX_TOKENS}")


@pytest.mark.slow
def test_indexes_are_interchangeable_between_encoders(onnx_index, real_encoder):
    index_dir, _ = onnx_index
    _, stats = open_index([str(SEED_CORPUS.parent)], index_dir, real_encoder)
    assert not stats.rebuilt and stats.reason == "up to date"


@pytest.mark.slow
def test_answering_from_an_existing_index_never_imports_torch(onnx_index):
    index_dir, _ = onnx_index
    code = f"""
import io, json, sys, contextlib
from assistant.core.pipeline import Assistant
from assistant.cli.main import main
assistant, stats = Assistant.open([{str(SEED_CORPUS.parent)!r}], {str(index_dir)!r})
answer = assistant.ask("Do you take PayPal?")
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["ask", "--json", "--index-dir", {str(index_dir)!r}, "--corpus", {str(SEED_CORPUS.parent)!r}, "-q", "how long does delivery to the UK take"])
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
print(json.dumps({{"rebuilt": stats.rebuilt, "answered": answer.answered, "cli": code, "cli_answer": json.loads(out.getvalue()), "heavy": heavy}}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_") or k == "ASSISTANT_MODEL_CACHE"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["rebuilt"] is False and result["answered"] is True and result["cli"] == 0
    assert "5 to 14 working days" in result["cli_answer"]["answer"]


class _Module:
    def __init__(self, config: dict | None = None) -> None:
        self._config = config or {}

    def get_config_dict(self) -> dict:
        return self._config


def _named(name: str, config: dict | None = None):
    return type(name, (_Module,), {})(config)


@pytest.mark.parametrize(
    "modules, match",
    [
        ([_named("Transformer"), _named("Pooling", {"pooling_mode": "mean"}), _named("Dense")], r"modules \['Transformer', 'Pooling', 'Dense'\]"),
        ([_named("Transformer"), _named("Pooling", {"pooling_mode": "max"})], r"pooling 'max'"),
        ([_named("Transformer")], r"modules \['Transformer'\]"),
    ],
)
def test_models_that_cannot_be_exported_are_named(modules, match):
    with pytest.raises(ModelError, match=f"cannot export this model to ONNX: {match}"):
        sentence_transformer_parts(modules)


def test_supported_module_layout_is_accepted():
    modules = [_named("Transformer"), _named("Pooling", {"pooling_mode": "cls"}), _named("Normalize")]
    assert sentence_transformer_parts(modules)[1:] == ("cls", True)


def test_missing_or_foreign_export_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match=f"no usable ONNX export in {re.escape(str(tmp_path))}"):
        OnnxEncoder(tmp_path)
    (tmp_path / EXPORT_META).write_text(json.dumps({"format": 99}))
    with pytest.raises(ModelError, match="has format 99, expected 1"):
        OnnxEncoder(tmp_path)


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(ModelError, match="encoder backend must be one of 'onnx', 'onnx-int8', 'torch', got 'tf'"):
        open_encoder(None, tmp_path, backend="tf")


def test_without_export_and_export_disabled_falls_back_to_sentence_transformers(tmp_path):
    from assistant.models.embeddings import SentenceTransformerEncoder

    enc = open_encoder(None, tmp_path, export=False)
    assert isinstance(enc, SentenceTransformerEncoder) and enc._model is None  # nothing loaded yet
    assert not any(tmp_path.iterdir())


def test_the_int8_scheme_of_an_export_and_of_one_made_before_it_was_recorded():
    from assistant.models.onnx import INT8_MIN_COSINE, _int8_scheme

    fp32_only = {"files": {"fp32": "model.onnx"}, "check": {"min_cosine": 1.0}}
    assert _int8_scheme(fp32_only) is None
    both = {"files": {"fp32": "model.onnx", "int8": "model-int8.onnx"}}
    assert _int8_scheme({**both, "check": {"min_cosine_int8": 0.97, "int8_scheme": "ffn-out-fp32"}}) == "ffn-out-fp32"
    assert _int8_scheme({**both, "check": {"min_cosine_int8": 0.97, "int8_scheme": "fp16"}}) is None  # unknown: made again
    # before the scheme was recorded every int8 model was quantised whole: kept if its check passes
    assert _int8_scheme({**both, "check": {"min_cosine_int8": INT8_MIN_COSINE + 0.01}}) == "all"
    assert _int8_scheme({**both, "check": {"min_cosine_int8": 0.568}}) is None


def test_the_feed_forward_output_projections_are_found_by_name(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from assistant.models.onnx_graph import ffn_output_matmuls

    names = ["/inner/encoder/layer.0/attention/attn/o/MatMul", "/inner/encoder/layer.0/attention/output/dense/MatMul",
             "/inner/encoder/layer.0/intermediate/dense/MatMul", "/inner/encoder/layer.0/output/dense/MatMul",
             "/inner/encoder/layer.11/output/dense/MatMul"]  # fmt: skip
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    nodes = [helper.make_node("MatMul", ["x", "x"], [f"y{i}"], name=n) for i, n in enumerate(names)]
    outs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None) for i in range(len(names))]
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], outs)), str(tmp_path / "m.onnx"))
    assert ffn_output_matmuls(tmp_path / "m.onnx") == [names[3], names[4]]


def test_weights_are_written_beside_the_model_and_give_the_same_outputs(tmp_path):
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from assistant.models.onnx_graph import weights_beside

    w = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)  # 8 KB: over the 1 KB cut
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])], [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    model = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    x = np.ones((1, 64), dtype=np.float32)
    before = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    mode = model.stat().st_mode & 0o777
    weights_beside(model)
    data = tmp_path / "model.onnx.data"
    assert data.stat().st_size >= w.nbytes and model.stat().st_size < w.nbytes
    assert data.stat().st_mode & 0o777 == mode  # as readable as the model (a shared cache)
    after = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(before, after)
