"""What explicit context caching saves on a 5-question session about a long document, measured
on the fake Gemini server (its token counts) at the model catalogue's prices:

    python scripts/context_cache_saving.py [--corpus corpus] [--questions 5]

The sample corpus's Markdown guides are joined into one long document (none of them alone
reaches Pro's 4,096-token minimum for a cached content) and ingested with Gemini embeddings
(the fake's). Then one session asks "Summarise the whole document guides.md" and follow-ups about it,
twice, each in a fresh data dir: with `context_cache` on and off. The answer cache is off in
both (every question is answered) and the fake's implicit cache is off (Google does not promise
it), so the difference is what explicit caching does. Nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from ingest.pipeline import ingest_paths
from rag.chain import Chain
from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini, rewrites_as_asked
from rag.types import Message

DOCUMENT = "guides.md"
FOLLOW_UPS = (
    "What does the guide say about retries after a 429?",
    "How are quotas and rate limits handled?",
    "How does streaming send partial answers?",
    "What does it say about keeping API keys secret?",
    "How is the deployment monitored?",
    "Which models does it recommend?",
)


@dataclass(frozen=True)
class Session:
    """One session's bill, from the ledger."""

    cost_usd: float
    prompt_tokens: int
    cached_tokens: int
    storage_usd: float
    caches_created: int
    routes: list[str]


def long_document(corpus: Path) -> str:
    guides = sorted(corpus.glob("*.md"))
    if not guides:
        raise SystemExit(f"{corpus}: no Markdown guides to join (expected the sample corpus, corpus/)")
    return "\n\n".join(path.read_text(encoding="utf-8") for path in guides)


def ask_session(corpus: Path, questions: int, cached: bool, work: Path) -> Session:
    with FakeGemini(responder=rewrites_as_asked) as fake:
        settings = Settings(data_dir=work / "data", api_key=SecretStr(TEST_API_KEY), base_url=fake.url,
                            tier="unlimited", collection="guides", answer_cache=False, context_cache=cached)
        folder = work / "docs"
        folder.mkdir(parents=True)
        (folder / DOCUMENT).write_text(long_document(corpus), encoding="utf-8")
        provider = GeminiProvider(settings)
        ingest_paths([folder], settings, provider)
        chain = Chain(settings, provider)
        history: list[Message] = []
        routes = []
        for question in [f"Summarise the whole document {DOCUMENT}", *FOLLOW_UPS][:questions]:
            record = chain.ask(question, history, "session")
            routes.append(record.route.reason)
            history += [Message("user", question), Message("model", record.answer)]
        chain.end_session("session")
        totals = chain.ledger.session("session")
        return Session(totals.cost_usd, totals.usage.prompt_tokens, totals.usage.cached_tokens, totals.storage_usd,
                       len(fake.calls("createCachedContent")), routes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("corpus"), help="the sample corpus (default corpus/)")
    parser.add_argument("--questions", type=int, default=5, choices=range(2, len(FOLLOW_UPS) + 2),
                        help="questions in the session, the first asking for the whole document (default 5)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gemrag-ctxcache-") as work:
        on = ask_session(args.corpus, args.questions, True, Path(work) / "on")
        off = ask_session(args.corpus, args.questions, False, Path(work) / "off")
    print(f"{args.questions}-question session on {DOCUMENT} ({args.corpus}/*.md joined), fake Gemini token counts, "
          "catalogue prices")
    print(f"{'':24}{'cost $':>10}{'prompt tok':>12}{'cached tok':>12}{'storage $':>11}{'caches':>8}")
    for name, run in (("without context cache", off), ("with context cache", on)):
        print(f"{name:24}{run.cost_usd:>10.6f}{run.prompt_tokens:>12,}{run.cached_tokens:>12,}"
              f"{run.storage_usd:>11.6f}{run.caches_created:>8}")
    saved = off.cost_usd - on.cost_usd
    print(f"saving: ${saved:.6f} ({saved / off.cost_usd:.0%} of the session's cost)")
    print(f"first answer's route: {on.routes[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
