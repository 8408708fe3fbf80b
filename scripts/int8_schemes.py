"""Which layers of the verifier can be int8? Cosine to fp32 and speed of each quantisation scheme.

The int8 export of all-mpnet-base-v2, quantised whole (dynamic, per-channel weights), fails the
export check (min cosine 0.57). This script exports the model's plain ONNX graph once (into
--work, never under ~), quantises it with onnxruntime's `quantize_dynamic` keeping one group of
MatMul nodes at a time in fp32, and prints, per scheme, the cosine of its question vectors to the
fp32 ones (mean, min) over the tuning questions of evals/dev.jsonl and evals/gold.jsonl, and the
one-question encoding time (one thread, the best of --rounds passes over the first 40 questions).
It is what docs/performance.md ("The int8 verifier") reports and what INT8_SCHEMES in
assistant/models/onnx.py was chosen on.

    python scripts/int8_schemes.py --work /tmp/int8-schemes      # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.evaluation.gold import load_gold
from assistant.models.onnx import OnnxEncoder, export_onnx
from assistant.models.verifier import MAX_TOKENS, packaged_model_path

ROOT = Path(__file__).resolve().parent.parent


def groups(names: list[str]) -> dict[str, list[str]]:
    """Named groups of the graph's MatMul nodes (HF BERT/MPNet naming)."""
    ffn_out = [n for n in names if "/output/dense/" in n and "/attention/" not in n]
    layer = lambda n: int(n.split("/layer.")[1].split("/")[0])  # noqa: E731
    att_scores = [n for n in names if n.endswith(("attn/MatMul", "attn/MatMul_1"))]
    att_out = [n for n in names if "attn/o/" in n or "/attention/output/dense/" in n]
    qkv = [n for n in names if any(f"attn/{x}/" in n for x in "qkv") or "/self/" in n]
    ffn_in = [n for n in names if "/intermediate/dense/" in n]
    return {
        "nothing": [],
        "attention score products": att_scores,
        "attention output projections": att_out,
        "feed-forward output projections, layers 0-5": [n for n in ffn_out if layer(n) < 6],
        "feed-forward output projections, layers 6-11": [n for n in ffn_out if layer(n) >= 6],
        "feed-forward output projections": ffn_out,
        "the same + attention output projections": ffn_out + att_out,
        "the same + Q, K, V projections": ffn_out + qkv,
        "the same + feed-forward input projections": ffn_out + ffn_in,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="a scratch folder (the plain export and the variants)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    raw = args.work / "raw"
    if not (raw / "export.json").is_file():
        shutil.copytree(export_onnx(packaged_model_path(), args.work / "cache", optimize=False), raw)
    meta = json.loads((raw / "export.json").read_text())
    questions = [q.question for f in ("dev.jsonl", "gold.jsonl") for q in load_gold(ROOT / "evals" / f)]
    fp32 = OnnxEncoder(raw, meta=meta, file="model.onnx", max_tokens=MAX_TOKENS, threads=1)
    ref = fp32.encode(questions)
    names = [n.name for n in onnx.load(str(raw / "model.onnx")).graph.node if n.op_type == "MatMul"]

    def timed(enc: OnnxEncoder) -> float:
        enc.encode(questions[:2])
        best = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for q in questions[:40]:
                enc.encode([q])
            best.append((time.perf_counter() - t0) * 1000 / 40)
        return min(best)

    print(f"fp32: {timed(fp32):.1f} ms a question")
    variants = [(label, nodes, True) for label, nodes in groups(names).items()]
    variants.append(("feed-forward output projections, per-tensor weights", groups(names)["feed-forward output projections"], False))
    for i, (label, nodes, per_channel) in enumerate(variants):
        out = raw / f"variant-{i}.onnx"
        quantize_dynamic(str(raw / "model.onnx"), str(out), weight_type=QuantType.QInt8, per_channel=per_channel,
                         nodes_to_exclude=nodes)  # fmt: skip
        enc = OnnxEncoder(raw, meta=meta, file=out.name, max_tokens=MAX_TOKENS, threads=1)
        cos = np.sum(enc.encode(questions) * ref, axis=1)
        print(json.dumps({"kept in fp32": label, "nodes": len(nodes), "cosine mean": round(float(cos.mean()), 3),
                          "cosine min": round(float(cos.min()), 3), "ms a question": round(timed(enc), 1)}), flush=True)  # fmt: skip
        out.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
