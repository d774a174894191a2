"""The vector store: one Chroma collection per corpus, embedded or on a Chroma server.

The collection's metadata records which embedder built it (so mixing embedders is refused)
and a corpus version that ingest bumps on every change (so caches keyed on it never serve
an answer computed from an older corpus).
"""

from __future__ import annotations

import copy
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from rag import runtime  # imported first: telemetry off before chromadb loads
from rag.errors import ConfigError, EmbedderMismatch
from rag.kv import StoreUnavailable
from rag.settings import Settings
from rag.types import Chunk, Hit

# Chroma's rule (3-512 characters), but at most MAX_NAME_CHARS: the name is also a file name's part
# ("ingest-NAME.lock"), and a file system takes 255 bytes to a name.
MAX_NAME_CHARS = 200
_NAME = re.compile(rf"^[a-zA-Z0-9][a-zA-Z0-9._-]{{1,{MAX_NAME_CHARS - 2}}}[a-zA-Z0-9]$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]+")
ADD_BATCH = 2_000  # below chromadb's max batch size on every backend


_clients: dict[tuple[str, ...], object] = {}
_clients_lock = threading.Lock()


def chroma_client(settings: Settings):  # type: ignore[no-untyped-def]  # chromadb client types
    """One client per Chroma server and credentials, or data dir, per process, created once
    under a lock: two threads creating the first embedded client at once race inside chromadb
    and both fail (two first requests to a fresh UI did)."""
    if settings.chroma_url:
        token = settings.chroma_token.get_secret_value() if settings.chroma_token else ""
        where: tuple[str, ...] = (settings.chroma_url, token, settings.chroma_token_header)
    else:
        where = (str(settings.path("chroma").resolve()),)
    with _clients_lock:
        if where not in _clients:
            _clients[where] = _new_client(settings)
        return _clients[where]


def _new_client(settings: Settings):  # type: ignore[no-untyped-def]  # chromadb client types
    """Made inside `loading_chromadb`: the first client loads the classes it needs then."""
    with runtime.loading_chromadb() as chromadb:
        from chromadb.config import Settings as ChromaSettings
        from chromadb.errors import ChromaError

        if not settings.chroma_url:
            chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
            return chromadb.PersistentClient(path=str(settings.path("chroma")), settings=chroma_settings)
        host, port = chroma_address(settings.chroma_url)
        auth, secrets = chroma_auth(settings)
        # CHROMA_URL alone says where: chromadb's own CHROMA_SERVER_HOST and _HTTP_PORT
        # variables, read from the environment, would have it refuse the full URL given it.
        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False, chroma_server_host=None,
                                         chroma_server_http_port=None, **auth)
        try:
            # The URL without its credentials (chromadb sends them as `auth` says), so chromadb's
            # own errors and logs cannot show them; with its path, for a server behind a proxy
            # that serves Chroma under one (https://host/chroma).
            client = chromadb.HttpClient(host=chroma_endpoint(settings.chroma_url), port=port,
                                         ssl=urlsplit(settings.chroma_url).scheme == "https", settings=chroma_settings)
        except (ValueError, ChromaError) as exc:
            # chromadb's "Could not connect to a Chroma server" (or another transport error) is a
            # store that cannot be reached (exit 2, API 503) as Redis is, not an unexpected
            # error; an answer it would not serve (401, 403, a proxy's 404) is a refusal.
            import httpx

            if isinstance(exc.__context__, httpx.TransportError):
                raise unreachable(f"{host}:{port}", exc) from exc
            raise refused(f"{host}:{port}", exc, secrets) from exc
        return Reached(client, f"{host}:{port}", secrets)


def chroma_address(url: str) -> tuple[str, int]:
    """The host and port of a Chroma server's URL, as the client connects and as messages name
    it: never the URL whole, which may carry credentials. Without a port: 443 for `https` (a
    server behind TLS is behind a proxy on the standard port), else 8000, Chroma's own."""
    parsed = urlsplit(url)
    return parsed.hostname or "127.0.0.1", parsed.port or (443 if parsed.scheme == "https" else 8000)


def chroma_endpoint(url: str) -> str:
    """The server's URL as chromadb is given it: scheme, host, port (as `chroma_address`
    reads it) and path, without the user and password."""
    parsed = urlsplit(url)
    host, port = chroma_address(url)
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    return urlunsplit((parsed.scheme or "http", f"{host}:{port}", parsed.path.rstrip("/"), "", ""))


def chroma_auth(settings: Settings) -> tuple[dict[str, Any], list[str]]:
    """chromadb's client settings that send the server's credentials, and those credentials
    (to keep out of messages): a user and password in CHROMA_URL as HTTP basic auth, or
    `chroma_token` in `chroma_token_header` (`Settings` refuses both at once). Neither: none,
    and chromadb's own CHROMA_CLIENT_AUTH_* environment variables still apply."""
    parsed = urlsplit(settings.chroma_url or "")
    if parsed.username or parsed.password:
        user, password = unquote(parsed.username or ""), unquote(parsed.password or "")
        return ({"chroma_client_auth_provider": "chromadb.auth.basic_authn.BasicAuthClientProvider",
                 "chroma_client_auth_credentials": f"{user}:{password}"},
                [s for s in (password, parsed.password) if s])
    if settings.chroma_token:
        token = settings.chroma_token.get_secret_value()
        return ({"chroma_client_auth_provider": "chromadb.auth.token_authn.TokenAuthClientProvider",
                 "chroma_client_auth_credentials": token,
                 "chroma_auth_token_transport_header": settings.chroma_token_header}, [token])
    return {}, []


def unreachable(where: str, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(
        f"Cannot reach the Chroma server at {where} (CHROMA_URL): {str(exc).rstrip('.')}. Start it or fix "
        "CHROMA_URL (one process alone, not a server with ingest workers, can use the embedded store under the "
        "data directory instead: unset CHROMA_URL).", documents=True)


def refused(where: str, exc: BaseException, secrets: Sequence[str]) -> StoreUnavailable:
    """The server answered a request with a refusal, when the client was made or later: what
    it said, on one line (a proxy's may be an HTML page), with the credentials taken out
    should it echo them."""
    said = " ".join(re.sub(r"<[^>]*>", " ", str(exc) or type(exc).__name__).split())[:200]
    for secret in secrets:
        said = said.replace(secret, "[redacted]")
    return StoreUnavailable(
        f"The Chroma server at {where} (CHROMA_URL) refused gemrag's requests ({said}). If it wants credentials, "
        "give a user and password in CHROMA_URL (http://user:password@host:port) or a token in "
        "GEMRAG_CHROMA_TOKEN, and check those given; if it serves Chroma under a path, check that too.",
        documents=True)


class Reached:
    """A Chroma server's client, or one of its collections, whose calls raise StoreUnavailable
    when the server cannot be reached or refuses the credentials: chromadb checks the server
    once, when its client is made, and later lets httpx's transport errors and a proxy's 401
    page through, so a server stopped after that, or a password changed under a running
    server, turned every question into an unexpected error (exit 3, HTTP 500) while /readyz
    said Chroma was down. Collections it returns are wrapped alike."""

    def __init__(self, target: Any, where: str, secrets: Sequence[str] = ()) -> None:
        self._target = target
        self._where = where
        self._secrets = secrets

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            import httpx

            try:
                result = value(*args, **kwargs)
            except httpx.TransportError as exc:
                raise unreachable(self._where, exc) from exc
            except Exception as exc:
                if refuses_credentials(exc):
                    raise refused(self._where, exc, self._secrets) from exc
                raise
            if isinstance(result, list):
                return [self._wrapped(r) for r in result]
            return self._wrapped(result)

        return call

    def _wrapped(self, result: Any) -> Any:
        from chromadb.api.models.Collection import Collection

        return Reached(result, self._where, self._secrets) if isinstance(result, Collection) else result


def refuses_credentials(exc: BaseException) -> bool:
    """Whether chromadb's error is the server (or its proxy) refusing who asked: Chroma's own
    auth errors, or the bare Exception chromadb raises with a 401 or 403 page that is not
    Chroma's JSON (its `__context__` is httpx's status error). Not a 407: that is a forward
    proxy asking for its own credentials, which CHROMA_URL's are not."""
    import httpx
    from chromadb.errors import AuthorizationError, ChromaAuthError

    if isinstance(exc, (AuthorizationError, ChromaAuthError)):
        return True
    context = exc.__context__
    return isinstance(context, httpx.HTTPStatusError) and context.response.status_code in (401, 403)


def check_collection_name(name: str) -> str:
    """The name, checked before anything is created under it: it names a Chroma collection
    and the files kept beside it (the ingest lock), so it must be valid for both."""
    if not _NAME.fullmatch(name):  # not match: '$' also matches before a final newline
        raise ConfigError(
            f"Collection name {name!r} is not allowed: use 3-{MAX_NAME_CHARS} characters from "
            "letters, digits, '.', '_' and '-', starting and ending with a letter or digit."
        )
    return name


def collection_name(prefix: str, text: str) -> str:
    """A valid name `prefix-<text>` made from any text (a folder or data set name): runs of
    other characters become '-', and the ends are trimmed back to a letter or digit."""
    slug = _NOT_NAME.sub("-", text).strip("-._") or "corpus"
    return check_collection_name(f"{prefix}-{slug}"[:MAX_NAME_CHARS].rstrip("-._"))


@dataclass(frozen=True)
class CollectionMeta:
    """What a collection records about itself."""

    embedder: str | None  # the embedding id that built it; None if it records none
    version: int  # the corpus version, bumped by ingest on every change


def collection_meta(collection: Any) -> CollectionMeta:
    """The one reader of a Chroma collection's metadata (a plain dict, or None when unset), so
    the store, the API's collection list and the UI's corpus panel read the same keys the
    same way."""
    meta = collection.metadata or {}
    return CollectionMeta(embedder=str(meta.get("embedder", "")) or None, version=int(meta.get("version", 0)))


def recorded_embedder(settings: Settings, name: str) -> str | None:
    """The embedding id a collection records, or None when there is no such collection."""
    client = chroma_client(settings)
    if name not in {c.name for c in client.list_collections()}:
        return None
    return collection_meta(client.get_collection(name)).embedder


class Store:
    def __init__(self, settings: Settings, embedding_id: str, name: str | None = None) -> None:
        self.name = name or settings.collection
        check_collection_name(self.name)
        self.embedding_id = embedding_id
        self.client = chroma_client(settings)
        # Chunk counts by corpus version, shared with this store's pinned views (see `pinned`).
        self._counts: dict[int, int] = {}
        self._pinned: int | None = None
        self.collection = self.client.get_or_create_collection(
            self.name,
            embedding_function=None,
            metadata={"hnsw:space": "cosine", "embedder": embedding_id, "version": 0},
        )
        recorded = collection_meta(self.collection).embedder
        if recorded and recorded != embedding_id:
            raise EmbedderMismatch(
                f"Collection {self.name!r} was built with {recorded}, but the current embedder is "
                f"{embedding_id}. Vectors from different embedders cannot be mixed: use another "
                "--collection, re-ingest with --rebuild, or switch back (set or unset GEMINI_API_KEY)."
            )

    # --- the corpus version ---
    @property
    def version(self) -> int:
        """Read afresh: another Store object (the UI's ingest, another process) may have bumped
        it, and this object's copy of the metadata would not show that. A pinned view answers
        with the version it was pinned at."""
        return self._read_version() if self._pinned is None else self._pinned

    def _read_version(self) -> int:
        return collection_meta(self.client.get_collection(self.name)).version

    def pinned(self) -> Store:
        """This collection with its version read once, now: one question's steps (the cache
        key, the chunk count, the BM25 index, the rerank key) then agree on one version, and
        Chroma is asked once per question instead of once per step (a round trip each, paid
        by every question a server answers). Writes go through as usual and forget the counts."""
        view = copy.copy(self)
        view._pinned = self._read_version()
        return view

    def bump_version(self, past: int = 0) -> int:
        """`past`: a version the collection had before it was dropped and recreated; the new
        one must go above it, or caches keyed on the version would serve old answers."""
        meta = dict(self.collection.metadata or {})
        meta.pop("hnsw:space", None)  # immutable after creation; Chroma refuses to modify it
        meta["version"] = max(self._read_version(), past) + 1
        self.collection.modify(metadata=meta)
        return int(meta["version"])

    # --- writes ---
    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        self._counts.clear()
        for start in range(0, len(chunks), ADD_BATCH):
            part = chunks[start : start + ADD_BATCH]
            self.collection.upsert(
                ids=[c.id for c in part],
                embeddings=[list(v) for v in vectors[start : start + ADD_BATCH]],
                documents=[c.text for c in part],
                metadatas=[c.metadata() for c in part],
            )

    def update_places(self, chunks: Sequence[Chunk]) -> None:
        """New metadata (index, offsets, page, heading, lead) for chunks already stored under
        the same id, hence the same text: their vectors are kept as stored, not re-sent (a
        vector read back and written again drifts in its last float32 digits). Chroma merges
        the metadata given into what is stored, so the lead is written even when empty: an
        edit that ended the sentence before a chunk must not leave its old lead."""
        self._counts.clear()
        for start in range(0, len(chunks), ADD_BATCH):
            part = chunks[start : start + ADD_BATCH]
            metadatas = [{**c.metadata(), "lead": c.lead} for c in part]
            self.collection.update(ids=[c.id for c in part], metadatas=metadatas)

    def delete(self, ids: Iterable[str]) -> None:
        self._counts.clear()
        ids = list(ids)
        for start in range(0, len(ids), ADD_BATCH):
            self.collection.delete(ids=ids[start : start + ADD_BATCH])

    # --- reads ---
    def count(self, version: int | None = None) -> int:
        """Counted once per corpus version: ingest bumps the version on every change, and
        counting a 100k-chunk collection costs about 13 ms, paid by every question otherwise.
        Writes through this object forget the count at once. `version`: the one the caller has
        just read, so it is not read from Chroma a second time."""
        version = self.version if version is None else version
        counted = self._counts.get(version)
        if counted is None:
            counted = self.collection.count()
            self._counts.clear()  # only the current version's count is asked for again
            self._counts[version] = counted
        return counted

    def ids(self) -> set[str]:
        return set(self.collection.get(include=[])["ids"])

    def mentions(self, term: str, sources: Sequence[str] | None, *, word_start: bool = False) -> bool:
        """Whether any chunk of these files (`None`: of the whole collection) holds `term` as
        a word (`_term_pattern`: case aside, a final "s" optional), or with `word_start` as
        the start of one ("repositor" of "repository"): one Chroma query with a `$regex` document
        filter, 6-7 ms over the 1,000 chunks of the GLPK test set's two largest manuals."""
        if (sources is not None and not sources) or not term.strip():
            return False
        found = self.collection.get(
            where=None if sources is None else {"source": {"$in": list(sources)}},
            where_document={"$regex": _term_pattern(term, word_start)},
            limit=1,
            include=[],
        )
        return bool(found["ids"])

    def missing_sources(self, sources: Sequence[str]) -> list[str]:
        """Those of `sources` (file paths as the answers cite them) the collection holds no
        chunk of: one metadata lookup each."""
        return [s for s in dict.fromkeys(sources)
                if not self.collection.get(where={"source": s}, limit=1, include=[])["ids"]]

    def sources(self, page_size: int = 5_000) -> set[str]:
        """Every file the collection holds a chunk of."""
        return {str(meta["source"]) for meta in self.metadatas(page_size)}

    def metadatas(self, page_size: int = 5_000) -> Iterator[Mapping[str, Any]]:
        """Each chunk's metadata (`chunk_metadatas`)."""
        return chunk_metadatas(self.collection, page_size)

    def chunks(self, where: dict[str, Any] | None = None, page_size: int = 5_000) -> Iterator[Chunk]:
        for got in _paged(self.collection, ["documents", "metadatas"], where, page_size):
            for id_, doc, meta in zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True):
                yield Chunk.from_metadata(id_, doc, dict(meta))

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        if not ids:  # Chroma refuses an empty id list rather than returning nothing
            return []
        got = self.collection.get(ids=list(ids), include=["documents", "metadatas"])
        by_id = {
            i: Chunk.from_metadata(i, d, dict(m))
            for i, d, m in zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True)
            if _live(d, m)
        }
        return [by_id[i] for i in ids if i in by_id]

    def query(self, vector: Sequence[float], n: int, where: dict[str, Any] | None = None) -> list[Hit]:
        if n <= 0 or self.count() == 0:
            return []
        got = self.collection.query(
            query_embeddings=[list(vector)],
            n_results=n,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        return [
            Hit(Chunk.from_metadata(i, d, dict(m)), 1.0 - float(dist))
            for i, d, m, dist in zip(
                got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0], strict=True
            )
            if _live(d, m)
        ]

    def vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        if not ids:
            return {}
        got = self.collection.get(ids=list(ids), include=["embeddings"])
        return {i: list(map(float, v)) for i, v in zip(got["ids"], got["embeddings"], strict=True)}

    def vectors_of_texts(
        self, content_hashes: Iterable[str], page_size: int = 500
    ) -> dict[str, dict[str, list[float]]]:
        """The chunks holding each of these embedded texts (`Chunk.content_hash`), whatever
        their file, by id with their vectors: one metadata query per `page_size` hashes."""
        found: dict[str, dict[str, list[float]]] = {}
        for id_, content_hash, vector in self._holders(content_hashes, page_size, vectors=True):
            found.setdefault(content_hash, {})[id_] = list(map(float, vector))
        return found

    def holders_of_texts(self, content_hashes: Iterable[str], page_size: int = 500) -> dict[str, set[str]]:
        """The ids of the chunks holding each of these embedded texts, without their vectors:
        what a dry run asks to tell which chunks a real run would copy instead of embedding."""
        found: dict[str, set[str]] = {}
        for id_, content_hash, _ in self._holders(content_hashes, page_size, vectors=False):
            found.setdefault(content_hash, set()).add(id_)
        return found

    def _holders(self, content_hashes: Iterable[str], page_size: int, vectors: bool) -> Iterator[tuple[str, str, Any]]:
        wanted = sorted(set(content_hashes))
        include: list[Any] = ["embeddings", "metadatas"] if vectors else ["metadatas"]
        for start in range(0, len(wanted), page_size):
            got = self.collection.get(where={"content_hash": {"$in": wanted[start : start + page_size]}},
                                      include=include)
            held = got["embeddings"] if vectors and got["embeddings"] is not None else [None] * len(got["ids"])
            for id_, meta, vector in zip(got["ids"], got["metadatas"] or [], held, strict=True):
                yield id_, str(meta["content_hash"]), vector


def chunk_metadatas(collection: Any, page_size: int = 5_000) -> Iterator[Mapping[str, Any]]:
    """Each chunk's metadata in a Chroma collection, without its text (most of what a full
    read costs), `page_size` chunks at a time: what listings of a collection's files read.
    It takes the collection as Chroma gives it, not a `Store`: the UI's corpus panel lists a
    collection built with another embedder, which a `Store` refuses to open."""
    for got in _paged(collection, ["metadatas"], None, page_size):
        yield from got["metadatas"] or []


def _paged(collection: Any, include: list[Any], where: dict[str, Any] | None, page_size: int) -> Iterator[Any]:
    """The collection (or its chunks matching `where`) read `page_size` chunks at a time."""
    offset = 0
    while True:
        got = collection.get(where=where, include=include, limit=page_size, offset=offset)
        yield got
        if len(got["ids"]) < page_size:
            return
        offset += page_size


def no_store_yet(settings: Settings) -> bool:
    """True when the embedded store has never been created: no collection can exist, so a
    first ingest need not open it before it has something to write."""
    return not settings.chroma_url and not _chroma_database(settings).exists()


def _chroma_database(settings: Settings) -> Path:
    return settings.data_dir / "chroma" / "chroma.sqlite3"


def write_stamp(settings: Settings, name: str) -> str | None:
    """A fingerprint of the last write to an embedded collection, read from Chroma's own
    SQLite file with sqlite3, so a caller can tell "untouched since I last wrote it" without
    importing chromadb (about half a second). Every add, update or delete goes through
    Chroma's log and moves the sequence number its metadata segment has consumed; dropping
    and recreating the collection changes its id; the corpus version is part of it too.

    None when it cannot be known: a Chroma server, no database yet, or a schema this code
    does not recognise (another Chroma version), so callers fall back to opening the store.
    """
    if settings.chroma_url:
        return None
    database = _chroma_database(settings)
    if not database.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as db:
            row = db.execute(
                "SELECT c.id, m.seq_id, v.int_value FROM collections c "
                "JOIN segments s ON s.collection = c.id AND s.scope = 'METADATA' "
                "LEFT JOIN max_seq_id m ON m.segment_id = s.id "
                "LEFT JOIN collection_metadata v ON v.collection_id = c.id AND v.key = 'version' "
                "WHERE c.name = ?",
                (name,),
            ).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else f"{row[0]}:{row[1]}:{row[2]}"


def list_collections(settings: Settings) -> list[str]:
    return sorted(c.name for c in chroma_client(settings).list_collections())


def drop_collection(settings: Settings, name: str) -> None:
    client = chroma_client(settings)
    if name in {c.name for c in client.list_collections()}:
        client.delete_collection(name)


def _live(document: str | None, metadata: Mapping[str, Any] | None) -> bool:
    """Whether Chroma returned a chunk it still holds. An embedded store is one process's: its
    vector index, loaded here, still names a chunk another process (`python -m ingest
    --prune`) has deleted since, and Chroma then returns the id with neither text nor
    metadata. Such a hit is dropped, as the keyword index's are (`Retriever._hybrid`):
    reading it crashed every answer that found it until the process restarted."""
    return document is not None and metadata is not None


def _term_pattern(term: str, word_start: bool = False) -> str:
    """A case-insensitive pattern for `term` as a word (or a phrase, its words apart by white
    space or a hyphen, or a code such as "--prune"), its final "s" optional, or with
    `word_start` as the start of a word, in the syntax of Chroma's `$regex`: Rust's regex,
    which reads `re.escape`'s escapes alike but has no look-around, so word boundaries only
    where the term starts or ends with a word character."""
    stem = term.lower()
    word_end = re.search(r"\w$", stem) is not None and not word_start
    base = stem[:-1] if stem.endswith("s") and len(stem) > 3 and not word_start else stem
    # A phrase's words apart by any white space or a hyphen: "work flow" holds "work\nflow"
    # where a PDF's line ends between them, and "work-flow".
    body = r"[\s-]+".join(re.escape(word) for word in base.split()) + (r"s?\b" if word_end else "")
    start = r"\b" if re.match(r"\w", stem) else ""
    return f"(?i){start}{body}"

