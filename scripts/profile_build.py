"""Where an index build's time goes: ``assistant index`` from nothing, timed per stage.

    python scripts/profile_build.py --corpus FAQ [--repeat 2] [--verifier mpnet|none]
        [--set assistant.models.verifier:FULL_TOKENS=128 ...] [--out bench-out/profile-build.json]

Each run is a fresh process building into a fresh temporary index folder exactly as
``assistant index`` does (``Assistant.open`` with the self-calibration; MiniLM's ONNX export
included, the verifier's export taken from the shared model cache as usual). The stages are
timed (wall-clock and the process's CPU seconds, which a busy machine disturbs less) by wrapping the functions that do them: the MiniLM export, reading the corpus, the
embedding of each model's units and of the quote sentences, opening the verifier's encoder,
saving, and the self-calibration; what is left is ``other``. Prints per run the stages'
seconds, the total, the peak RSS of the process and the load average before and after.

``--set MODULE:NAME=VALUE`` sets a module constant (a Python literal) in the child before it
builds, so options can be compared in one invocation, runs interleaved: each ``--variant``
(a label and its ``--set``s, separated by commas) runs once per repeat, in turn. Nothing in the
assistant changes; only the timings are added.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

STAGES = (
    "export",
    "corpus",
    "minilm units",
    "quotes",
    "verifier open",
    "verifier units",
    "save",
    "self-calibration",
    "other",
)


def _apply_sets(sets: list[str]) -> None:
    for item in sets:
        target, _, value = item.partition("=")
        module, _, name = target.partition(":")
        mod = importlib.import_module(module)
        if not hasattr(mod, name):
            raise SystemExit(f"--set {item}: {module} has no {name}")
        setattr(mod, name, ast.literal_eval(value))


def run_once(corpus: list[str], verifier: str, sets: list[str]) -> dict:
    """One build from nothing in this process; the stages' seconds."""
    _apply_sets(sets)
    import assistant.models.verifier as verifier_mod
    from assistant.core import pipeline, self_calibration
    from assistant.index import store

    seconds: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(
        float
    )  # CPU seconds of the process (all its threads)
    texts: dict[str, int] = defaultdict(int)
    stack: list[list] = []

    def wrap(label, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            name = label(args, kwargs) if callable(label) else label
            frame = [time.perf_counter(), time.process_time(), 0.0, 0.0]
            stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                stack.pop()
                wall, used = (
                    time.perf_counter() - frame[0],
                    time.process_time() - frame[1],
                )
                seconds[name] += wall - frame[2]
                cpu[name] += used - frame[3]
                if stack:
                    stack[-1][2] += wall
                    stack[-1][3] += used

        return timed

    embed_calls = defaultdict(int)

    def embed_label(args, kwargs):
        texts_, encoder = args[0], args[1]
        model = "verifier" if encoder.dim != 384 else "minilm"
        embed_calls[model] += 1
        name = (
            "verifier units"
            if model == "verifier"
            else ("minilm units" if embed_calls[model] == 1 else "quotes")
        )
        texts[name] += len(set(texts_))
        return name

    pipeline.open_encoder = wrap("export", pipeline.open_encoder)
    store.load_corpus = wrap("corpus", store.load_corpus)
    store._embed = wrap(embed_label, store._embed)
    verifier_mod.open_verifier_encoder = wrap(
        "verifier open", verifier_mod.open_verifier_encoder
    )
    store.Index.save = wrap("save", store.Index.save)
    self_calibration.self_calibrate = wrap(
        "self-calibration", self_calibration.self_calibrate
    )

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="profile-build-") as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        assistant, _ = pipeline.Assistant.open(
            corpus,
            Path(tmp) / "index",
            verifier=None if verifier == "none" else verifier,
            self_calibrate=True,
        )
        total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
    seconds["other"] = total - sum(seconds.values())
    cpu["other"] = total_cpu - sum(cpu.values())
    return {
        "total_s": round(total, 2),
        "cpu_s": round(total_cpu, 2),
        "stages_s": {k: round(seconds.get(k, 0.0), 2) for k in STAGES},
        "stages_cpu_s": {k: round(cpu.get(k, 0.0), 2) for k in STAGES},
        "distinct_texts": dict(texts),
        "vectors": {
            "main": len(assistant.index.units),
            "verifier": len(assistant.verifier.index.units)
            if assistant.verifier is not None
            else 0,
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "sets": sets,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", action="append", required=True)
    p.add_argument(
        "--verifier", default="mpnet", choices=("mpnet", "mpnet-int8", "none")
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per variant (fresh processes, interleaved)",
    )
    p.add_argument(
        "--set", action="append", default=[], help="MODULE:NAME=VALUE for every run"
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        help="LABEL or LABEL:MODULE:NAME=VALUE[,MODULE:NAME=VALUE] (default: one plain run)",
    )
    p.add_argument("--out", default="bench-out/profile-build.json")
    p.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.once:
        print(json.dumps(run_once(args.corpus, args.verifier, args.set)))
        return 0
    variants = []
    for v in args.variant or ["default"]:
        label, _, rest = v.partition(":")
        variants.append((label, [s for s in rest.split(",") if s]))
    rows = []
    for r in range(args.repeat):
        for label, sets in variants:
            cmd = [sys.executable, __file__, "--once", "--verifier", args.verifier]
            for c in args.corpus:
                cmd += ["--corpus", c]
            for s in [*args.set, *sets]:
                cmd += ["--set", s]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return done.returncode
            row = {
                "variant": label,
                "run": r + 1,
                **json.loads(done.stdout.strip().splitlines()[-1]),
            }
            rows.append(row)
            stages = "  ".join(
                f"{k} {v:.1f}/{row['stages_cpu_s'][k]:.1f}"
                for k, v in row["stages_s"].items()
                if v >= 0.05
            )
            print(
                f"{label} run {r + 1}: {row['total_s']:.1f} s wall, {row['cpu_s']:.1f} s CPU (peak RSS "
                f"{row['peak_rss_mb']} MB, load {row['load_before'][0]:.2f} -> {row['load_after'][0]:.2f}); "
                f"stages wall/CPU s: {stages}",
                flush=True,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
