"""The optional extras (pyproject.toml) and the one check that names the missing one.

The core (``pip install faq-assistant``) answers from an existing ONNX export with onnxruntime
and tokenizers. The web app, the evaluation harness and the ONNX export itself need more;
each edge asks :func:`require_extra` before importing them, so a missing extra is one clear
line (``error: the web app needs the [web] extra: pip install 'faq-assistant[web]'``), never
an ImportError traceback from deep inside.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

from assistant.errors import AssistantError

DISTRIBUTION = "faq-assistant"
# extra -> the modules it provides (import names, checked without importing them)
EXTRAS: dict[str, tuple[str, ...]] = {
    "web": ("gradio", "fastapi", "uvicorn", "httpx"),
    "eval": ("matplotlib", "sklearn", "pandas", "tabulate"),
    "torch": ("torch", "sentence_transformers", "onnx"),
}


class MissingExtraError(AssistantError):
    """An optional part of the package is not installed; the message says which extra to install."""

    def __init__(self, extra: str, what: str, missing: list[str]) -> None:
        super().__init__(
            f"{what} needs the [{extra}] extra: pip install '{DISTRIBUTION}[{extra}]' (missing: {', '.join(missing)})"
        )
        self.extra = extra
        self.missing = missing


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (empty when it is installed)."""
    if extra not in EXTRAS:
        raise ValueError(f"extra must be one of {', '.join(EXTRAS)}, got {extra!r}")
    missing = []
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken parent package, or a module without a spec
            found = False
        if not found:
            missing.append(module)
    return missing


def require_extra(extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` naming ``extra`` when any of its modules is missing.

    ``what`` is the feature that needs it, e.g. ``"the web app"``.
    """
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(extra, what, missing)


class _NoStubRewrite(importlib.abc.MetaPathFinder):
    """Loads ``gradio.component_meta`` with its ``create_or_modify_pyi`` made a no-op.

    Gradio 6 re-derives a type-stub (``.pyi``) file for each of its ~80 components every time it
    is imported (parsing each component's source, and writing into site-packages when the stub
    differs). That is about 45% of ``import gradio`` (3.4 s instead of 6.0 s of CPU on the
    reference machine), paid by every server start; stubs serve type checkers, not a running
    server. Should a gradio release rename the function, nothing is patched and gradio imports
    as usual.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "gradio.component_meta":
            return None
        sys.meta_path.remove(self)  # once: the lookup below must find the real module
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module) -> None:
            run(module)
            if callable(getattr(module, "create_or_modify_pyi", None)):
                module.create_or_modify_pyi = lambda *args, **kwargs: None

        loader.exec_module = exec_module
        return spec


def import_gradio():
    """``import gradio`` without its import-time stub regeneration (see _NoStubRewrite)."""
    if "gradio" not in sys.modules and not any(isinstance(f, _NoStubRewrite) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoStubRewrite())
    import gradio

    return gradio
