from ingest.discover import Filters, Skipped, SourceFile, discover


def _sources(root, filters=None):
    return [f.source for f in discover(root, filters or Filters()) if isinstance(f, SourceFile)]


def _skipped(root, filters=None):
    return {f.source: f.reason for f in discover(root, filters or Filters()) if isinstance(f, Skipped)}


def test_sources_are_relative_to_the_root_with_forward_slashes(corpus):
    assert _sources(corpus.root) == ["diagram.svg", "guide.md", "notes.txt", "runbook.html", "sub/limits.pdf"]
    assert next(f.kind for f in discover(corpus.root, Filters()) if isinstance(f, SourceFile)) is None


def test_a_single_file_is_stored_under_its_name(corpus):
    assert _sources(corpus.path("sub/limits.pdf")) == ["limits.pdf"]


def test_include_and_exclude_globs_match_the_stored_path(corpus):
    assert _sources(corpus.root, Filters(include=["*.md", "*.pdf"])) == ["guide.md", "sub/limits.pdf"]
    assert _sources(corpus.root, Filters(exclude=["sub/*", "*.svg"])) == ["guide.md", "notes.txt", "runbook.html"]


def test_hidden_entries_and_symlinks_leaving_the_root_are_not_followed(corpus, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# not yours")
    (corpus.root / "link-out").symlink_to(outside)
    (corpus.root / "file-out.md").symlink_to(outside / "secret.md")
    (corpus.root / "loop").symlink_to(corpus.root)
    (corpus.root / ".git").mkdir()
    (corpus.root / ".git" / "HEAD.txt").write_text("ref")
    (corpus.root / "sub" / "inside.md").symlink_to(corpus.path("guide.md"))
    sources = _sources(corpus.root)
    assert not any("secret" in s or "out" in s or ".git" in s for s in sources)
    assert not any(s.startswith("loop/") for s in sources)
    assert "sub/inside.md" in sources  # a link that stays inside the root is an ordinary file
    assert _skipped(corpus.root) == {
        ".git/": "hidden folder (add --include-hidden to take it)",
        "file-out.md": f"symlink to {outside / 'secret.md'}, outside the folder",
        "link-out/": f"symlink to {outside}, outside the folder",
        "loop/": f"the same folder as {corpus.root}, already read",
    }


def test_include_hidden_takes_hidden_entries_but_never_the_data_dir(corpus, tmp_path):
    (corpus.root / ".notes").mkdir()
    (corpus.root / ".notes" / "a.md").write_text("# A")
    (corpus.root / ".gemrag").mkdir()
    (corpus.root / ".gemrag" / "cache.txt").write_text("state")
    found = list(discover(corpus.root, Filters(include_hidden=True), corpus.root / ".gemrag"))
    assert ".notes/a.md" in [f.source for f in found if isinstance(f, SourceFile)]
    assert Skipped(".gemrag/", "gemrag's own data folder") in found
