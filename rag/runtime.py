"""Process-wide environment hygiene: nothing in the app may try to reach the internet
on its own (Gradio's version check, Hugging Face telemetry, Chroma telemetry); and how
chromadb is loaded."""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


_chromadb_loading = threading.Lock()


@contextmanager
def loading_chromadb() -> Iterator[ModuleType]:
    """chromadb, and whatever it loads inside the block (the first client loads its API
    class and its telemetry class there), imported without two costs that change nothing
    once it is loaded:

    - The `overrides` package's import-time signature checks. chromadb decorates hundreds of
      methods with `overrides.override`, which, as each class is created, disassembles the
      caller's frame to find the base classes and compares every signature with its base
      method's: a third of importing chromadb (0.15-0.3 s here), and another 0.1 s when the
      first embedded client loads its API class, paid by every fresh process that opens the
      store, most of what removing a file costs. The checks guard chromadb's own
      development: inside the block the decorators only mark the methods as overrides (all
      that `EnforceOverrides` looks for), as they do after a check passes, and they are
      restored afterwards for everyone else.
    - httpx's command-line client. chromadb imports httpx, whose `__init__` loads its CLI
      (rich, pygments, click) when they are installed (gradio brings them) and falls back to
      a stub when they are not: the CLI is made to look absent inside the block, unless
      httpx is in already. With both, and the client made inside the block, removing a
      250-chunk file of 5,000 took 0.99 s instead of 1.12 s (medians of 8 alternating fresh
      processes; in a second such run 1.13 s instead of 1.22 s), on a slower machine than
      the figure above.
    - The OpenTelemetry OTLP exporter, and gRPC under it. chromadb's tracing module imports
      it at its top and calls it only when Chroma's own tracing is configured
      (`chroma_otel_granularity`, off by default). Inside the block its module is a stand-in
      (`_LazyOtlpExporter`) whose exporter imports the real one when first called; the
      stand-in leaves `sys.modules` with the block. About 150 modules and 0.05 s fewer."""
    with _chromadb_loading:
        import overrides

        checked = overrides.override, overrides.overrides
        overrides.override = overrides.overrides = _mark_override
        no_cli = "httpx" not in sys.modules and "httpx._main" not in sys.modules
        if no_cli:
            sys.modules["httpx._main"] = None  # type: ignore[assignment]  # what makes its import fail
        exporter = _LazyOtlpExporter() if OTLP_EXPORTER not in sys.modules else None
        if exporter is not None:
            sys.modules[OTLP_EXPORTER] = exporter
        try:
            import chromadb

            yield chromadb
        finally:
            overrides.override, overrides.overrides = checked
            if no_cli:
                del sys.modules["httpx._main"]
            if exporter is not None and sys.modules.get(OTLP_EXPORTER) is exporter:
                del sys.modules[OTLP_EXPORTER]


OTLP_EXPORTER = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"


class _LazyOtlpExporter(ModuleType):
    """Stands in for the OTLP exporter's module while chromadb imports: its
    `OTLPSpanExporter` builds the real exporter, importing it then."""

    def __init__(self) -> None:
        super().__init__(OTLP_EXPORTER)

    def OTLPSpanExporter(self, *args: Any, **kwargs: Any) -> Any:  # the name chromadb imports
        if sys.modules.get(OTLP_EXPORTER) is self:  # called inside the block: the real one goes in
            del sys.modules[OTLP_EXPORTER]
        real = importlib.import_module(OTLP_EXPORTER)
        return real.OTLPSpanExporter(*args, **kwargs)


def _mark_override(method: Any = None, **_checks: bool) -> Any:
    """`overrides.override` minus its checks: bare (`@override`) or called (`@override(...)`)."""
    if method is None:
        return _mark_override
    method.__override__ = True
    return method
