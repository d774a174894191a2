"""Running a test set through retrieval and the answer chain, in parallel and resumably.

Work is split into units: one per case and k for retrieval (every mode with and without
MMR, sharing the follow-up rewrite), one per case and configuration for answers. Units run
on a thread pool; the provider layer already keeps Gemini calls within the rate limits, so
the pool only bounds how many wait at once. Each finished unit goes to the checkpoint.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from rag.answer import AnswerRecord, AskOptions
from rag.backend import searcher
from rag.chain import Chain, settling
from rag.citecheck import supported_share
from rag.costs import price_usd
from rag.embedcache import EmbeddingCache
from rag.errors import GemragError
from rag.eval import metrics
from rag.eval.checkpoint import Checkpoint, unit_key
from rag.eval.configs import EvalConfig, RetrievalVariant, retrieval_variants
from rag.eval.judge import Verdict, judge
from rag.eval.results import (
    AnswerScores,
    RetrievalScores,
    RunReport,
    answer_row,
    retrieval_row,
    tag_rows,
)
from rag.eval.testset import TestCase, TestSet
from rag.prompts import PROMPT_VERSION
from rag.providers import Embedders
from rag.providers.base import Generator
from rag.retrieval import Query, Retriever, Searcher
from rag.sentences import as_shown
from rag.settings import BackendName, Settings
from rag.store import Store
from rag.types import Chunk, Message, Passage

NDCG_DEPTH = 10
MULTI_HOP = "multi-hop"  # the tag of cases whose evidence quotes are different facts, all needed


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    testset: TestSet
    configs: list[EvalConfig]
    answers: bool = True  # BEIR sets have no reference answers: retrieval only
    workers: int = 4


class Evaluator:
    def __init__(
        self,
        settings: Settings,
        generator: Generator,
        store: Store,
        checkpoint: Checkpoint,
        embedders: Embedders | None = None,
        *,
        per_file: bool = False,
    ) -> None:
        """`embedders`: where the collection's embedder comes from (default: the settings).
        `per_file`: retrieval is scored on a ranking of files, each file's best passage once
        (a BEIR set ranks documents, each a file of its own), not on the passages the chain
        shows, where a second chunk of a file takes a place of its own."""
        self.settings = settings
        self.generator = generator
        self.store = store
        self.embedders = embedders or Embedders(settings)
        self.retriever = Retriever(settings, self.embedders, generator, embeddings=EmbeddingCache(settings))
        self.chain = self._chain(self.retriever)
        self._chains: dict[BackendName, Chain] = {"gemrag": self.chain}
        self._lock = threading.Lock()
        self.checkpoint = checkpoint
        self.failures: list[str] = []
        self.per_file = per_file
        # The ledger session of this evaluation's answers and verdicts, one per evaluation as
        # `rag ask` has one per run: under Chain.ask's default "", every evaluation ever run
        # shared one session budget (with a key, past it every case was refused) and showed as a
        # nameless row in `rag costs`.
        self.session = f"eval-{uuid.uuid4().hex[:12]}"
        # Everything a unit's scores depend on besides its case and configuration.
        self.environment = {
            "provider": generator.name,
            "embedder": store.embedding_id,
            "models": [generator.flash_model, generator.pro_model],
            "collection": store.name,
            "corpus_version": store.version,
            "prompt": PROMPT_VERSION,
            "retrieval": [settings.overfetch, settings.rrf_k, settings.mmr_lambda, settings.fusion,
                          settings.fusion_alpha, settings.line_weight],
            "rerank": [settings.rerank_depth, settings.local_rerank.model_dump(), settings.lite_model],
            "routing": [settings.pro_threshold_tokens, settings.whole_document_budget_tokens],
            # only when set, so the checkpoints of runs that rank passages (paid answers among
            # them) still resume
            **({"ranks": "files"} if per_file else {}),
        }

    def _chain(self, retriever: Searcher) -> Chain:
        # Cached answers would report no cost and no latency: evaluation measures real answers.
        return Chain(self.settings.model_copy(update={"answer_cache": False}), self.generator, self.store,
                     retriever=retriever)

    def chain_for(self, backend: BackendName) -> Chain:
        """The chain answering under `backend`, built on first use (rag.backend.searcher)."""
        with self._lock:
            if backend not in self._chains:
                self._chains[backend] = self._chain(searcher(self.settings, backend, self.embedders, self.generator))
            return self._chains[backend]

    def run(self, plan: Plan, advance: Callable[[int], None] = lambda _: None) -> RunReport:
        started = datetime.now(UTC).isoformat(timespec="seconds")
        self.failures = []
        variants = retrieval_variants(plan.configs)
        ks = list(dict.fromkeys(v.top_k for v in variants))
        retrieval_units = [(c, k) for c in plan.testset.cases if not c.unanswerable for k in ks]
        answer_units = [(c, cfg) for c in plan.testset.cases for cfg in plan.configs] if plan.answers else []
        retrieval_done: list[RetrievalScores] = []
        answers_done: list[AnswerScores] = []
        pool = ThreadPoolExecutor(max_workers=plan.workers)
        try:
            futures: list[Future[list[RetrievalScores]] | Future[AnswerScores]] = [
                *(pool.submit(self.retrieval_unit, case, [v for v in variants if v.top_k == k])
                  for case, k in retrieval_units),
                *(pool.submit(self.answer_unit, case, cfg) for case, cfg in answer_units),
            ]
            for future in as_completed(futures):
                result = future.result()
                if isinstance(result, AnswerScores):
                    answers_done.append(result)
                elif isinstance(result, list):
                    retrieval_done.extend(result)
                advance(1)
        finally:
            # On Ctrl-C, units not started are dropped; running ones finish and are checkpointed.
            pool.shutdown(wait=True, cancel_futures=True)
        return self.report(plan, started, variants, retrieval_done, answers_done)

    def report(
        self,
        plan: Plan,
        started: str,
        variants: list[RetrievalVariant],
        retrieval_done: list[RetrievalScores],
        answers_done: list[AnswerScores],
    ) -> RunReport:
        case_order = {c.id: i for i, c in enumerate(plan.testset.cases)}
        retrieval_done.sort(key=lambda s: case_order[s.case_id])
        answers_done.sort(key=lambda s: case_order[s.case_id])
        return RunReport(
            testset=plan.testset.name,
            provider=f"{self.generator.name} ({self.generator.flash_model}, {self.generator.pro_model})",
            collection=self.store.name,
            corpus_version=self.store.version,
            started=started,
            cases=len(plan.testset.cases),
            workers=plan.workers,
            problems=[str(p) for p in plan.testset.problems] + self.failures,
            retrieval=[
                retrieval_row(v.label, [s for s in retrieval_done if s.variant == v.label]) for v in variants
            ],
            answers=[
                answer_row(c.label, [s for s in answers_done if s.config == c.label]) for c in plan.configs
            ] if plan.answers else [],
            tags=[
                row for c in plan.configs
                for row in tag_rows(c.label, c.retrieval_label, answers_done, retrieval_done)
            ],
            retrieval_cases=retrieval_done,
            answer_cases=answers_done,
            notes=[f"Answers charged to session {self.session}: python -m rag costs --session {self.session}"]
            if plan.answers else [],
        )

    # --- retrieval ---

    def retrieval_unit(self, case: TestCase, variants: list[RetrievalVariant]) -> list[RetrievalScores]:
        key = unit_key("retrieval", self.environment, asdict(case), [v.label for v in variants])
        if (saved := self.checkpoint.get(key)) is not None:
            return [RetrievalScores(**s) for s in saved]
        try:
            question = self.chain.rewrite(case.question, history(case)).question
            scores = [self.score_retrieval(case, question, v) for v in variants]
        except GemragError as error:
            self.failures.append(f"case {case.id}: retrieval failed: {error}")
            return []
        self.checkpoint.add(key, [asdict(s) for s in scores])
        return scores

    def score_retrieval(self, case: TestCase, question: str, variant: RetrievalVariant) -> RetrievalScores:
        """hit@k and recall@k on the k passages the chain would show; MRR and nDCG on the
        first ten (a second search when k is not ten, since MMR's pick depends on k)."""
        shown = self.search(question, variant, variant.top_k)
        ranked = shown if variant.top_k >= NDCG_DEPTH else self.search(question, variant, NDCG_DEPTH)
        return RetrievalScores(
            case_id=case.id,
            variant=variant.label,
            hit=metrics.hit_at(shown, case.relevant, variant.top_k),
            recall=metrics.recall_at(shown, case.relevant, variant.top_k),
            mrr=metrics.reciprocal_rank(ranked[:NDCG_DEPTH], case.relevant),
            ndcg10=metrics.ndcg_at(ranked, case.relevant, NDCG_DEPTH),
            retrieved=[f"{f.source}#{f.page}" if f.page else f.source for f in shown],
        )

    def search(self, question: str, variant: RetrievalVariant, depth: int) -> list[metrics.Found]:
        query = Query(question, variant.mode, depth, variant.mmr, variant.rerank, per_file=self.per_file)
        return [found(h.chunk) for h in self.retriever.search(self.store, query).hits]

    # --- answers ---

    def answer_unit(self, case: TestCase, config: EvalConfig) -> AnswerScores:
        key = unit_key("answer", self.environment, asdict(case), config.label)
        if (saved := self.checkpoint.get(key)) is not None:
            return AnswerScores(**saved)
        try:
            # follow_ups 0: each case is asked on its own (a follow-up brings its history), so no
            # context cache is kept for questions the session will never ask.
            options = AskOptions(collection=self.store.name, mode=config.mode, top_k=config.top_k, mmr=config.mmr,
                                 rerank=config.rerank, follow_ups=0)
            record = self.chain_for(config.backend).ask(case.question, history(case), self.session, options)
            scores = self.score_answer(case, config, record)
        except GemragError as error:  # a quota or budget stop on one case keeps the others' results
            return failed(case, config, str(error))
        self.checkpoint.add(key, asdict(scores))
        return scores

    def score_answer(self, case: TestCase, config: EvalConfig, record: AnswerRecord) -> AnswerScores:
        cited = [metrics.Found(c.source, c.page, c.chunk_id) for c in record.citations]
        refused = metrics.is_refusal(record.answer)
        shown = self.shown(record)
        verdict = self.judged(case, record.answer, shown)
        answerable = not case.unanswerable
        quotes, multi_hop = [e.quote for e in case.evidence], MULTI_HOP in case.tags
        # Word overlap says nothing about a refusal, which claims nothing; a model judges it.
        faithfulness = None if refused and verdict.method == "lexical" else verdict.faithfulness
        return AnswerScores(
            case_id=case.id,
            config=config.label,
            answer=record.answer,
            unanswerable=case.unanswerable,
            tags=list(case.tags),
            exact_match=None if case.unanswerable else metrics.exact_match(record.answer, case.reference_answer),
            token_f1=None if case.unanswerable else metrics.token_f1(record.answer, case.reference_answer),
            citation_precision=None if case.unanswerable else metrics.citation_precision(cited, case.relevant),
            citation_recall=metrics.citation_recall(cited, case.relevant),
            refused=refused,
            faithfulness=faithfulness,
            correctness=verdict.correctness,
            judge=verdict.method,
            route="cached" if record.cached else record.route.kind,
            cost_usd=record.cost_usd,
            judge_cost_usd=sum(price_usd(self.settings, verdict.model, u) for u in (verdict.usage, *verdict.abandoned)),
            latency_s=record.latency_s,
            ttft_s=record.ttft_s,
            answer_in_reply=metrics.contains_answer(record.answer, case.reference_answer) if answerable else None,
            answer_in_top3=metrics.contains_answer(" ".join(p.text for p in shown[:3]), case.reference_answer)
            if answerable else None,
            supported_citations=supported_share(record.checks),
            uncited_facts=sum(c.verdict == "uncited" for c in record.checks),
            evidence_in_reply=metrics.contains_evidence(record.answer, quotes, every=multi_hop) if answerable else None,
            evidence_in_top3=metrics.contains_evidence(" \n\n".join(p.text for p in shown[:3]), quotes,
                                                       every=multi_hop) if answerable else None,
            question=case.question,
            expected=expected(case),
            cited=[f"{c.source} p. {c.page}" if c.page is not None else c.source for c in record.citations],
        )

    def judged(self, case: TestCase, answer: str, shown: list[Passage]) -> Verdict:
        """The judge's verdict, its call charged to the ledger beside the answers it judges,
        with its attempts that got no reply, also when it fails in the end (rag.chain.settling)."""
        ledger = self.chain.ledger
        with settling(ledger, ledger.reserve(self.session, 0.0)) as spending:
            verdict = judge(self.generator, case.question, case.reference_answer, metrics.without_note(answer),
                            shown, self.settings.lite_model)
            spending.called(verdict, "judge")
        return verdict

    def shown(self, record: AnswerRecord) -> list[Passage]:
        """The full passages the answer was generated from (the record keeps snippets), as
        retrieval showed them (`rag.sentences`). A File Search chunk is not in the local
        collection: its snippet stands for it."""
        chunks = {c.id: as_shown(c) for c in self.store.get([s.chunk_id for s in record.sources])}
        return [
            Passage(n=s.n, text=chunks[s.chunk_id].text if s.chunk_id in chunks else s.snippet, source=s.source,
                    page=s.page, chunk_id=s.chunk_id)
            for s in record.sources
        ]


def history(case: TestCase) -> list[Message]:
    return [Message("user", q) for q in case.history]


def found(chunk: Chunk) -> metrics.Found:
    return metrics.Found(chunk.source, chunk.page, chunk.id)


def failed(case: TestCase, config: EvalConfig, error: str) -> AnswerScores:
    return AnswerScores(
        case_id=case.id, config=config.label, answer="", unanswerable=case.unanswerable, tags=list(case.tags),
        exact_match=None, token_f1=None, citation_precision=None, citation_recall=None, refused=False,
        faithfulness=None, correctness=None, judge="none", route="error", cost_usd=0.0, judge_cost_usd=0.0,
        latency_s=0.0, ttft_s=0.0, error=error, question=case.question, expected=expected(case),
    )


def expected(case: TestCase) -> str:
    """The case's reference answer as the report shows it; for an unanswerable case, a refusal."""
    return "(a refusal: the documents do not say)" if case.unanswerable else case.reference_answer

