"""The query-time encoder: the model exported to ONNX once (fp32, or int8 by dynamic quantisation),
checked against the original vectors and sealed with a SHA-256 of every file, then run with
onnxruntime and tokenizers alone (no torch when answering)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from assistant.errors import ModelError
from assistant.index.layout import MODELS_DIR
from assistant.integrity import (
    VERIFIED_MEMO, folder_digests, made_once, replace_with_copy, sealed_folder_damage, write_json,
)  # fmt: skip
from assistant.models.embeddings import (
    DEFAULT_MODEL,
    Encoder,
    SentenceTransformerEncoder,
    model_fingerprint,
    normalize,
    resolve_model_path,
)
from assistant.models.onnx_graph import (
    EXPORT_CHECK_TEXTS, INT8_MIN_COSINE, INT8_SCHEMES, quantize_int8, sentence_transformer_parts, weights_beside,
)  # fmt: skip

MODEL_CACHE = MODELS_DIR  # the index folder's model exports (the name is assistant/index/layout.py's)
EXPORT_META = "export.json"
EXPORT_FORMAT = 1
ONNX_FILES = {"fp32": "model.onnx", "int8": "model-int8.onnx"}
MIN_EXPORT_COSINE = 0.999
BACKENDS = ("onnx", "onnx-int8", "torch")
QUERY_BATCH = 8  # encode calls with at most this many texts are questions (QUERY_THREADS), not bulk
# Questions run on every core with the pool's threads sleeping, not spinning, between calls: one
# question then encodes about a third faster on the 2-core reference machine (the verifier 47.8 ->
# 30.0 ms, MiniLM 6.7 -> 4.5 ms), and callers sharing a session lose less than with a spinning
# pool (scripts/query_threads.py, docs/performance.md). The edges set it from
# ASSISTANT_QUERY_THREADS (settings.apply_query_threads), e.g. for replicas sharing a host.
QUERY_THREADS = 0
# Whether a question-time session packs its weights for onnxruntime's matrix kernels when it is made.
# Packing costs the verifier ~0.5 s at session start and saves ~60 ms on each question after, so a
# process that answers a single question (`assistant ask QUESTION`) turns it off: about 0.4 s less
# from start to answer (docs/performance.md, "One question, one process"). The vectors are the same.
PACK_QUESTION_WEIGHTS = True


def export_dir(cache_dir: str | Path, fingerprint: str) -> Path:
    """The folder holding the ONNX export of the model with ``fingerprint``."""
    return Path(cache_dir) / fingerprint


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(normalize(a) * normalize(b), axis=1)))


def export_onnx(
    model: str | Path | None = None,
    cache_dir: str | Path = ".models",
    *,
    sample: list[str] | tuple[str, ...] = (),
    quantize: bool = False,
    optimize: bool = True,
    min_cosine: float = MIN_EXPORT_COSINE,
    log: Callable[[str], None] | None = None,
    shared: Path | None = None,
) -> Path:
    """Export the sentence-transformers model to ONNX under ``cache_dir/<fingerprint>/`` (once).

    ``shared``: another folder of exports (the machine's model cache, for an index folder's
    ``models/``): a sealed export there is copied instead of exporting again (~10 s for MiniLM),
    and a new export is copied there for the next index.

    The export is checked against the reference encoder on ``sample`` plus a fixed set of
    texts; below ``min_cosine`` it is discarded and ModelError raised. ``optimize`` fuses the
    BERT graph with onnxruntime's transformer optimizer (kept only if it passes the same
    check). ``quantize`` adds a dynamically int8-quantised variant (never used to build
    indexes: its vectors are only close to the reference, see docs/performance.md).

    Returns the export folder (an existing complete export is reused, not redone).
    """
    path = resolve_model_path(model)
    fingerprint = model_fingerprint(path)
    out = export_dir(cache_dir, fingerprint)
    if _usable_export(out, quantize):
        return out
    what = f"encoder: the ONNX export of {DEFAULT_MODEL if model is None else path.name}"
    with made_once(Path(cache_dir) / f".export-{fingerprint}.lock", what, log):
        if _usable_export(out, quantize):  # another process made it meanwhile
            return out
        source = export_dir(shared, fingerprint) if shared is not None else None
        if source is not None and source != out and _usable_export(source, quantize):
            if log:
                log(f"{what}: copied from {shared}")
            replace_with_copy(source, out, skip=(VERIFIED_MEMO,))
            if _usable_export(out, quantize):
                return out
        if quantize and _usable_export(out, False) and not _read_meta(out)["check"].get("optimized"):
            _add_int8(out, log)  # its fp32 graph is the plain one: quantise it, no torch, no new export
            if _usable_export(out, quantize):
                return out
        made = _export(model, path, out, cache_dir, sample=sample, quantize=quantize, optimize=optimize,
                       min_cosine=min_cosine, log=log)  # fmt: skip
    if source is not None and source != out and not _usable_export(source, quantize):
        try:  # for the next index folder; the export made here is enough for this one
            with made_once(Path(shared) / f".export-{fingerprint}.lock", what, log):
                replace_with_copy(made, source, skip=(VERIFIED_MEMO,))
        except OSError as exc:
            if log:
                log(f"encoder: the export was not copied to {shared} ({exc})")
    return made


def _export(model: str | Path | None, path: Path, out: Path, cache_dir: str | Path, *, sample, quantize: bool,
            optimize: bool, min_cosine: float, log: Callable[[str], None] | None) -> Path:  # fmt: skip
    """export_onnx's work, under its lock."""
    fingerprint = out.name
    # A folder that cannot be made fails now, before the torch import (seconds) it would follow.
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    from assistant.extras import require_extra

    require_extra("torch", f"exporting {DEFAULT_MODEL if model is None else path.name} to ONNX (once per model, at index time)")
    if log:
        damage = _export_damage(out) if (out / EXPORT_META).is_file() else None
        if damage:
            log(f"encoder: {damage}; exporting again")
        log(f"encoder: exporting {path.name} to ONNX in {out} (once per model)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import warnings

    import onnxruntime
    import torch

    reference = SentenceTransformerEncoder(model)
    transformer, pooling, normalized = sentence_transformer_parts(reference.model)
    hf_model = transformer.auto_model.eval()
    if hasattr(hf_model, "set_attn_implementation"):
        # The eager attention graph is the one onnxruntime's optimizer knows how to fuse.
        hf_model.set_attn_implementation("eager")
    tokenizer = transformer.tokenizer
    input_names = ["input_ids", "attention_mask"]
    probe = tokenizer(["a probe sentence", "another one, longer than the first"], padding=True, return_tensors="pt")
    if "token_type_ids" in probe:
        input_names.append("token_type_ids")

    class _Hidden(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs):
            return self.inner(**dict(zip(input_names, inputs))).last_hidden_state

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".export-{fingerprint}-", dir=cache_dir))
    try:
        axes = {name: {0: "batch", 1: "tokens"} for name in [*input_names, "last_hidden_state"]}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Hidden(hf_model), tuple(probe[n] for n in input_names), str(tmp / "raw.onnx"),
                input_names=input_names, output_names=["last_hidden_state"], dynamic_axes=axes,
                opset_version=17, dynamo=False,
            )
        tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            if (path / name).is_file():
                shutil.copyfile(path / name, tmp / name)
        meta = {
            "format": EXPORT_FORMAT,
            "model": reference.name,
            "fingerprint": fingerprint,
            "dim": reference.dim,
            "max_seq_length": int(transformer.max_seq_length),
            "do_lower_case": bool(getattr(transformer, "do_lower_case", False)),
            "pooling": pooling,
            "normalize": normalized,
            "inputs": input_names,
            "pad_id": int(tokenizer.pad_token_id or 0),
            "pad_token": str(tokenizer.pad_token or "[PAD]"),
            "files": {},
            "check": {},
            "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        }
        check = list(dict.fromkeys([*EXPORT_CHECK_TEXTS, *sample]))
        want = reference.encode(check)

        def verify(file: str) -> float:
            return _min_cosine(OnnxEncoder(tmp, file=file, meta=meta).encode(check), want)

        chosen, cosine = "raw.onnx", verify("raw.onnx")
        if optimize and getattr(hf_model.config, "model_type", "") == "bert":
            try:
                from onnxruntime.transformers.optimizer import optimize_model

                cfg = hf_model.config
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fused = optimize_model(
                        str(tmp / "raw.onnx"), model_type="bert",
                        num_heads=cfg.num_attention_heads, hidden_size=cfg.hidden_size, opt_level=1,
                    )
                fused.save_model_to_file(str(tmp / "fused.onnx"))
                fused_cos = verify("fused.onnx")
                if fused_cos >= min_cosine:
                    chosen, cosine = "fused.onnx", fused_cos
            except Exception as exc:  # the optimizer is a speed-up; the plain export still works
                if log:
                    log(f"encoder: onnxruntime graph optimisation skipped ({exc})")
        if cosine < min_cosine:
            raise ModelError(
                f"ONNX export of {path} disagrees with sentence-transformers (min cosine {cosine:.5f} < {min_cosine})"
            )
        meta["check"] = {"texts": len(check), "min_cosine": round(cosine, 6), "optimized": chosen == "fused.onnx"}
        if quantize:
            scheme, int8_cosine = quantize_int8(tmp / "raw.onnx", tmp / ONNX_FILES["int8"], lambda f: verify(f.name),
                                                INT8_SCHEMES, INT8_MIN_COSINE)  # fmt: skip
            meta["files"]["int8"] = ONNX_FILES["int8"]
            meta["check"]["min_cosine_int8"] = round(int8_cosine, 6)
            meta["check"]["int8_scheme"] = scheme
        os.replace(tmp / chosen, tmp / ONNX_FILES["fp32"])
        for leftover in ("raw.onnx", "fused.onnx"):
            (tmp / leftover).unlink(missing_ok=True)
        meta["files"]["fp32"] = ONNX_FILES["fp32"]
        for file in meta["files"].values():
            weights_beside(tmp / file)
        meta["sha256"] = folder_digests(tmp, skip=(EXPORT_META, VERIFIED_MEMO))  # checked on every open
        (tmp / EXPORT_META).write_text(json.dumps(meta, indent=1))
        if _usable_export(out, quantize):  # another process finished first: keep its export
            shutil.rmtree(tmp, ignore_errors=True)
            return out
        if out.exists():  # an older, partial or fp32-only export
            shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _read_meta(folder: Path) -> dict:
    """An export's metadata (``export.json``); OSError or ValueError when it is missing or not JSON."""
    return json.loads((folder / EXPORT_META).read_text())


def _add_int8(out: Path, log: Callable[[str], None] | None) -> None:
    """Add the int8 variant to a sealed export whose fp32 graph is unfused, in place: quantised from it
    and checked against its vectors (themselves checked against sentence-transformers at export).
    The int8 files land beside the others before the metadata lists them, so a process reading
    the export meanwhile sees the fp32 one, whole. The verifier's export is made without int8 (most
    users never ask for ``mpnet-int8``): quantising it costs ~40 s of the first index build."""
    from assistant.extras import require_extra

    require_extra("torch", "quantising the ONNX export to int8 (once)")  # the quantiser needs the onnx package
    if log:
        log(f"encoder: adding the int8 variant to the ONNX export in {out} (once)")
    meta = _read_meta(out)
    check = list(EXPORT_CHECK_TEXTS)
    want = OnnxEncoder(out, meta=meta).encode(check)
    tmp = Path(tempfile.mkdtemp(prefix=".int8-", dir=out.parent))
    try:
        shutil.copyfile(out / "tokenizer.json", tmp / "tokenizer.json")
        int8 = tmp / ONNX_FILES["int8"]
        scheme, cosine = quantize_int8(out / ONNX_FILES["fp32"], int8,
                                       lambda f: _min_cosine(OnnxEncoder(tmp, file=f.name, meta=meta).encode(check), want),
                                       INT8_SCHEMES, INT8_MIN_COSINE)  # fmt: skip
        weights_beside(int8)
        for name in (int8.name, int8.name + ".data"):
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    meta["files"]["int8"] = int8.name
    meta["check"].update(min_cosine_int8=round(cosine, 6), int8_scheme=scheme)
    meta["sha256"] = folder_digests(out, skip=(EXPORT_META, VERIFIED_MEMO))
    write_json(out / EXPORT_META, meta)


def _int8_scheme(meta: dict) -> str | None:
    """How an export's int8 model is quantised (INT8_SCHEMES), or None: none, or one quantised whole
    before the scheme was recorded whose check fails (it is made again)."""
    check = meta.get("check") or {}
    if "int8" not in meta.get("files", {}):
        return None
    if "int8_scheme" in check:
        return check["int8_scheme"] if check["int8_scheme"] in INT8_SCHEMES else None
    return "all" if float(check.get("min_cosine_int8", 0.0)) >= INT8_MIN_COSINE else None


def _usable_export(folder: Path, quantize: bool) -> bool:
    try:
        meta = _read_meta(folder)
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        return False
    return (not quantize or _int8_scheme(meta) is not None) and _export_damage(folder, meta) is None


def _export_damage(folder: Path, meta: dict | None = None) -> str | None:
    """Why the export in ``folder`` cannot be used (a file missing, altered or unlisted), or None."""
    try:
        meta = _read_meta(folder) if meta is None else meta
        needed = [*meta.get("files", {}).values(), "tokenizer.json"]
    except (OSError, ValueError, AttributeError) as exc:
        return f"the ONNX export in {folder} is damaged ({EXPORT_META}: {exc})"
    damage = sealed_folder_damage(folder, meta, EXPORT_META, needed=needed)
    return f"the ONNX export in {folder} is damaged ({damage})" if damage else None


class OnnxEncoder:
    """The exported model run by onnxruntime + tokenizers + numpy (no torch).

    It carries the reference encoder's name, fingerprint and dimension, so an index built by
    either encoder is valid for the other (the export is checked to cosine >= 0.999).
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        name: str | None = None,
        variant: str = "fp32",
        threads: int | None = None,
        file: str | None = None,
        meta: dict | None = None,
        max_tokens: int | None = None,
    ) -> None:
        """``max_tokens``: read at most this many tokens of a text (fewer than the model's
        ``max_seq_length``); the vectors of longer texts then differ, so the fingerprint says it."""
        self.path = Path(folder)
        if meta is None:  # an export on disk (not one being checked while it is made): verify it
            try:
                meta = _read_meta(self.path)
            except (OSError, ValueError) as exc:
                raise ModelError(f"no usable ONNX export in {self.path}: {exc}") from None
            if not isinstance(meta, dict):
                raise ModelError(f"no usable ONNX export in {self.path}: {EXPORT_META} is not a JSON object")
            if meta.get("format") == EXPORT_FORMAT and (damage := _export_damage(self.path, meta)):
                raise ModelError(damage)
        if meta.get("format") != EXPORT_FORMAT:
            raise ModelError(f"ONNX export in {self.path} has format {meta.get('format')}, expected {EXPORT_FORMAT}")
        if file is None:
            if variant not in meta.get("files", {}):
                raise ModelError(f"ONNX export in {self.path} has no {variant!r} model (has {sorted(meta.get('files', {}))})")
            file = meta["files"][variant]
        self.meta = meta
        self.name = name or meta["model"]
        self.fingerprint = meta["fingerprint"] if variant == "fp32" else f"{meta['fingerprint']}-{variant}"
        if variant == "int8" and _int8_scheme(meta) not in (None, "all"):  # other vectors than whole int8's
            self.fingerprint = f"{self.fingerprint}-{_int8_scheme(meta)}"
        if variant == "int8":  # encoded one text per call since its vector depended on its batch (encode)
            self.fingerprint = f"{self.fingerprint}-solo"
        self.max_tokens = int(meta["max_seq_length"])
        if max_tokens is not None and 0 < max_tokens < self.max_tokens:
            self.max_tokens = int(max_tokens)
            self.fingerprint = f"{self.fingerprint}-t{self.max_tokens}"
        self.dim = int(meta["dim"])
        self.variant = variant
        self.threads = threads
        self._file = self.path / file
        self._sessions: dict[tuple[int, bool], object] = {}  # (threads, spinning) -> session
        self._tokenizer = None

    def _session(self, threads: int, *, spinning: bool = True):
        """An onnxruntime session running on ``threads`` threads (0: one per core), made once;
        without ``spinning`` its idle pool threads sleep instead of busy-waiting for work."""
        if self._tokenizer is None:
            self._load_tokenizer()
        if (threads, spinning) not in self._sessions:
            self._sessions[(threads, spinning)] = self._new_session(threads, spinning)
        return self._sessions[(threads, spinning)]

    def _new_session(self, threads: int, spinning: bool):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads
        if not spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            if not PACK_QUESTION_WEIGHTS:
                opts.add_session_config_entry("session.disable_prepacking", "1")
        try:
            return ort.InferenceSession(str(self._file), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types with C++ text
            raise ModelError(f"cannot load the ONNX model {self._file}: {exc}") from None

    def _load_tokenizer(self) -> None:
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises a bare Exception with Rust text
            raise ModelError(f"cannot load the tokenizer {self.path / 'tokenizer.json'}: {exc}") from None
        tok.enable_truncation(self.max_tokens)
        tok.enable_padding(pad_id=self.meta["pad_id"], pad_token=self.meta["pad_token"])
        self._tokenizer = tok

    def _encode_batch(self, texts: list[str], session) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.meta["inputs"]:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run(None, feeds)[0]
        if self.meta["pooling"] == "cls":
            pooled = hidden[:, 0]
        else:
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return normalize(pooled)

    def encode(self, texts: list[str], *, batch_size: int = 8, progress: bool = False) -> np.ndarray:
        """L2-normalised float32 vectors; texts are batched by length so padding stays small.

        Small batches are fastest on CPU here (they stay in cache): 8 texts gave 173 texts/s
        against 155 for 32 and 120 for 128 on the 2-core benchmark machine (docs/performance.md).
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Questions: QUERY_THREADS threads that sleep between calls; bulk (index builds): every core, spinning.
        query = len(texts) <= QUERY_BATCH
        threads = self.threads if self.threads is not None else (QUERY_THREADS if query else 0)
        session = self._session(threads, spinning=not query)
        # sentence-transformers strips each text (and lowercases when the model asks for it).
        prepared = [str(t).strip() for t in texts]
        if self.meta.get("do_lower_case"):
            prepared = [t.lower() for t in prepared]
        if self.variant == "int8":
            # int8 activations are scaled by the whole batch's range: batched, a text's vector depended on
            # its neighbours (cosine to the text alone down to 0.97). Alone: ~10% slower in bulk.
            batch_size = 1
        order = np.argsort([-len(t) for t in prepared], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._encode_batch([prepared[i] for i in rows], session)
        return out


def open_encoder(
    model: str | Path | None = None,
    cache_dir: str | Path | None = None,
    *,
    backend: str = "onnx",
    export: bool = True,
    log: Callable[[str], None] | None = None,
    max_tokens: int | None = None,
    quantize: bool = False,
    shared: Path | None = None,
) -> "Encoder":
    """The fastest faithful encoder for ``model``.

    ``backend="onnx"``: the ONNX export in ``cache_dir`` when there is one (no torch import);
    otherwise export it now when ``export`` (imports torch once), falling back to
    sentence-transformers for models that cannot be exported. ``backend="torch"``: always
    sentence-transformers. ``backend="onnx-int8"``: the int8-quantised export, about 3x
    faster per question but only close to the reference (see docs/performance.md); it has
    its own fingerprint, so an index built with it is never mixed with fp32 vectors.
    ``max_tokens``: read at most this many tokens of each text (see OnnxEncoder).
    ``quantize``: an export made now also holds the int8 variant (an existing one is kept as it is).
    ``shared``: a folder of exports to copy from, and to copy a new export into (export_onnx).
    """
    if backend not in BACKENDS:
        raise ModelError(f"encoder backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    name = DEFAULT_MODEL if model is None else str(model)
    if backend == "torch" or cache_dir is None:
        return SentenceTransformerEncoder(model, max_tokens=max_tokens)
    variant = "int8" if backend == "onnx-int8" else "fp32"
    name = name if variant == "fp32" else f"{name} (int8)"
    path = resolve_model_path(model)
    folder = export_dir(cache_dir, model_fingerprint(path))
    if (folder / EXPORT_META).is_file() and (variant == "fp32" or _usable_export(folder, quantize=True)):
        try:
            return OnnxEncoder(folder, name=name, variant=variant, max_tokens=max_tokens)
        except ModelError as exc:
            if log:
                log(f"encoder: {exc}; exporting again")
    if not export:
        return SentenceTransformerEncoder(model, max_tokens=max_tokens)
    try:
        exported = export_onnx(model, cache_dir, quantize=quantize or variant == "int8", log=log, shared=shared)
        return OnnxEncoder(exported, name=name, variant=variant, max_tokens=max_tokens)
    except ModelError as exc:
        if log:
            log(f"encoder: {exc}; using sentence-transformers")
        return SentenceTransformerEncoder(model, max_tokens=max_tokens)
