"""Fresh-process `assistant ask`: wall time, several setups alternated in one run.

Each setup is a model cache (ASSISTANT_MODEL_CACHE, where the verifier's ONNX export lives) and
an index folder (whose models/ holds MiniLM's export). Runs alternate between the setups, so load
spikes hit each alike; the table gives the median and the range per setup and question.

    python scripts/fresh_start.py --setup before:/tmp/cache-a:/tmp/index-a \\
        --setup after:.cache/models:.index/corpus-d6bd63a1 --runs 5
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

QUESTIONS = ("Do you take PayPal?", "can i pay in bitcoin")


def one(cache: str, index_dir: str, question: str, verifier: str) -> float:
    """Seconds of one fresh `assistant ask` (wall clock, process start to exit)."""
    env = {**os.environ, **offline_env(), "ASSISTANT_MODEL_CACHE": str(Path(cache).resolve())}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "assistant", "ask", "-q", "--index-dir", index_dir, "--verifier", verifier, question],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--setup", action="append", required=True, metavar="NAME:MODEL_CACHE:INDEX_DIR")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--verifier", action="append", help="verifiers to time (default: mpnet and none)")
    args = ap.parse_args(argv)
    setups = [tuple(s.split(":", 2)) for s in args.setup]
    verifiers = args.verifier or ["mpnet", "none"]
    times: dict[tuple, list[float]] = {}
    for name, cache, index_dir in setups:  # untimed: opens (and self-calibrates) each index once per verifier
        for v in verifiers:
            one(cache, index_dir, QUESTIONS[0], v)
    for _ in range(args.runs):
        for v in verifiers:
            for q in QUESTIONS:
                for name, cache, index_dir in setups:
                    times.setdefault((name, v, q), []).append(one(cache, index_dir, q, v))
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| setup | verifier | question | median s | min-max s |\n| --- | --- | --- | --- | --- |")
    for (name, v, q), ts in times.items():
        print(f"| {name} | {v} | {q} | {statistics.median(ts):.2f} | {min(ts):.2f}-{max(ts):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
