"""The Gemini path, against the fake Gemini server: batching, no calls for unchanged files,
429s survived with nothing lost, a spent quota or a bad key stopping cleanly."""

import pytest

from ingest.cli import main
from ingest.pipeline import ingest_paths
from ingest.report import Status
from ingest.spending import ledger_session
from rag.costs import Ledger
from rag.providers.gemini import GeminiProvider
from rag.store import Store
from rag.testing.fake_gemini import TEST_API_KEY, Fault
from tests.ingest.conftest import billed_embeddings, billed_tokens, snapshot

EMBED = "batchEmbedContents"


def _texts_sent(fake_gemini) -> int:
    return sum(len(r.body["requests"]) for r in fake_gemini.calls(EMBED))


def _clean_snapshot(gemini_settings, corpus):
    clean = gemini_settings.model_copy(update={"data_dir": gemini_settings.data_dir.parent / "clean"})
    provider = GeminiProvider(clean)
    ingest_paths([corpus.root], clean, provider)
    return snapshot(clean, provider.embedding_id)


def test_first_ingest_embeds_every_chunk_in_batches(corpus, gemini_settings, fake_gemini):
    provider = GeminiProvider(gemini_settings)
    report = ingest_paths([corpus.root], gemini_settings, provider)
    assert report.count(Status.ADDED) == 4 and report.exit_code == 0
    assert _texts_sent(fake_gemini) == report.chunks == Store(gemini_settings, provider.embedding_id).count()
    assert len(fake_gemini.calls(EMBED)) == 1  # one batch holds this small corpus
    request = fake_gemini.calls(EMBED)[0].body["requests"][0]
    assert request["taskType"] == "RETRIEVAL_DOCUMENT" and request["outputDimensionality"] == 768
    price = gemini_settings.models[gemini_settings.embedding_model].price.input
    spent = Ledger(gemini_settings).session(ledger_session("corpus"))
    assert spent.calls == 1 and spent.usage.prompt_tokens == billed_tokens(fake_gemini)
    assert report.cost_usd == pytest.approx(spent.cost_usd) and spent.cost_usd > 0
    assert spent.cost_usd == pytest.approx(billed_tokens(fake_gemini) * price / 1e6)


def test_an_embedding_attempt_abandoned_on_timeout_is_charged_with_its_retry(corpus, gemini_settings, fake_gemini):
    """Google may serve and bill a request the client stopped waiting for: the ledger held
    only the retry's batch."""
    settings = gemini_settings.model_copy(update={"request_timeout_s": 1.0})
    fake_gemini.inject(Fault.slow(1.5), times=1, method=EMBED)
    report = ingest_paths([corpus.root], settings, GeminiProvider(settings))
    assert report.exit_code == 0 and len(fake_gemini.calls(EMBED)) == 2
    answered = billed_tokens(fake_gemini, billed_embeddings(fake_gemini)[-1:])
    spent = Ledger(settings).session(ledger_session("corpus"))
    assert spent.calls == 2 and spent.usage.prompt_tokens == 2 * answered  # the same batch, twice
    assert report.cost_usd == pytest.approx(spent.cost_usd)


def test_unchanged_reingest_sends_no_embedding_request(corpus, gemini_settings, fake_gemini):
    provider = GeminiProvider(gemini_settings)
    ingest_paths([corpus.root], gemini_settings, provider)
    fake_gemini.clear_log()
    report = ingest_paths([corpus.root], gemini_settings, provider)
    assert fake_gemini.requests == []
    assert report.count(Status.UNCHANGED) == 4 and report.embedded_chunks == 0


def test_injected_429s_are_retried_and_nothing_is_lost_or_duplicated(corpus, gemini_settings, fake_gemini):
    settings = gemini_settings.model_copy(update={"ingest_batch_chunks": 2})
    stored_so_far = [0]

    def fault_per_batch(progress):
        if progress.chunks_done > stored_so_far[0]:
            stored_so_far[0] = progress.chunks_done
            fake_gemini.inject(Fault.rate_limited("0s"), times=1, method=EMBED)

    fake_gemini.inject(Fault.rate_limited("0s"), times=2, method=EMBED)
    fake_gemini.inject(Fault.server_error(503), times=1, method=EMBED)
    provider = GeminiProvider(settings)
    report = ingest_paths([corpus.root], settings, provider, on_progress=fault_per_batch)
    assert report.exit_code == 0 and report.count(Status.ADDED) == 4
    statuses = [r.status for r in fake_gemini.calls(EMBED)]
    assert statuses.count(503) == 1 and statuses.count(429) >= 3  # 2 at the start, more mid-run
    fake_gemini.clear_faults()
    assert snapshot(settings, provider.embedding_id) == _clean_snapshot(gemini_settings, corpus)


def test_a_spent_quota_stops_cleanly_and_the_rerun_completes(corpus, gemini_settings, fake_gemini):
    settings = gemini_settings.model_copy(update={"ingest_batch_chunks": 1})  # each file flushes alone
    provider = GeminiProvider(settings)

    def quota_runs_out_after_the_first_file(progress):
        if progress.files_done == 1 and fake_gemini.calls(EMBED)[-1].status != 429:
            fake_gemini.inject(Fault.rate_limited("0s"), times=None, method=EMBED)

    report = ingest_paths([corpus.root], settings, provider, on_progress=quota_runs_out_after_the_first_file)
    assert report.exit_code == 2 and report.stopped and "run the same command again" in report.stopped
    assert "quota" in report.stopped.lower()
    # The next windows' requests are in flight while the first is stored (at most two ahead),
    # so more files may have made it; whatever was embedded before the quota ran out is kept.
    added = {f.source for f in report.of(Status.ADDED)}
    assert "guide.md" in added and len(added) <= 3 and report.not_done == 4 - len(added)
    assert {c.source for c in Store(settings, provider.embedding_id).chunks()} == added
    fake_gemini.clear_faults()
    resumed = ingest_paths([corpus.root], settings, provider)
    assert resumed.exit_code == 0 and resumed.count(Status.UNCHANGED) == len(added)
    assert resumed.count(Status.ADDED) == 4 - len(added)
    assert snapshot(settings, provider.embedding_id) == _clean_snapshot(gemini_settings, corpus)


def test_a_rejected_key_stops_the_cli_with_exit_2_and_never_shows_the_key(
    corpus, gemini_settings, fake_gemini, monkeypatch, capsys
):
    fake_gemini.inject(Fault.invalid_key(), times=None, method=EMBED)
    monkeypatch.setenv("GEMINI_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("GEMRAG_BASE_URL", fake_gemini.url)
    monkeypatch.setenv("GEMRAG_TIER", "unlimited")
    monkeypatch.setenv("GEMRAG_REQUEST_TIMEOUT_S", "2")
    code = main([str(corpus.root), "--data-dir", str(gemini_settings.data_dir), "-q"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "rejected the API key" in out and "Set GEMINI_API_KEY" in out
    assert TEST_API_KEY not in out + err


def test_an_ingests_lines_from_its_own_threads_carry_the_id_it_runs_under(corpus, gemini_settings, fake_gemini):
    """A worker's job runs under job-<id>, but the embedding calls and store writes happen on the
    pipeline's own threads, whose 117 "call done" lines said "-" (operations walkthrough)."""
    import json

    from rag.logs import bound
    from tests.fakes.logs import captured_logs

    logged = gemini_settings.model_copy(update={"log_format": "json", "log_level": "info"})
    with captured_logs(logged) as out, bound("job-42"):
        assert ingest_paths([corpus.root], gemini_settings, GeminiProvider(gemini_settings)).exit_code == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    calls = [line for line in lines if line["message"].endswith("call done")]
    assert calls and {line["request_id"] for line in calls} == {"job-42"}
