"""The optional extras (pyproject.toml) and the one check that names the missing one.

The core (``pip install faq-assistant``) answers from an existing ONNX export with onnxruntime
and tokenizers. The web app, the evaluation harness and the ONNX export itself need more;
each edge asks :func:`require_extra` before importing them, so a missing extra is one clear
line (``error: the web app needs the [web] extra: pip install 'faq-assistant[web]'``), never
an ImportError traceback from deep inside.
"""

from __future__ import annotations

import importlib.util

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
