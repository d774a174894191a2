"""The ingest manifest's lookups that other layers ask of it."""

from __future__ import annotations

import pytest

from ingest.manifest import FileRecord, Manifest


def test_holds_content_finds_a_file_of_this_collection_by_its_hash_prefix(tmp_path):
    """The source viewer serves a preview only of a file the collection holds now, asked on
    every image request: one indexed lookup, not every record read and decoded."""
    path = tmp_path / "manifest.sqlite"
    docs, other = Manifest(path, "docs"), Manifest(path, "other")
    try:
        docs.commit([FileRecord("a.pdf", "/r", "/r/a.pdf", "ab12cd34" * 8, ("a.pdf#0",), 10)])
        assert docs.holds_content("ab12cd34ab12")
        assert not docs.holds_content("ab12cd35")
        assert not other.holds_content("ab12cd34ab12")  # another collection's file is not this one's
    finally:
        docs.close()
        other.close()


def test_a_damaged_manifest_is_named_with_what_to_do(tmp_path):
    """Random bytes over the manifest's start ended every ingest, --rebuild too, with
    "unexpected DatabaseError: file is not a database" (exit 3), naming no file."""
    import os

    from rag.errors import ConfigError

    path = tmp_path / "manifest.sqlite3"
    Manifest(path, "docs").close()
    with path.open("r+b") as f:
        f.write(os.urandom(100))
    with pytest.raises(ConfigError, match=r"cannot read the ingest manifest .*manifest\.sqlite3.*move it aside"):
        Manifest(path, "docs")
