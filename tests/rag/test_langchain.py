"""gemrag as LangChain components: a collection as a retriever inside an LCEL chain, the
answer chain as a streaming Runnable, and the README's example run as a user would."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from rag.answer import AskOptions
from rag.chain import Chain
from rag.errors import InvalidRequest
from rag.langchain import GemragAnswerer, GemragRetriever
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from tests.fakes.tiny_corpus import build_store

README = Path(__file__).resolve().parents[2] / "README.md"
QUESTION = "What should a client do after HTTP 429?"


def test_a_collection_is_a_retriever_in_an_lcel_chain(settings: Settings, offline_provider: OfflineProvider) -> None:
    chain = Chain(settings, offline_provider, build_store(settings, offline_provider))
    retriever = GemragRetriever(chain=chain, options=AskOptions(top_k=2), session_id="lc")

    def prompt(parts: dict[str, object]) -> str:
        docs = parts["context"]
        assert isinstance(docs, list) and all(isinstance(d, Document) for d in docs)
        return f"Q: {parts['question']}\n" + "\n".join(f"[{d.metadata['source']}] {d.page_content}" for d in docs)

    lcel = {"context": retriever, "question": RunnablePassthrough()} | RunnableLambda(prompt)
    text = lcel.invoke(QUESTION)

    assert text.startswith(f"Q: {QUESTION}\n[api-guide.md] When the API answers HTTP 429")
    assert text.count("\n[") == 2  # top_k passages
    [doc, *_] = retriever.invoke("How many days of paid vacation do employees get?")
    assert doc.metadata["source"] == "handbook.pdf" and doc.metadata["page"] == 2 and doc.metadata["score"] > 0
    for k in (0, -1, 51):  # 0 meant the default 6 and -1 no passage, silently
        with pytest.raises(InvalidRequest, match=f"k must be a whole number from 1 to 50, not {k}"):
            GemragRetriever(chain=chain, options=AskOptions(top_k=k)).invoke(QUESTION)


def test_the_answer_chain_streams_as_a_runnable(settings: Settings, offline_provider: OfflineProvider) -> None:
    slow = OfflineProvider(stream_delay_s=0.001)
    chain = Chain(settings, slow, build_store(settings, offline_provider))
    answerer = RunnableLambda(str.strip) | GemragAnswerer(chain, session_id="lc")

    pieces = list(answerer.stream(f"  {QUESTION}  "))

    assert len(pieces) > 3 and "retry" in "".join(pieces).lower() and "[1]" in "".join(pieces)
    assert answerer.invoke(QUESTION) == "".join(pieces)  # the second time from the answer cache
    assert chain.ledger.session("lc").answers == 2


def test_the_answerer_takes_a_prompt_streams_async_and_runs_under_callbacks(
    settings: Settings, offline_provider: OfflineProvider
) -> None:
    """A prompt template piped in failed ("'ChatPromptValue' object has no attribute 'strip'"),
    astream gave the whole answer as one piece, and no callback saw the answerer run."""
    slow = OfflineProvider(stream_delay_s=0.001)
    chain = Chain(settings, slow, build_store(settings, offline_provider))
    answerer = GemragAnswerer(chain, session_id="lc")
    prompted = ChatPromptTemplate.from_template("{q}") | answerer
    seen = Seen()

    text = prompted.invoke({"q": QUESTION}, config={"callbacks": [seen]})

    assert "retry" in text.lower() and "GemragAnswerer" in seen.started

    async def pieces() -> list[str]:
        return [p async for p in answerer.astream("How many days of paid vacation do employees get?")]

    streamed = asyncio.run(pieces())
    assert len(streamed) > 3 and "25 days" in "".join(streamed)
    with pytest.raises(TypeError, match="a question as text or a prompt's value, not int"):
        answerer.invoke(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a question as text or a prompt's value, not int"):
        GemragRetriever(chain=chain).invoke(42)  # type: ignore[arg-type]  # was an AttributeError


class Seen(BaseCallbackHandler):
    def __init__(self) -> None:
        self.started: list[str] = []

    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, **kwargs: Any) -> None:
        self.started.append(kwargs.get("name") or "")


def test_the_readme_example_runs(tmp_path: Path, offline_provider: OfflineProvider) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_key=None)
    build_store(settings, offline_provider, name="corpus")
    section = README.read_text().split("### LangChain:", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)  # type: ignore[union-attr]
    env = {**os.environ, "GEMRAG_DATA_DIR": str(settings.data_dir), "PYTHONPATH": str(README.parent)}

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)

    assert done.returncode == 0, done.stderr
    first, answer = done.stdout.split("\n", 1)
    assert first.startswith("[('api-guide.md', None)")
    assert "exponential backoff" in answer and "[1]" in answer
