"""A collection's files through the API: listed by the names removal takes, and a removal of
a collection or a file that is not there refused up front, creating nothing."""

from __future__ import annotations

import httpx

from rag.store import Store, list_collections, recorded_embedder
from tests.fakes.tiny_corpus import Doc, build_store
from tests.rag.server.conftest import Running


def test_a_collections_files_are_listed_with_their_chunks_a_page_at_a_time(api: Running):
    url = f"{api.url}/v1/collections/tiny-corpus/documents"
    listed = httpx.get(url).json()
    assert listed == {"collection": "tiny-corpus", "total": 4, "offset": 0, "limit": 100, "documents": [
        {"source": "api-guide.md", "chunks": 3, "pages": None},
        {"source": "cafeteria.md", "chunks": 1, "pages": None},
        {"source": "handbook.pdf", "chunks": 3, "pages": 3},
        {"source": "security.md", "chunks": 2, "pages": None},
    ]}
    page = httpx.get(url, params={"offset": 1, "limit": 2}).json()
    assert (page["total"], [d["source"] for d in page["documents"]]) == (4, ["cafeteria.md", "handbook.pdf"])
    too_many = httpx.get(url, params={"limit": 5000})
    assert too_many.status_code == 422 and [f["field"] for f in too_many.json()["fields"]] == ["query.limit"]


def test_an_empty_collection_lists_no_files_and_an_unknown_one_is_404_not_created(api: Running):
    settings = api.app.state.services.settings
    Store(settings, recorded_embedder(settings, "tiny-corpus") or "", "hollow")
    assert httpx.get(f"{api.url}/v1/collections/hollow/documents").json()["documents"] == []
    asked = httpx.post(f"{api.url}/v1/ask", json={"question": "what is here?", "collection": "hollow", "stream": False})
    assert asked.status_code == 404 and asked.json() == {  # it named the CLI, and said nothing was ever ingested
        "error": "empty_collection", "message": "Collection 'hollow' holds no documents (none ingested yet, or all "
                                                "removed): add some first (over HTTP: POST "
                                                "/v1/collections/hollow/documents)"}
    unknown = httpx.get(f"{api.url}/v1/collections/nope/documents")
    assert unknown.status_code == 404 and unknown.json()["error"] == "no_collection"  # was "empty_collection"
    assert "No collection 'nope'" in unknown.json()["message"]
    assert "nope" not in list_collections(settings)


def test_removing_from_an_unknown_collection_or_an_unknown_file_is_404_up_front(api: Running):
    """Both were a 202: the job then created an empty collection `nope` (listed from then on
    by GET /v1/collections), or failed on the file. Checked before any job is queued: this
    server has no queue, so a removal that passes the check meets its 503."""
    gone = httpx.delete(f"{api.url}/v1/collections/nope/documents/x.md")
    assert gone.status_code == 404 and set(gone.json()) == {"error", "message"}
    assert "No collection 'nope'" in gone.json()["message"]
    assert [c["name"] for c in httpx.get(f"{api.url}/v1/collections").json()] == ["tiny-corpus"]
    missing = httpx.delete(f"{api.url}/v1/collections/tiny-corpus/documents/nothere.md")
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_document"
    assert "holds no file 'nothere.md'" in missing.json()["message"]
    scraped = httpx.get(f"{api.url}/metrics").text  # the route as the API's docs write it, not "{source:path}"
    assert 'route="/v1/collections/{name}/documents/{source}",status="404"} 2.0' in scraped and ":path" not in scraped
    long = httpx.delete(f"{api.url}/v1/collections/tiny-corpus/documents/{'x' * 7_000}.md")
    assert long.status_code == 404 and len(long.content) < 400  # the name is cut, not repeated in full
    assert f"holds no file '{'x' * 80}'… (7,003 characters)" in long.json()["message"]
    assert httpx.delete(f"{api.url}/v1/collections/tiny-corpus/documents/handbook.pdf").status_code == 503


def test_a_files_pages_are_its_distinct_pages_with_text(api: Running, offline_provider):
    """The listing gave the highest page: 5 for a scan whose pages 1, 3 and 4 have no text, so
    nothing on them can be cited, where the UI's Documents tab said 2 pages for the same file."""
    settings = api.app.state.services.settings
    build_store(settings, offline_provider, "scans", docs=(
        Doc("scan.pdf", "The warranty covers two years from the date of purchase.", 2),
        Doc("scan.pdf", "Repairs under warranty are free of charge.", 2),
        Doc("scan.pdf", "Contact the service desk for a replacement.", 5),
    ))
    listed = httpx.get(f"{api.url}/v1/collections/scans/documents").json()["documents"]
    assert listed == [{"source": "scan.pdf", "chunks": 3, "pages": 2}]
