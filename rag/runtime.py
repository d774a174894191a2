"""Process-wide environment hygiene: nothing in the app may try to reach the internet
on its own (Gradio's version check, Hugging Face telemetry, Chroma telemetry); and how
chromadb is loaded."""

from __future__ import annotations

import os
import sys
import threading
from types import ModuleType
from typing import Any

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


_chromadb_import = threading.Lock()


def import_chromadb() -> ModuleType:
    """chromadb, imported without the `overrides` package's import-time signature checks.

    chromadb decorates about 160 methods with `overrides.override`, which, as each class is
    created, disassembles the caller's frame to find the base classes and compares every
    signature with its base method's. That is a third of importing chromadb (0.15-0.3 s
    here), paid by every fresh process that opens the store, and most of what removing a
    file from a collection costs. The checks guard chromadb's own development and change
    nothing once it loads: while it imports, the decorators only mark the methods as
    overrides (all that `EnforceOverrides` looks for), as they do after a check passes, and
    they are restored afterwards for everyone else."""
    with _chromadb_import:
        if "chromadb" not in sys.modules:
            import overrides

            checked = overrides.override, overrides.overrides
            overrides.override = overrides.overrides = _mark_override
            try:
                import chromadb
            finally:
                overrides.override, overrides.overrides = checked
    import chromadb

    return chromadb


def _mark_override(method: Any = None, **_checks: bool) -> Any:
    """`overrides.override` minus its checks: bare (`@override`) or called (`@override(...)`)."""
    if method is None:
        return _mark_override
    method.__override__ = True
    return method
