"""Dependencies point one way: the core (`rag/`) imports neither `ingest/` nor `ui/` (its
evaluation may ingest a test corpus), and `ingest/` never imports `ui/`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported(path: Path) -> set[str]:
    """The top-level packages a module imports, at its top or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(("package", "exempt", "forbidden"), [
    ("rag", ("eval",), {"ingest", "ui"}),
    ("ingest", (), {"ui"}),
])
def test_no_module_imports_a_layer_above_its_own(package: str, exempt: tuple[str, ...], forbidden: set[str]) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported(path) & forbidden)
        for path in (ROOT / package).rglob("*.py")
        if path.relative_to(ROOT / package).parts[0] not in exempt and imported(path) & forbidden
    }
    assert offenders == {}
