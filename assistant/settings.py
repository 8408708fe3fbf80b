"""Settings the assistant resolves once, at its edges (the CLI, the server, child processes)."""

from __future__ import annotations


def offline_env() -> dict[str, str]:
    """The environment that keeps the model libraries offline and quiet.

    Hugging Face never reaches the network (every model is packaged or cached locally), no
    progress bars or analytics, tokenizers without their own thread pool (we fork workers).
    The CLI sets these as defaults of its own process; a spawner puts them in a child's.
    """
    return {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "TOKENIZERS_PARALLELISM": "false",
        "TRANSFORMERS_VERBOSITY": "error",
    }
