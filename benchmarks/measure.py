"""Measurement helpers shared by the benchmark workers: percentiles, memory, recall, latency, the machine."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (linear interpolation); ValueError on an empty list."""
    if not values:
        raise ValueError("percentile of an empty list")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def memory_mb() -> dict[str, float]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of this process, in MiB."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = int(value.split()[0]) / 1024
    except OSError:  # not Linux: peak only
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def recall_at_k(exact: np.ndarray, found: np.ndarray, k: int) -> float:
    """Mean share of each row's exact top-``k`` ids present in the found top-``k`` ids."""
    if exact.shape[0] != found.shape[0]:
        raise ValueError(f"{exact.shape[0]} exact rows but {found.shape[0]} found rows")
    hits = [len(set(e[:k].tolist()) & set(f[:k].tolist())) / k for e, f in zip(exact, found)]
    return float(np.mean(hits))


def log(msg: str) -> None:
    """One progress line on stderr (stdout carries the workers' results)."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def latencies(fn, questions: list[str], rounds: int) -> dict:
    """p50/p95 (ms) of ``fn(question)`` over ``rounds`` passes, after 10 warm-up calls; plus memory."""
    for q in questions[:10]:
        fn(q)
    times = []
    for _ in range(rounds):
        for q in questions:
            t = time.perf_counter()
            fn(q)
            times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95), "n": len(times), **memory_mb()}


def machine_info() -> dict:
    """The CPU, cores, memory, Python and library versions the figures were measured with."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem = 0
    versions = {}
    for pkg in ("onnxruntime", "faiss-cpu", "torch", "sentence-transformers", "bm25s", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem / 1024 / 1024, 1),
        "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M", time.localtime()),
    }
