"""The File Search half of the fake Gemini server: stores, documents, the resumable upload,
its long-running operation, and answers grounded in what was uploaded.

It speaks the REST shapes google-genai sends (`file_search_stores.create/list/get/delete`,
`upload_to_file_search_store`, `operations.get`, `file_search_stores.documents.list/delete`,
and `generateContent` with `tools: [{fileSearch: {fileSearchStoreNames}}]`):

- an upload starts with `POST /upload/v1/{store}:uploadToFileSearchStore` (v1beta in newer SDKs) (headers
  `X-Goog-Upload-Protocol: resumable`, `X-Goog-Upload-Command: start`), is answered with an
  `x-goog-upload-url`, and the bytes go there (`upload, finalize`); the finalize answers
  with an operation that is done after `operation_polls` more GETs, as indexing takes time;
- like the real service it never deduplicates: the same file uploaded twice is two documents;
- a grounded answer is the best-matching sentence of the best-matching chunk of the stores
  searched (word overlap, deterministic), with `groundingMetadata`: the chunks found (title = the
  document's display name, text, `pageNumber` for a PDF page) and one support pointing the
  sentence's byte span at the first chunk; nothing matching: "The documents do not say."
  with no chunks. The chunks found are billed as `toolUsePromptTokenCount`.
"""

from __future__ import annotations

import io
import itertools
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from pypdf import PdfReader

from rag.refusal import NOT_IN_DOCUMENTS

CHUNK_WORDS = 60  # words per chunk the fake indexes (the real default is about 200 tokens)
TOP_CHUNKS = 3  # chunks a search returns into the answer's context
_WORD = re.compile(r"[a-z0-9]+")
_STORE = r"fileSearchStores/[^/:]+"
STORE_PATH = re.compile(rf"^/(?:v1|v1beta)/({_STORE})$")
STORES_PATH = re.compile(r"^/(?:v1|v1beta)/fileSearchStores/?$")
DOCUMENTS_PATH = re.compile(rf"^/(?:v1|v1beta)/({_STORE})/documents/?$")
DOCUMENT_PATH = re.compile(rf"^/(?:v1|v1beta)/({_STORE}/documents/[^/]+)$")
OPERATION_PATH = re.compile(rf"^/(?:v1|v1beta)/({_STORE}/(?:upload/)?operations/[^/]+)$")
UPLOAD_PATH = re.compile(rf"^/upload/(?:v1|v1beta)/({_STORE}):uploadToFileSearchStore$")
_STOP = frozenset("a an and are as at be by do does for from how i in is it many much of on or question the to "
                  "what when which who why with".split())


@dataclass(frozen=True)
class FakeChunk:
    text: str
    page: int | None  # 1-based PDF page, None for text


@dataclass
class FakeDocument:
    name: str
    display_name: str
    mime_type: str
    size: int
    custom_metadata: list[dict[str, Any]]
    chunks: list[FakeChunk]
    state: str = "STATE_PENDING"

    def resource(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "displayName": self.display_name,
            "customMetadata": self.custom_metadata,
            "state": self.state,
            "sizeBytes": str(self.size),
            "mimeType": self.mime_type,
            "createTime": "2026-12-01T00:00:00Z",
        }


@dataclass
class FakeStore:
    name: str
    display_name: str
    documents: dict[str, FakeDocument] = field(default_factory=dict)

    def resource(self) -> dict[str, Any]:
        active = sum(d.state == "STATE_ACTIVE" for d in self.documents.values())
        pending = sum(d.state == "STATE_PENDING" for d in self.documents.values())
        return {
            "name": self.name,
            "displayName": self.display_name,
            "activeDocumentsCount": str(active),
            "pendingDocumentsCount": str(pending),
            "sizeBytes": str(sum(d.size for d in self.documents.values())),
            "createTime": "2026-12-01T00:00:00Z",
        }


@dataclass
class _Upload:
    store: str
    metadata: dict[str, Any]
    mime_type: str
    size: int
    data: bytearray = field(default_factory=bytearray)


@dataclass
class _Operation:
    name: str
    document: FakeDocument
    polls_left: int


@dataclass(frozen=True)
class Grounded:
    """A grounded answer: its text, the groundingMetadata JSON and the tokens of the chunks
    the tool put into the model's context."""

    text: str
    metadata: dict[str, Any]
    tool_tokens: int


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def chunks_of(data: bytes, mime_type: str) -> list[FakeChunk]:
    """The fake's own chunking: PDFs per page, then every page or text in runs of words."""
    pages: list[tuple[str, int | None]]
    if mime_type == "application/pdf":
        pages = [(page.extract_text() or "", n) for n, page in enumerate(PdfReader(io.BytesIO(data)).pages, 1)]
    else:
        pages = [(data.decode("utf-8", errors="replace"), None)]
    chunks = []
    for text, page in pages:
        words = text.split()
        for start in range(0, len(words), CHUNK_WORDS):
            chunks.append(FakeChunk(" ".join(words[start : start + CHUNK_WORDS]), page))
    return chunks


class FakeFileSearch:
    """The state behind the File Search endpoints; thread-safe."""

    def __init__(self, base_url: str = "") -> None:
        self.base_url = base_url  # where upload URLs point (set when the server starts)
        self.operation_polls = 1  # GETs of an upload's operation before it reports done
        self.stores: dict[str, FakeStore] = {}
        self.uploaded: list[str] = []  # display names, in upload order (a test counts uploads)
        self.deleted: list[str] = []  # display names of deleted documents
        self.indexed_tokens = 0  # every token ever indexed: what the real service bills
        self._uploads: dict[str, _Upload] = {}
        self._operations: dict[str, _Operation] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # --- what a test reads ---
    def documents(self, store: str | None = None) -> list[FakeDocument]:
        with self._lock:
            stores = [self.stores[store]] if store else list(self.stores.values())
            return [d for s in stores for d in s.documents.values()]

    # --- requests ---
    def handles(self, path: str) -> bool:
        return path.startswith("/upload/") or "fileSearchStores" in path

    def get(self, path: str, query: dict[str, str]) -> Response:
        with self._lock:
            if STORES_PATH.match(path):
                return self._page("fileSearchStores", [s.resource() for s in self.stores.values()], query)
            if match := STORE_PATH.match(path):
                store = self.stores.get(match.group(1))
                return Response(200, store.resource()) if store else _not_found(path)
            if match := DOCUMENTS_PATH.match(path):
                store = self.stores.get(match.group(1))
                if store is None:
                    return _not_found(path)
                return self._page("documents", [d.resource() for d in store.documents.values()], query)
            if match := DOCUMENT_PATH.match(path):
                document = self._document(match.group(1))
                return Response(200, document.resource()) if document else _not_found(path)
            if match := OPERATION_PATH.match(path):
                return self._poll(match.group(1))
        return _not_found(path)

    def post(
        self, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes, body: dict[str, Any]
    ) -> Response:
        if STORES_PATH.match(path):
            return self._create(body)
        if match := UPLOAD_PATH.match(path):
            if headers.get("x-goog-upload-command", "").strip() == "start":
                return self._start_upload(match.group(1), headers, body)
            return self._upload_bytes(query.get("upload_id", ""), headers, raw)
        return _not_found(path)

    def delete(self, path: str) -> Response:
        with self._lock:
            if match := STORE_PATH.match(path):
                removed = self.stores.pop(match.group(1), None)
                return Response(200, {}) if removed else _not_found(path)
            if match := DOCUMENT_PATH.match(path):
                document = self._document(match.group(1))
                if document is None:
                    return _not_found(path)
                del self.stores[match.group(1).split("/documents/")[0]].documents[document.name]
                self.deleted.append(document.display_name)
                return Response(200, {})
        return _not_found(path)

    # --- answering ---
    def ground(self, stores: list[str], question: str) -> Grounded:
        """The sentence sharing most words with the question, of the chunk sharing most, grounded
        in the best `TOP_CHUNKS` chunks of the active documents of `stores`."""
        wanted = set(_words(question))
        with self._lock:
            found = [
                (len(wanted & set(_words(chunk.text))), document, chunk)
                for name in stores
                for document in (self.stores[name].documents.values() if name in self.stores else ())
                if document.state == "STATE_ACTIVE"
                for chunk in document.chunks
            ]
        ranked = sorted((f for f in found if f[0] > 0), key=lambda f: -f[0])[:TOP_CHUNKS]
        if not ranked:
            return Grounded(NOT_IN_DOCUMENTS, {"groundingChunks": [], "groundingSupports": []}, 0)
        sentences = re.split(r"(?<=[.!?])\s+", ranked[0][2].text)
        sentence = max(sentences, key=lambda s: len(wanted & set(_words(s))))  # the first of the best
        chunks = [
            {
                "retrievedContext": {
                    "title": document.display_name,
                    "text": chunk.text,
                    "fileSearchStore": document.name.split("/documents/")[0],
                    "documentName": document.name,
                    **({"pageNumber": chunk.page} if chunk.page is not None else {}),
                }
            }
            for _, document, chunk in ranked
        ]
        end = len(sentence.encode("utf-8"))
        supports = [{"segment": {"startIndex": 0, "endIndex": end, "text": sentence}, "groundingChunkIndices": [0]}]
        tool_tokens = sum(len(chunk.text.split()) for _, _, chunk in ranked)
        return Grounded(sentence, {"groundingChunks": chunks, "groundingSupports": supports}, tool_tokens)

    # --- the steps ---
    def _create(self, body: dict[str, Any]) -> Response:
        display = str(body.get("displayName") or "")
        slug = re.sub(r"[^a-z0-9-]+", "-", display.lower()).strip("-")[:40] or "store"
        with self._lock:
            name = f"fileSearchStores/{slug}-{next(self._ids):04d}"
            self.stores[name] = FakeStore(name, display)
            return Response(200, self.stores[name].resource())

    def _start_upload(self, store: str, headers: dict[str, str], body: dict[str, Any]) -> Response:
        with self._lock:
            if store not in self.stores:
                return _not_found(store)
            upload_id = uuid.uuid4().hex
            self._uploads[upload_id] = _Upload(
                store,
                body,
                str(body.get("mimeType") or headers.get("x-goog-upload-header-content-type", "")),
                int(headers.get("x-goog-upload-header-content-length", "0")),
            )
        url = f"{self.base_url}/upload/v1/{store}:uploadToFileSearchStore?upload_id={upload_id}"
        return Response(200, {}, {"x-goog-upload-url": url, "x-goog-upload-status": "active"})

    def _upload_bytes(self, upload_id: str, headers: dict[str, str], raw: bytes) -> Response:
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None:
                return Response(400, _error(400, "INVALID_ARGUMENT", "unknown upload session"))
            upload.data.extend(raw)
            if "finalize" not in headers.get("x-goog-upload-command", ""):
                return Response(200, {}, {"x-goog-upload-status": "active"})
            del self._uploads[upload_id]
        chunks = chunks_of(bytes(upload.data), upload.mime_type)
        with self._lock:
            store = self.stores[upload.store]
            document = FakeDocument(
                name=f"{store.name}/documents/doc-{next(self._ids):06d}",
                display_name=str(upload.metadata.get("displayName") or ""),
                mime_type=upload.mime_type,
                size=len(upload.data),
                custom_metadata=[_camel(m) for m in upload.metadata.get("customMetadata") or []],
                chunks=chunks,
            )
            store.documents[document.name] = document
            self.uploaded.append(document.display_name)
            self.indexed_tokens += sum(len(c.text.split()) for c in chunks)
            operation = _Operation(f"{store.name}/upload/operations/op-{next(self._ids):06d}", document,
                                   self.operation_polls)
            self._operations[operation.name] = operation
            return Response(200, self._operation(operation), {"x-goog-upload-status": "final"})

    def _poll(self, name: str) -> Response:
        operation = self._operations.get(name)
        if operation is None:
            return _not_found(name)
        if operation.polls_left > 0:
            operation.polls_left -= 1
        if operation.polls_left == 0:
            operation.document.state = "STATE_ACTIVE"
        return Response(200, self._operation(operation))

    def _operation(self, operation: _Operation) -> dict[str, Any]:
        done = operation.polls_left == 0
        if done:
            operation.document.state = "STATE_ACTIVE"
        out: dict[str, Any] = {"name": operation.name, "done": done}
        if done:
            out["response"] = {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.UploadToFileSearchStoreResponse",
                "parent": operation.document.name.split("/documents/")[0],
                "documentName": operation.document.name,
                "mimeType": operation.document.mime_type,
                "sizeBytes": str(operation.document.size),
            }
        return out

    def _document(self, name: str) -> FakeDocument | None:
        store = self.stores.get(name.split("/documents/")[0])
        return store.documents.get(name) if store else None

    def _page(self, key: str, items: list[dict[str, Any]], query: dict[str, str]) -> Response:
        size = int(query.get("pageSize") or 10)
        start = int(query.get("pageToken") or 0)
        page = items[start : start + size]
        after = start + len(page)
        return Response(200, {key: page, **({"nextPageToken": str(after)} if after < len(items) else {})})


def _camel(item: dict[str, Any]) -> dict[str, Any]:
    """Protobuf JSON takes both spellings (google-genai 3.6 sends `string_value`); the API
    answers in camelCase."""
    return {re.sub(r"_(\w)", lambda m: m.group(1).upper(), key): value for key, value in item.items()}


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _not_found(what: str) -> Response:
    return Response(404, _error(404, "NOT_FOUND", f"{what} not found"))


def file_search_stores(body: dict[str, Any]) -> list[str]:
    """The store names a generate request's fileSearch tool searches (either spelling)."""
    names: list[str] = []
    for tool in body.get("tools") or []:
        search = tool.get("fileSearch") or tool.get("file_search") or {}
        names += search.get("fileSearchStoreNames") or search.get("file_search_store_names") or []
    return names
