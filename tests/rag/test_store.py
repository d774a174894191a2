import uuid

import pytest

from rag.errors import ConfigError, EmbedderMismatch
from rag.store import (
    CollectionMeta,
    Store,
    check_collection_name,
    chroma_address,
    chroma_client,
    chroma_endpoint,
    collection_meta,
    collection_name,
    drop_collection,
)
from rag.types import Chunk


def _chunk(i: int, text: str, page: int | None = None) -> Chunk:
    return Chunk(id=f"c{i}", text=text, source="doc.pdf", index=i, start=0, end=len(text),
                 content_hash=f"h{i}", page=page, heading="A > B")


def test_upsert_query_and_roundtrip_metadata(settings):
    store = Store(settings, "test:emb:2")
    store.upsert([_chunk(0, "alpha", page=2), _chunk(1, "beta")], [[1.0, 0.0], [0.0, 1.0]])
    hits = store.query([0.9, 0.1], n=2)
    assert [h.chunk.id for h in hits] == ["c0", "c1"]
    assert hits[0].chunk.page == 2 and hits[0].chunk.heading == "A > B"
    assert hits[1].chunk.page is None
    assert store.count() == 2 and store.ids() == {"c0", "c1"}
    store.delete(["c0"])
    assert [c.id for c in store.chunks()] == ["c1"]


def test_sources_lists_every_file_across_pages(settings):
    store = Store(settings, "test:emb:2")
    chunks = [Chunk(id=f"c{i}", text="x", source=f"f{i % 3}.md", index=i, start=0, end=1, content_hash=f"h{i}")
              for i in range(7)]
    store.upsert(chunks, [[1.0, 0.0]] * 7)
    assert store.sources(page_size=2) == {"f0.md", "f1.md", "f2.md"}


def test_version_bumps_and_persists(settings):
    store = Store(settings, "test:emb:2")
    assert store.version == 0
    store.bump_version()
    assert Store(settings, "test:emb:2").version == 1


def test_a_collections_metadata_is_read_the_same_way_with_or_without_it(settings):
    store = Store(settings, "test:emb:2")
    store.bump_version()
    assert collection_meta(store.collection) == CollectionMeta(embedder="test:emb:2", version=1)
    bare = chroma_client(settings).get_or_create_collection("bare", embedding_function=None)
    assert collection_meta(bare) == CollectionMeta(embedder=None, version=0)


def test_mixing_embedders_is_refused(settings):
    Store(settings, "test:emb:2")
    with pytest.raises(EmbedderMismatch, match="was built with test:emb:2"):
        Store(settings, "other:emb:3")


@pytest.mark.parametrize("text", ["My Docs (2024)", "...", "日本語", "x" * 506 + "-y", "a" * 600])
def test_a_collection_name_made_from_any_text_is_valid(text):
    name = collection_name("eval", text)
    assert check_collection_name(name) == name and name.startswith("eval-")


@pytest.mark.parametrize("name", ["x", "-notes", "notes.", "my notes", "../notes", "a" * 201, "notes\n"])
def test_a_bad_collection_name_is_refused_with_the_rule(name):
    with pytest.raises(ConfigError, match="3-200 characters"):
        check_collection_name(name)


def test_a_pinned_view_keeps_its_version_while_the_collection_moves_on(settings):
    store = Store(settings, "test:emb:2")
    store.upsert([_chunk(0, "alpha")], [[1.0, 0.0]])
    store.bump_version()
    view = store.pinned()
    assert view.version == 1 and view.count() == 1
    store.upsert([_chunk(1, "beta")], [[0.0, 1.0]])
    store.bump_version()
    assert view.version == 1 and store.version == 2
    assert store.pinned().version == 2 and store.pinned().count() == 2
    # A write through a stale view still moves the version above the current one, never back.
    assert view.bump_version() == 3 and store.version == 3


def _assert_mentions_a_term_as_a_word_in_the_given_files_only(store: Store) -> None:
    texts = {"gmpl.pdf": "Modeling Language GNU MathProg. Run it with --check first.",
             "glpk.pdf": "Tier 3 users get more. Solving on GPUs is not supported.",
             "other.md": "Java bindings exist elsewhere."}
    chunks = [Chunk(id=f"c{i}", text=t, source=s, index=0, start=0, end=len(t), content_hash=f"h{i}")
              for i, (s, t) in enumerate(texts.items())]
    store.upsert(chunks, [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    both = ["gmpl.pdf", "glpk.pdf"]
    assert store.mentions("mathprog", both) and store.mentions("MATHPROG", ["gmpl.pdf"])  # case aside
    assert store.mentions("gpu", both) and store.mentions("tier 3", both)  # a plural; a phrase
    assert store.mentions("--check", both) and not store.mentions("--checkpoint", both)  # a code, whole
    assert not store.mentions("math", both)  # a word, not a part of one
    assert store.mentions("math", both, word_start=True) and store.mentions("solv", both, word_start=True)
    assert not store.mentions("solvings", both, word_start=True)  # the start as given: no final "s" dropped
    assert not store.mentions("thprog", both, word_start=True)  # the start of a word, not its middle
    assert not store.mentions("java", both) and store.mentions("java", ["other.md"])  # those files only
    assert not store.mentions("mathprog", [])
    assert store.mentions("java", None) and not store.mentions("python", None)  # None: the whole collection
    assert store.missing_sources(["glpk.pdf", "nope.md", "other.md", "nope.md"]) == ["nope.md"]


def test_mentions_finds_a_term_as_a_word_in_the_given_files_only(settings):
    _assert_mentions_a_term_as_a_word_in_the_given_files_only(Store(settings, "test:emb:2"))


@pytest.mark.chroma_server
def test_mentions_on_a_chroma_server(settings, chroma_server_url):
    """The `$regex` document filter `mentions` sends is answered by a Chroma server as well."""
    settings = settings.model_copy(update={"chroma_url": chroma_server_url})
    name = f"mentions-{uuid.uuid4().hex[:8]}"
    try:
        _assert_mentions_a_term_as_a_word_in_the_given_files_only(Store(settings, "test:emb:2", name))
    finally:
        drop_collection(settings, name)


@pytest.mark.slow
def test_a_chunk_another_process_removed_is_not_returned_by_a_store_opened_before(settings, offline_provider, tmp_path):
    """An embedded store's vector index is loaded once per process: after `python -m ingest
    --prune` removed a file in another process, a query here still found its chunk, with no
    text or metadata, and reading it raised TypeError (the API answered 500 to every question
    near it until restarted)."""
    import os
    import subprocess
    import sys

    from rag.stores import Stores

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "greenhouse.md").write_text("# Greenhouse\n\nThe greenhouse thermostat is set to 23 degrees.\n")
    (docs / "kayaks.md").write_text("# Kayaks\n\nThe rack by the boathouse holds six kayaks.\n")
    env = {**os.environ, "GEMRAG_DATA_DIR": str(settings.data_dir)}
    subprocess.run([sys.executable, "-m", "ingest", str(docs), "--quiet"], env=env, check=True, timeout=120)
    store = Stores(settings).get("corpus")
    question = offline_provider.embed_query("What is the greenhouse thermostat set to?").vectors[0]
    [gone] = [h.chunk.id for h in store.query(question, 5) if h.chunk.source == "greenhouse.md"]

    (docs / "greenhouse.md").unlink()
    subprocess.run([sys.executable, "-m", "ingest", str(docs), "--prune", "--quiet"], env=env, check=True, timeout=120)

    assert [h.chunk.source for h in store.query(question, 5)] == ["kayaks.md"]
    assert store.get([gone]) == []


@pytest.mark.parametrize(("url", "address"), [
    ("https://chroma.example/base", ("chroma.example", 443)),
    ("http://chroma.example", ("chroma.example", 8000)),
    ("https://user:pw@chroma.example:8443", ("chroma.example", 8443)),
    ("http://[::1]:9000", ("::1", 9000)),
])
def test_a_chroma_url_without_a_port_means_the_schemes_own_for_https_and_chromas_for_http(url, address):
    assert chroma_address(url) == address
    assert f":{address[1]}" in chroma_endpoint(url)
