"""The load test (scripts/load_test.py) at a reduced size against the real server: no errors.

The full size (50 clients, 2,000 requests) is one command: ``python scripts/load_test.py``;
docs/reliability.md quotes its figures. Timings are reported, never asserted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from .app_process import ROOT, child_env, index_dir_with_model

pytestmark = pytest.mark.slow


def test_reduced_load_test_gets_no_errors(tmp_path, model_cache):
    index_dir = index_dir_with_model(tmp_path / "index", model_cache, seeded=True)
    out = tmp_path / "load.json"
    proc = subprocess.run(
        [sys.executable, "scripts/load_test.py", "--clients", "10", "--requests", "120", "--max-seconds", "300",
         "--index-dir", str(index_dir), "--out", str(out)],
        cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert (report["requested"], report["completed"], report["clients"]) == (120, 120, 10)
    assert report["status_counts"] == {"200": 120} and report["errors"] == {} and report["server_5xx"] == 0
    by = report["by_endpoint"]
    assert sum(e["requests"] for e in by.values()) == 120 and all(e["requests"] > 0 for e in by.values())
    assert set(report["latency_ms"]) == {"p50", "p95", "p99", "mean", "max"}
    assert report["memory_mb"]["before"] > 0 and report["memory_mb"]["after"] > 0
    # every ask and draft (and the 20 warm-up asks) was logged by the server
    assert report["server_feedback_after"]["interactions"] == 20 + by["ask"]["requests"] + by["draft"]["requests"]
    assert "requests from 10 clients" in proc.stdout and "server RSS:" in proc.stdout
    artifacts = ROOT / "test-artifacts" / "reliability"
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(out, artifacts / "load-reduced.json")
