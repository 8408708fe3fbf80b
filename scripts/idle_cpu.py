"""How much CPU an idle server uses: `assistant serve` started, left alone, its CPU time read.

    python scripts/idle_cpu.py [--seconds 20] [-- SERVE ARGS...]

Starts `python -m assistant serve --port 0` (with any extra arguments, e.g. `--verifier none`),
waits for it to settle, then reads the process's user + system CPU time (all its threads, from
/proc) over ``--seconds`` with no request sent, and prints the share of one core it used, per
thread that used any. Linux only. Nothing is asserted: it only measures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.server.process import ServerProcess
from assistant.settings import offline_env


def thread_cpu(pid: int) -> dict[tuple[str, str], float]:
    """CPU seconds (user + system) of each thread of ``pid``: (thread id, name) -> seconds."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[(tid, name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="how long to watch the idle server (default 20)")
    p.add_argument("--settle", type=float, default=5.0, help="seconds to wait after it is ready (default 5)")
    p.add_argument("serve_args", nargs="*", help="extra `assistant serve` arguments (after --)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as data:
        cmd = [sys.executable, "-m", "assistant", "serve", "--port", "0", "--data-dir", data, *args.serve_args]
        with ServerProcess(cmd, env={**os.environ, **offline_env()}, stop_timeout_s=20) as server:
            time.sleep(args.settle)
            before = thread_cpu(server.proc.pid)
            time.sleep(args.seconds)
            after = thread_cpu(server.proc.pid)
    used = {k: v - before.get(k, 0.0) for k, v in after.items()}
    print(f"idle server: {sum(used.values()) / args.seconds:.1%} of one core over {args.seconds:.0f} s")
    for (tid, name), seconds in sorted(used.items(), key=lambda kv: -kv[1]):
        if seconds > 0:
            print(f"  thread {tid} ({name}): {seconds / args.seconds:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
