"""Google's File Search as a second backend: a collection's files uploaded to a File Search
store, kept in step by content hash, and searched by the model itself when it answers.

File Search does not deduplicate: the same file uploaded three times is three documents,
each chunked, indexed and billed again. So every document we upload carries the file's
source path and SHA-256 (the hash ingest's manifest records) as custom metadata, and the
store's own document list is the record of what was uploaded. A sync lists it and uploads
only files whose hash it does not hold, replaces a changed file (the new version is indexed
before the old one is deleted, so the store never lacks it), deletes documents of files gone
from the collection and extra copies left by an interrupted run. A record kept here instead
could not survive a crash between an upload and writing it down; the store's list can.

Stores belong to the Google project of the main key (`GEMINI_API_KEY`), so File Search uses
that key alone; indexing is billed at the embedding model's price and charged to the ledger
(kind "index") from the tokens ingest counted for each file.
"""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from google import genai
from google.genai import types

from rag.answer import RerankMode
from rag.costs import Call, Ledger, price_usd
from rag.errors import ConfigError, ProviderError
from rag.rerank import NoRerank, Reranker
from rag.retrieval import Query, Retrieved
from rag.retry import Retrier
from rag.settings import Settings
from rag.store import Store
from rag.types import FileSearchTool, Usage

T = TypeVar("T")
STORE_PREFIX = "gemrag-"  # a store's display name: the prefix and the collection's name
SOURCE_KEY, HASH_KEY = "source", "sha256"  # custom metadata on every document we upload
PAGE_SIZE = 20  # the most documents.list returns per page
# Types File Search indexes that `mimetypes` may not know on every system.
MIME_TYPES = {".md": "text/markdown", ".markdown": "text/markdown", ".txt": "text/plain", ".rst": "text/plain"}
SERVICE = "file-search"  # how retries and logs name these calls
ProgressCallback = Callable[[str, int, int], None]  # (file being uploaded, done, total)


@dataclass(frozen=True)
class LocalFile:
    """A file of the collection as ingest recorded it."""

    source: str  # path relative to the ingest root: the document's display name, and what citations show
    path: Path
    content_hash: str
    tokens: int  # what indexing it is charged, at the embedding price


@dataclass
class Synced:
    """What one sync did to the store."""

    store: str
    uploaded: list[str] = field(default_factory=list)  # new files
    replaced: list[str] = field(default_factory=list)  # changed files: new version in, old out
    deleted: list[str] = field(default_factory=list)  # files gone from the collection, and extra copies
    unchanged: int = 0
    tokens: int = 0  # indexed by this sync
    cost_usd: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.uploaded or self.replaced or self.deleted)

    def summary(self) -> str:
        return (
            f"File Search store {self.store}: {len(self.uploaded)} uploaded, {len(self.replaced)} replaced, "
            f"{len(self.deleted)} deleted, {self.unchanged} unchanged; indexed {self.tokens:,} tokens, "
            f"${self.cost_usd:.4f}"
        )


@dataclass(frozen=True)
class _Remote:
    name: str
    source: str
    content_hash: str
    failed: bool


def store_display_name(collection: str) -> str:
    return f"{STORE_PREFIX}{collection}"


def mime_type(path: Path) -> str:
    return MIME_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "text/plain"


class FileSearchStores:
    """File Search stores, one per collection, through the main key's project."""

    def __init__(self, settings: Settings, *, retrier: Retrier | None = None) -> None:
        if not settings.online or settings.api_key is None:
            raise ConfigError(
                'backend "file-search" needs a Gemini API key (File Search is Google\'s service): '
                'set GEMINI_API_KEY, or use backend "gemrag".'
            )
        self.settings = settings
        self.retrier = retrier or Retrier(settings)
        options = types.HttpOptions(base_url=settings.base_url, timeout=int(settings.request_timeout_s * 1000))
        self.client = genai.Client(api_key=settings.api_key.get_secret_value(), http_options=options)
        self._names: dict[str, str] = {}

    # --- stores ---
    def find(self, collection: str) -> str | None:
        """The store holding `collection`, if it was ever uploaded (remembered once found)."""
        if collection not in self._names:
            wanted = store_display_name(collection)
            stores = self._call(lambda: list(self.client.file_search_stores.list(config={"page_size": PAGE_SIZE})))
            found = next((s.name for s in stores if s.display_name == wanted and s.name), None)
            if found is None:
                return None
            self._names[collection] = found
        return self._names[collection]

    def tool(self, collection: str, top_k: int | None = None, sources: Sequence[str] = ()) -> FileSearchTool:
        """The File Search tool over `collection`'s store, restricted to `sources` if given."""
        name = self.find(collection)
        if name is None:
            raise ConfigError(
                f"Collection {collection!r} has not been uploaded to File Search: run "
                f"python -m ingest DIR --collection {collection} --backend file-search"
            )
        quoted = " OR ".join(f'{SOURCE_KEY} = "{s}"' for s in sources)
        return FileSearchTool((name,), top_k=top_k, metadata_filter=quoted or None)

    def _create(self, collection: str) -> str:
        config = types.CreateFileSearchStoreConfig(display_name=store_display_name(collection))
        store = self._call(lambda: self.client.file_search_stores.create(config=config))
        if not store.name:
            raise ProviderError("File Search created a store without a name.", model=SERVICE)
        self._names[collection] = store.name
        return store.name

    # --- keeping a store in step with a collection ---
    def sync(
        self,
        collection: str,
        files: Sequence[LocalFile],
        ledger: Ledger,
        session_id: str,
        on_progress: ProgressCallback | None = None,
    ) -> Synced:
        """Upload what the store lacks by hash, replace changed files, delete the rest; each
        upload's indexing is charged to `session_id` once the store has accepted it."""
        store = self.find(collection) or self._create(collection)
        synced = Synced(store)
        remote: dict[str, list[_Remote]] = {}
        for document in self._documents(store):
            remote.setdefault(document.source, []).append(document)
        todo = []
        for file in files:
            held = remote.pop(file.source, [])
            keep = next((d for d in held if d.content_hash == file.content_hash and not d.failed), None)
            if keep is not None:
                synced.unchanged += 1
                synced.deleted += self._delete([d for d in held if d is not keep])
            else:
                todo.append((file, held))
        for done, (file, held) in enumerate(todo):
            if on_progress:
                on_progress(file.source, done, len(todo))
            self._upload(store, file, ledger, session_id, synced)
            (synced.replaced if held else synced.uploaded).append(file.source)
            self._delete(held)
        for held in remote.values():
            synced.deleted += self._delete(held)
        if on_progress and todo:
            on_progress("", len(todo), len(todo))
        return synced

    def _documents(self, store: str) -> list[_Remote]:
        config = types.ListDocumentsConfig(page_size=PAGE_SIZE)
        documents = self._call(lambda: list(self.client.file_search_stores.documents.list(parent=store, config=config)))
        out = []
        for document in documents:
            meta = {m.key: m.string_value or "" for m in document.custom_metadata or []}
            failed = document.state == types.DocumentState.STATE_FAILED
            out.append(_Remote(document.name or "", meta.get(SOURCE_KEY, document.display_name or ""),
                               meta.get(HASH_KEY, ""), failed))
        return out

    def _upload(self, store: str, file: LocalFile, ledger: Ledger, session_id: str, synced: Synced) -> None:
        """One file in, waited for until indexed. The indexing cost is held before the upload
        and settled once the store accepted the bytes (it bills them from then on)."""
        model = self.settings.embedding_model
        usage = Usage(prompt_tokens=file.tokens)
        hold = ledger.reserve(session_id, price_usd(self.settings, model, usage))
        calls: list[Call] = []
        try:
            config = types.UploadToFileSearchStoreConfig(
                display_name=file.source,
                mime_type=mime_type(file.path),
                custom_metadata=[
                    types.CustomMetadata(key=SOURCE_KEY, string_value=file.source),
                    types.CustomMetadata(key=HASH_KEY, string_value=file.content_hash),
                ],
            )
            operation = self._call(lambda: self.client.file_search_stores.upload_to_file_search_store(
                file_search_store_name=store, file=str(file.path), config=config))
            calls.append(Call(model, usage, "index"))
        finally:
            priced = ledger.settle(hold, calls)
        synced.tokens += file.tokens
        synced.cost_usd += sum(p.cost_usd for p in priced)
        self._wait(operation, file.source)

    def _wait(self, operation: types.UploadToFileSearchStoreOperation, source: str) -> None:
        deadline = time.monotonic() + self.settings.file_search_timeout_s
        while not operation.done:
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"File Search did not finish indexing {source} within {self.settings.file_search_timeout_s:g} s "
                    "(file_search_timeout_s); run the same command again to check on it.",
                    model=SERVICE,
                )
            time.sleep(self.settings.file_search_poll_s)
            operation = self._poll(operation)
        if operation.error:
            raise ProviderError(f"File Search could not index {source}: {operation.error}", model=SERVICE)

    def _poll(
        self, operation: types.UploadToFileSearchStoreOperation
    ) -> types.UploadToFileSearchStoreOperation:
        return self._call(lambda: self.client.operations.get(operation))

    def _delete(self, documents: Sequence[_Remote]) -> list[str]:
        """Deletes the documents with their chunks; returns their sources."""
        for document in documents:
            self._delete_one(document.name)
        return [d.source for d in documents]

    def _delete_one(self, name: str) -> None:
        config = types.DeleteDocumentConfig(force=True)
        self._call(lambda: self.client.file_search_stores.documents.delete(name=name, config=config))

    def _call(self, send: Callable[[], T]) -> T:
        return self.retrier.call(SERVICE, lambda _left: send())


class FileSearchRetriever:
    """Retrieval for backend "file-search": nothing is searched here. The answer call carries
    the File Search tool over the collection's store, the model searches it, and the passages
    come back with the answer (rag.providers.grounding). File Search has no second ranking
    stage and no retrieval-only call."""

    def __init__(self, stores: FileSearchStores) -> None:
        self.stores = stores

    def search(self, store: Store, query: Query) -> Retrieved:
        return Retrieved([], Usage(), file_search=self.stores.tool(store.name, query.top_k, query.sources))

    def reranker(self, mode: RerankMode) -> Reranker:
        return NoRerank()

    def misspelt_in(self, store: Store, term: str, sources: Sequence[str]) -> bool:
        """False: File Search keeps no keyword index here, and its model reads the documents."""
        return False

    def unheard_of(self, store: Store, words: Iterable[str]) -> frozenset[str]:
        """None: as `misspelt_in`, nothing here knows the documents' words."""
        return frozenset()
