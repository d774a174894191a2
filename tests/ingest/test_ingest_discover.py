from ingest.discover import Filters, Skipped, SourceFile, discover
from rag.filetypes import printable, unprintable


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


def test_a_folders_ignore_file_adds_its_globs_to_the_excluded_ones_and_is_not_listed(corpus):
    """The sample corpus holds its test sets beside its documents: each first run listed
    them as skipped, of an unknown type."""
    corpus.path(".gemragignore").write_text("# test data, not documents\nsub/*\n\n  *.svg  \n")
    assert _sources(corpus.root) == ["guide.md", "notes.txt", "runbook.html"]
    assert _sources(corpus.root, Filters(exclude=["notes.txt"])) == ["guide.md", "runbook.html"]
    assert _skipped(corpus.root) == {}  # neither the ignored files nor the ignore file itself


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
    assert "sub/inside.md" not in sources  # a link to a file read anyway is an alias
    assert _skipped(corpus.root) == {
        ".git/": "hidden folder (add --include-hidden to take it)",
        "file-out.md": f"symlink to {outside / 'secret.md'}, outside the folder",
        "link-out/": f"symlink to {outside}, outside the folder",
        "loop/": "the same folder as ./, already read",
        "sub/inside.md": "the same file as guide.md, already read",
    }


def test_a_link_to_a_file_or_folder_inside_the_root_is_skipped_and_the_real_name_kept(tmp_path):
    root = tmp_path / "sym"
    (root / "real").mkdir(parents=True)
    (root / "real" / "doc.md").write_text("# Real")
    (root / "alias").symlink_to("real")  # sorts before the folder it names
    (root / "notes.md").write_text("# Notes")
    (root / "a-notes.md").symlink_to("notes.md")
    assert _sources(root) == ["notes.md", "real/doc.md"]
    assert _skipped(root) == {
        "alias/": "the same folder as real/, already read",
        "a-notes.md": "the same file as notes.md, already read",
    }
    assert all(f.alias for f in discover(root, Filters()) if isinstance(f, Skipped))


def test_a_link_is_followed_to_what_nothing_else_reaches(tmp_path):
    root = tmp_path / "docs"
    (root / ".drafts").mkdir(parents=True)
    (root / ".drafts" / "plan.md").write_text("# Plan")
    (root / "plan.md").symlink_to(".drafts/plan.md")
    (root / "drafts").symlink_to(".drafts")
    (root / "drafts-again").symlink_to(".drafts")
    assert _sources(root) == ["drafts/plan.md"]  # "drafts" sorts first; the file link is then its alias
    assert _skipped(root) == {
        ".drafts/": "hidden folder (add --include-hidden to take it)",
        "drafts-again/": "the same folder as drafts/, already read",
        "plan.md": "the same file as drafts/plan.md, already read",
    }


def test_control_characters_in_a_name_are_written_out_and_read_back():
    name = "bad\nname\t\x01caf\udce9.txt"
    assert printable(name) == "bad\\nname\\t\\x01caf\\xe9.txt"
    assert unprintable(printable(name)) == name


def test_a_c1_control_in_a_name_is_written_out_apart_from_a_byte_of_the_same_value():
    """U+009B is an escape to some terminals; a name is printed in every ingest report."""
    name = "a\x9b31mb\udc9b.txt"  # the character U+009B, then the byte 0x9b that is not UTF-8
    assert printable(name) == "a\\u009b31mb\\x9b.txt"
    assert unprintable(printable(name)) == name


def test_include_hidden_takes_hidden_entries_but_never_the_data_dir(corpus, tmp_path):
    (corpus.root / ".notes").mkdir()
    (corpus.root / ".notes" / "a.md").write_text("# A")
    (corpus.root / ".gemrag").mkdir()
    (corpus.root / ".gemrag" / "cache.txt").write_text("state")
    found = list(discover(corpus.root, Filters(include_hidden=True), corpus.root / ".gemrag"))
    assert ".notes/a.md" in [f.source for f in found if isinstance(f, SourceFile)]
    assert Skipped(".gemrag/", "gemrag's own data folder") in found


def test_a_symlink_loop_is_skipped_with_the_reason_and_the_walk_goes_on(tmp_path):
    """A link to itself, or two links to each other: os.walk lists them as files, and
    resolving one stopped the whole run with "unexpected RuntimeError: Symlink loop"."""
    (tmp_path / "self").symlink_to("self")
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    (tmp_path / "note.md").write_text("# Note\n")
    assert _sources(tmp_path) == ["note.md"]
    assert _skipped(tmp_path) == {
        "a": "symlink loop (to b, which leads back to itself)",
        "b": "symlink loop (to a, which leads back to itself)",
        "self": "symlink loop (to self, which leads back to itself)",
    }
