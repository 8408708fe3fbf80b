"""Export-time helpers that read or rewrite ONNX graphs and sentence-transformers models
(assistant/models/onnx.py makes the exports; nothing here runs when a question is answered)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Callable

from assistant.errors import ModelError

SUPPORTED_POOLING = ("mean", "cls")
# How the int8 variant is quantised: every weight MatMul, per channel ("all"), unless that model's
# check cosine to fp32 is below INT8_MIN_COSINE; then the feed-forward output projections
# (``layer.N/output/dense``, whose GELU inputs carry outliers a per-tensor activation scale cannot
# hold) stay fp32 ("ffn-out-fp32"). all-MiniLM-L6-v2 quantises well whole (question cosine 0.994
# mean, and 138 texts/s in bulk against 95 with its projections in fp32); all-mpnet-base-v2 does
# not (check min 0.57; question cosine 0.881 mean -> 0.991 with them in fp32). docs/performance.md,
# "The int8 verifier". An export made before records no scheme: "all" if its check passes,
# else its int8 model is made again (and its vectors get another fingerprint).
INT8_MIN_COSINE = 0.95
INT8_SCHEMES = ("all", "ffn-out-fp32")

# Texts every export is checked on besides the caller's sample: short, long, accented,
# punctuation-only, and one far past the truncation limit.
EXPORT_CHECK_TEXTS = (
    "How long does shipping take?",
    "can i return earrings if i've worn them",
    "Do you ship to Canada, and how much does it cost?",
    "We accept Visa, MasterCard, American Express and PayPal. We do not accept cash on delivery.",
    "Café crème brûlée — naïve résumé façade.",
    "???",
    "x",
    "Orders are processed within 2 working days. " * 60,
)


def sentence_transformer_parts(st) -> tuple[object, str, bool]:
    """(transformer module, pooling mode, normalize) of a plain Transformer-Pooling[-Normalize] model."""
    modules = list(st)
    names = [type(m).__name__ for m in modules]
    if len(modules) not in (2, 3) or names[:2] != ["Transformer", "Pooling"] or names[2:] not in ([], ["Normalize"]):
        raise ModelError(f"cannot export this model to ONNX: modules {names} (supported: Transformer, Pooling, Normalize)")
    pooling = modules[1].get_config_dict().get("pooling_mode")
    if pooling not in SUPPORTED_POOLING:
        raise ModelError(f"cannot export this model to ONNX: pooling {pooling!r} (supported: {', '.join(SUPPORTED_POOLING)})")
    return modules[0], pooling, len(modules) == 3


@contextlib.contextmanager
def quiet_root_logger():
    """The root logger at ERROR for the duration (onnxruntime's quantiser warns there on every call)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def weights_beside(model: Path) -> None:
    """Rewrite an ONNX file with its weights in a file beside it (``<name>.data``).

    onnxruntime maps such a file instead of parsing the weights out of the model's protobuf: the
    verifier's fp32 session starts in ~0.4 s instead of ~1.0 s (docs/performance.md, "Fresh
    process"). The vectors are the same. Exports made before keep their single file and still work.
    """
    import onnx

    proto = onnx.load(str(model))
    data = model.with_name(model.name + ".data")
    data.unlink(missing_ok=True)
    onnx.save_model(proto, str(model), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data.name, size_threshold=1024)  # fmt: skip
    os.chmod(data, model.stat().st_mode & 0o777)  # onnx writes it 0600; the export folder is shared


def ffn_output_matmuls(model: Path) -> list[str]:
    """The MatMul nodes of the transformer layers' feed-forward output projections ("ffn-out-fp32")."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and re.search(r"/layer\.\d+/output/dense/", n.name)]


def quantize_int8(
    raw: Path, dest: Path, check: Callable[[Path], float], schemes: tuple[str, ...], min_cosine: float
) -> tuple[str, float]:
    """Quantise ``raw`` (an unfused fp32 graph: the quantiser cannot type fused contrib ops) into
    ``dest`` dynamically to int8, per channel (per-tensor scales cost far more accuracy: min cosine
    0.82 on MiniLM), trying ``schemes`` in turn until ``check(dest)``, the minimum cosine to the
    reference vectors, reaches ``min_cosine``. Returns the last scheme tried and its cosine."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for scheme in schemes:
        with quiet_root_logger():  # the quantiser logs a pre-processing hint on the root logger
            quantize_dynamic(
                str(raw), str(dest), weight_type=QuantType.QInt8, per_channel=True,
                nodes_to_exclude=ffn_output_matmuls(raw) if scheme == "ffn-out-fp32" else None,
            )  # fmt: skip
        cosine = check(dest)
        if cosine >= min_cosine:
            break
    return scheme, cosine
