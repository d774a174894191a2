"""Process-wide environment hygiene: nothing in the app may try to reach the internet
on its own (Gradio's version check, Hugging Face telemetry, Chroma telemetry)."""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


def quiet_network() -> None:
    """Must run before gradio, huggingface_hub or chromadb are imported."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


quiet_network()
