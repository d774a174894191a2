"""The pipeline a user would otherwise write: plain LangChain over the same files.

Its stock loaders (langchain-community's `DirectoryLoader` + `TextLoader` for Markdown,
`PyPDFDirectoryLoader` for PDFs, one document per page), `RecursiveCharacterTextSplitter`
measuring length in the same MiniLM word pieces at our chunk size and overlap, the same
MiniLM embedder wrapped as LangChain `Embeddings`, and `Chroma.from_documents`. The
benchmark runs it in its own process, so its peak memory is its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from langchain_core.embeddings import Embeddings

from bench.harness import peak_rss_mb
from rag import runtime  # noqa: F401  (telemetry off before chromadb loads)
from rag.providers.minilm import MiniLM, shared_minilm

COLLECTION = "langchain-baseline"


class MiniLMEmbeddings(Embeddings):
    """Our offline embedder behind LangChain's interface, so both pipelines embed alike."""

    def __init__(self, model: MiniLM) -> None:
        self.model = model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.model.embed(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


@dataclass(frozen=True)
class BaselineRun:
    chunks: int
    seconds: float  # from the first import of the pipeline's libraries to the stored collection
    peak_rss_mb: float


def run(src: Path, persist: Path, size_tokens: int, overlap_tokens: int) -> BaselineRun:
    started = time.perf_counter()
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_community.document_loaders import DirectoryLoader, PyPDFDirectoryLoader, TextLoader
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    model = shared_minilm()
    docs = DirectoryLoader(str(src), glob="**/*.md", loader_cls=TextLoader).load()
    docs += PyPDFDirectoryLoader(str(src), recursive=True).load()
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=size_tokens, chunk_overlap=overlap_tokens, length_function=model.count_tokens
    )
    chunks = splitter.split_documents(docs)
    Chroma.from_documents(
        chunks,
        MiniLMEmbeddings(model),
        collection_name=COLLECTION,
        persist_directory=str(persist),
        client_settings=ChromaSettings(anonymized_telemetry=False, is_persistent=True,
                                       persist_directory=str(persist)),
        collection_metadata={"hnsw:space": "cosine"},
    )
    return BaselineRun(len(chunks), time.perf_counter() - started, peak_rss_mb())
