"""Score other verifier vectors for FAQ rows without rebuilding: write them into a copy of an index.

    python scripts/verifier_variants.py --index-dir BUILT --out-dir COPY --mode t128
    assistant eval --corpus FAQ --gold GOLD --index-dir COPY --no-gate --simulate-unanswerable

Copies the index folder ``BUILT`` (built by ``assistant index``, verifier on) to ``COPY`` and
replaces the verifier's vector of every FAQ question + answer text (its ``full`` units) by:

- ``tN``: the same model reading at most N tokens of the text (``MAX_TOKENS`` in
  assistant/models/verifier.py does this for every text);
- ``title``: the question's own vector (as if FAQ rows had no question + answer vector);
- ``int8`` / ``ffn8``: the model dynamically quantised to int8 (per channel), everywhere or only
  in its feed-forward layers (questions stay fp32).

The copy keeps the manifest's model fingerprint, so ``assistant eval`` uses it as it is; the
results are comparable with ``BUILT`` only. docs/performance.md ("Index build") has the figures.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from assistant.index.store import Index
from assistant.index.units import unit_text
from assistant.models.onnx import OnnxEncoder
from assistant.models.verifier import open_verifier_encoder


def variant_encoder(mode: str, work: Path) -> OnnxEncoder:
    base = open_verifier_encoder()
    if mode.startswith("t"):
        return OnnxEncoder(base.path, max_tokens=int(mode[1:]))
    if mode not in ("int8", "ffn8"):
        raise SystemExit(f"unknown mode {mode!r} (tN, title, int8, ffn8)")
    work.mkdir(parents=True, exist_ok=True)
    target = work / f"model-{mode}.onnx"
    if not target.is_file():
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        source = base.path / "model.onnx"
        nodes = None
        if mode == "ffn8":
            graph = onnx.load(str(source), load_external_data=False).graph
            nodes = [
                n.name
                for n in graph.node
                if n.op_type == "MatMul"
                and ("intermediate" in n.name or "output/dense" in n.name)
            ]
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_quantize=nodes,
        )
    shutil.copyfile(base.path / "tokenizer.json", work / "tokenizer.json")
    return OnnxEncoder(work, file=target.name, meta=base.meta)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--index-dir", required=True, help="an index folder built with the verifier"
    )
    p.add_argument("--out-dir", required=True, help="where the copy goes (replaced)")
    p.add_argument("--mode", required=True, help="tN (e.g. t128), title, int8 or ffn8")
    p.add_argument(
        "--work",
        default="bench-out/verifier-variants",
        help="quantised models are kept here",
    )
    args = p.parse_args(argv)
    shutil.rmtree(args.out_dir, ignore_errors=True)
    shutil.copytree(args.index_dir, args.out_dir)
    vdir = Path(args.out_dir) / "verifier"
    index = Index.load(vdir)
    rows = [
        j
        for j, u in enumerate(index.units)
        if u.kind == "full" and index.passages[u.passage].kind == "faq"
    ]
    vectors = np.array(index.vectors, dtype=np.float32)
    t0 = time.perf_counter()
    if args.mode == "title":
        for j in rows:
            own = [
                k
                for k in index.passage_units[index.units[j].passage]
                if index.units[k].kind == "title"
            ]
            if own:
                vectors[j] = vectors[own[0]]
    elif rows:
        texts = [
            unit_text(index.passages[index.units[j].passage], index.units[j])
            for j in rows
        ]
        vectors[rows] = variant_encoder(args.mode, Path(args.work)).encode(texts)
    moved = (
        float((vectors[rows] * np.asarray(index.vectors)[rows]).sum(1).mean())
        if rows
        else 1.0
    )
    print(
        f"{args.mode}: {len(rows)} FAQ question + answer vectors replaced in {time.perf_counter() - t0:.1f} s "
        f"(mean cosine to the old ones {moved:.4f})"
    )
    Index(
        index.passages, index.units, vectors, index.manifest, hashes=index.hashes
    ).save(vdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
