"""Fresh-process `assistant ask`: wall time, several setups alternated in one run.

Each setup is a model cache (ASSISTANT_MODEL_CACHE, where the verifier's ONNX export lives), an
index folder (whose models/ holds MiniLM's export) and optionally a source tree whose ``assistant``
package runs (another commit's checkout, e.g. from ``git worktree add /tmp/before COMMIT``; default:
this one). Runs alternate between the setups, so load spikes hit each alike; the table gives the
median and the range per setup and question.

    python scripts/fresh_start.py --setup before:/tmp/cache-a:/tmp/index-a \\
        --setup after:.cache/models:.index/corpus-d6bd63a1 --runs 5
    python scripts/fresh_start.py --setup before:.cache/models:.cache/seed-index:/tmp/before \\
        --setup after:.cache/models:.cache/seed-index --runs 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.settings import offline_env  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# Two the verifier is asked about, one the retriever alone decides (SKIP_VERIFIER_AT).
QUESTIONS = ("Do you take PayPal?", "can i pay in bitcoin", "How many working days does delivery to France take?")


def one(cache: str, index_dir: str, question: str, verifier: str, source: str = str(ROOT)) -> float:
    """Seconds of one fresh `assistant ask` (wall clock, process start to exit), run from ``source``."""
    env = {**os.environ, **offline_env(), "ASSISTANT_MODEL_CACHE": str(Path(cache).resolve()), "PYTHONPATH": source}
    cmd = [sys.executable, "-m", "assistant", "ask", "-q", "--corpus", str(ROOT / "corpus"),
           "--index-dir", str(Path(index_dir).resolve()), "--verifier", verifier, question]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=source, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--setup", action="append", required=True, metavar="NAME:MODEL_CACHE:INDEX_DIR[:SOURCE]")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--verifier", action="append", help="verifiers to time (default: mpnet and none)")
    args = ap.parse_args(argv)
    setups = [(*s.split(":", 3), str(ROOT))[:4] for s in args.setup]
    verifiers = args.verifier or ["mpnet", "none"]
    times: dict[tuple, list[float]] = {}
    for name, cache, index_dir, source in setups:  # untimed: opens (and self-calibrates) each index once per verifier
        for v in verifiers:
            one(cache, index_dir, QUESTIONS[0], v, str(Path(source).resolve()))
    for _ in range(args.runs):
        for v in verifiers:
            for q in QUESTIONS:
                for name, cache, index_dir, source in setups:
                    times.setdefault((name, v, q), []).append(one(cache, index_dir, q, v, str(Path(source).resolve())))
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| setup | verifier | question | median s | min-max s |\n| --- | --- | --- | --- | --- |")
    for (name, v, q), ts in times.items():
        print(f"| {name} | {v} | {q} | {statistics.median(ts):.2f} | {min(ts):.2f}-{max(ts):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
