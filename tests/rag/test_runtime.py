"""chromadb loaded by `rag.runtime.import_chromadb`: it works, and `overrides` is itself again.

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
        from rag.runtime import import_chromadb
        chromadb = import_chromadb()
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
        from rag.runtime import import_chromadb
        import_chromadb()
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
