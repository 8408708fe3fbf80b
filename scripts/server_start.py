"""Server start: `assistant serve` from process start to its "ready" line, several setups alternated.

    python scripts/server_start.py --setup before:/tmp/before --setup after:. --runs 5

Each setup is a source tree whose ``assistant`` package runs (another commit's checkout, e.g. from
``git worktree add /tmp/before COMMIT``); every run serves the bundled corpus from the same,
already built index (``--index-dir``, default `make test`'s `.cache/seed-index`) with a fresh data
folder, on a free port, and is stopped as soon as it says it is ready. Runs alternate between the
setups, so load spikes hit each alike; the table gives the median and the range.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.settings import offline_env  # noqa: E402


def one(source: Path, index_dir: Path) -> float:
    """Seconds from starting `assistant serve` to its "ready in" line."""
    with tempfile.TemporaryDirectory(prefix="server-start-") as data:
        env = {**os.environ, **offline_env(), "PYTHONPATH": str(source)}
        cmd = [sys.executable, "-m", "assistant", "serve", "--port", "0", "--corpus", str(ROOT / "corpus"),
               "--index-dir", str(index_dir), "--data-dir", data]  # fmt: skip
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            for line in proc.stderr:
                if line.startswith("ready in "):
                    return time.perf_counter() - t0
            raise RuntimeError(f"{source}: the server exited before it was ready (exit {proc.wait()})")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--setup", action="append", required=True, metavar="NAME:SOURCE")
    ap.add_argument("--index-dir", type=Path, default=ROOT / ".cache" / "seed-index")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    setups = [(name, Path(src).resolve()) for name, src in (s.split(":", 1) for s in args.setup)]
    for _, source in setups:  # untimed: each opens (and checks) the index once
        one(source, args.index_dir.resolve())
    times: dict[str, list[float]] = {}
    for _ in range(args.runs):
        for name, source in setups:
            times.setdefault(name, []).append(one(source, args.index_dir.resolve()))
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| setup | median s | min-max s |\n| --- | --- | --- |")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f}-{max(ts):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
