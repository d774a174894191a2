"""chromadb loaded inside `rag.runtime.loading_chromadb`: it works, and `overrides` is itself again.

Each test runs in a fresh interpreter, since the point is what happens on the first import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def run_fresh(code: str, tmp_path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_chromadb_imported_this_way_stores_and_finds(tmp_path: Path) -> None:
    out = run_fresh(
        f"""
        from rag.runtime import loading_chromadb
        with loading_chromadb() as chromadb:
            client = chromadb.PersistentClient(path={str(tmp_path / "chroma")!r})
        col = client.get_or_create_collection("col", embedding_function=None, metadata={{"hnsw:space": "cosine"}})
        col.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]], documents=["x", "y"])
        col.delete(ids=["b"])
        print(col.query(query_embeddings=[[0.0, 1.0]], n_results=5)["ids"][0], col.count())
        from chromadb.api.rust import RustBindingsAPI
        print(RustBindingsAPI._delete.__override__)
        """,
        tmp_path,
    )
    assert out.split("\n")[:2] == ["['a'] 1", "True"]


def test_overrides_checks_are_back_after_the_import(tmp_path: Path) -> None:
    """Code loaded later (ours, another library's) gets the real decorator, signature check
    and all: a mismatched override is refused as it would be without us."""
    out = run_fresh(
        """
        import overrides
        from overrides.overrides import override as real
        from rag.runtime import loading_chromadb
        with loading_chromadb():
            pass
        assert overrides.override is real and overrides.overrides is not None

        class Base:
            def f(self, x: int) -> int:
                return x

        try:
            class Child(Base):
                @overrides.override
                def f(self) -> int:
                    return 0
        except TypeError:
            print("refused")
        """,
        tmp_path,
    )
    assert out.strip() == "refused"


def test_the_embedded_clients_api_class_loads_unchecked_too(tmp_path: Path) -> None:
    """chromadb imports the client's API and telemetry classes only when the first client is
    made; the store makes it inside `loading_chromadb`, so opening it runs no signature check."""
    out = run_fresh(
        f"""
        from pathlib import Path
        import sys
        import overrides
        decorator = sys.modules["overrides.overrides"]  # the module, which the package's name shadows
        checks = []
        real = decorator.ensure_signature_is_compatible
        decorator.ensure_signature_is_compatible = lambda *a, **k: checks.append(a) or real(*a, **k)
        from rag.settings import Settings
        from rag.store import chroma_client
        chroma_client(Settings(data_dir=Path({str(tmp_path)!r}), api_key=None)).heartbeat()
        print(len(checks))
        """,
        tmp_path,
    )
    assert out.strip() == "0"


def test_httpx_cli_stays_out_of_the_import_but_importable(tmp_path: Path) -> None:
    """While chromadb loads, httpx falls back to its CLI stub (no rich, pygments or click
    loaded for it); the CLI module itself can still be imported afterwards."""
    out = run_fresh(
        """
        import sys
        from rag.runtime import loading_chromadb
        with loading_chromadb():
            pass
        print("httpx._main" in sys.modules)
        from httpx._main import main
        print(callable(main))
        """,
        tmp_path,
    )
    assert out.split() == ["False", "True"]


def test_otlp_exporter_stays_out_until_chroma_tracing_asks_for_it(tmp_path: Path) -> None:
    """While chromadb loads, its OTLP exporter's module (and gRPC under it) is a stand-in;
    chromadb's tracing setup still gets the real exporter when it calls it, and the module
    imported afterwards is the real one."""
    out = run_fresh(
        f"""
        import sys
        from pathlib import Path
        OTLP_EXPORTER = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
        from rag.settings import Settings
        from rag.store import chroma_client
        chroma_client(Settings(data_dir=Path({str(tmp_path)!r}), api_key=None)).heartbeat()
        print(OTLP_EXPORTER in sys.modules, "grpc" in sys.modules)
        from chromadb.telemetry import opentelemetry as chroma_tracing
        exporter = chroma_tracing.OTLPSpanExporter(endpoint="http://127.0.0.1:4317", insecure=True)
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        print(type(exporter) is OTLPSpanExporter, sys.modules[OTLP_EXPORTER].__file__ is not None)
        exporter.shutdown()
        """,
        tmp_path,
    )
    assert out.split() == ["False", "False", "True", "True"]
