"""Gemini's Batch API for embeddings: `batches.create_embeddings`, `batches.get`, `batches.list`.

A batch job costs half the online price (the catalogue's `batch_discount`) and finishes
within a day instead of seconds, which suits ingesting a large corpus. Texts go inline in
the create request (the API takes up to 20 MB that way); the vectors come back inline in
the finished job, in request order, each with the tokens it counted.

Jobs belong to the Google project of the key that created them, so every job call goes
through the first configured key (the key pool's rotation would ask another project, which
does not know the job). Calls are retried like every other Gemini call, except a create
that got no answer (a timeout, a dropped connection): the server may still be creating the
job, so sending it again could make two. That create stops the run instead, and the next
run finds the job by its display name (ingest.batchjobs). A create retried after an error
answer also looks for the job first.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import httpx
import httpx2
from google import genai
from google.genai import types

from rag.errors import ProviderError
from rag.providers.base import JobState, JobStatus
from rag.providers.gemini import GeminiProvider, normalised

_STATES: dict[types.JobState, JobState] = {
    types.JobState.JOB_STATE_SUCCEEDED: "succeeded",
    types.JobState.JOB_STATE_PARTIALLY_SUCCEEDED: "succeeded",  # failed requests are None vectors
    types.JobState.JOB_STATE_FAILED: "failed",
    types.JobState.JOB_STATE_EXPIRED: "expired",
    types.JobState.JOB_STATE_CANCELLED: "cancelled",
    types.JobState.JOB_STATE_QUEUED: "pending",
    types.JobState.JOB_STATE_PENDING: "pending",
}


class GeminiEmbeddingJobs:
    """The EmbeddingJobs of a GeminiProvider: the same model, dimensions, retries and key."""

    def __init__(self, provider: GeminiProvider) -> None:
        self.provider = provider
        self.embedding_model = provider.embedding_model
        self.client: genai.Client = provider.keys.clients[0]

    def submit(self, texts: Sequence[str], display_name: str) -> str:
        model = self.embedding_model
        contents: list[types.PartUnion] = list(texts)
        source = types.EmbeddingsBatchJobSource(
            inlined_requests=types.EmbedContentBatch(
                contents=contents,
                config=types.EmbedContentConfig(
                    task_type="RETRIEVAL_DOCUMENT", output_dimensionality=self.provider.embedding_dim
                ),
            )
        )
        tried = False

        def attempt(left: float) -> str:
            nonlocal tried
            if tried:  # the last try may have created the job before failing
                found = self.find(display_name)
                if found:
                    return found
            tried = True
            config = types.CreateEmbeddingsBatchJobConfig(
                display_name=display_name, http_options=self.provider._http_options(left)
            )
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=r"batches\.create_embeddings\(\) is experimental")
                    job = self.client.batches.create_embeddings(model=model, src=source, config=config)
            except (httpx.TransportError, httpx2.TransportError) as exc:  # timeouts included
                raise ProviderError(
                    f"The Batch API did not answer the creation of job {display_name} ({type(exc).__name__}); "
                    "it may exist all the same: the next run looks for it before submitting anything.",
                    model=model,
                ) from exc
            if not job.name:
                raise ProviderError(f"{model}: the Batch API accepted a job but gave no name.", model=model)
            return job.name

        return self.provider.retrier.call(model, attempt)

    def find(self, display_name: str) -> str | None:
        """The job submitted under `display_name` by this key's project, if any."""

        def attempt(left: float) -> str | None:
            config = types.ListBatchJobsConfig(page_size=100, http_options=self.provider._http_options(left))
            return next(
                (job.name for job in self.client.batches.list(config=config) if job.display_name == display_name),
                None,
            )

        return self.provider.retrier.call("batches.list", attempt)

    def status(self, name: str) -> JobStatus:
        """A job the API no longer knows (404: deleted, or past its retention) counts as
        expired: its results are gone, whatever it did."""

        def attempt(left: float) -> types.BatchJob:
            config = types.GetBatchJobConfig(http_options=self.provider._http_options(left))
            return self.client.batches.get(name=name, config=config)

        try:
            job = self.provider.retrier.call("batches.get", attempt)
        except ProviderError as exc:
            if exc.status == 404:
                return JobStatus(name, "expired")
            raise
        state = _STATES.get(job.state, "running") if job.state else "pending"
        if state != "succeeded":
            return JobStatus(name, state)
        responses = (job.dest.inlined_embed_content_responses if job.dest else None) or []
        vectors: list[list[float] | None] = []
        tokens = 0
        for item in responses:
            values = item.response.embedding.values if item.response and item.response.embedding else None
            ok = item.error is None and values is not None and len(values) == self.provider.embedding_dim
            vectors.append(list(values) if ok and values is not None else None)
            tokens += (item.response.token_count or 0) if ok and item.response else 0
        unit = normalised([v for v in vectors if v is not None])
        it = iter(unit)
        return JobStatus(name, "succeeded", tuple(next(it) if v is not None else None for v in vectors), tokens)
