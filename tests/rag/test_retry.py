"""Retries and typed failures, driven through the real google-genai client against the fake
server. Waits go through a recording sleep on a manual clock, so delays are checked exactly."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import pytest

from rag.errors import GemragError, InvalidKey, ProviderError, QuotaExhausted, StreamInterrupted
from rag.providers.gemini import GeminiProvider
from rag.retry import Retrier, classify
from rag.settings import Settings
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini, Fault, Reply
from rag.types import Prompt, Usage, estimate_tokens
from tests.fakes.clock import ManualClock
from tests.fakes.sleeper import RecordingSleep

FLASH = Settings().flash_model
LONG = "one two three four five six seven eight nine ten eleven twelve"


class Harness:
    """A provider whose retrier sleeps on a manual clock."""

    def __init__(self, settings: Settings) -> None:
        self.clock = ManualClock()
        self.sleep = RecordingSleep(self.clock)
        self.provider = GeminiProvider(settings, retrier=Retrier(settings, sleep=self.sleep, clock=self.clock))


@pytest.fixture
def make(gemini_settings: Settings) -> Callable[..., Harness]:
    def build(**overrides: object) -> Harness:
        return Harness(gemini_settings.model_copy(update=overrides))

    return build


def test_429_waits_the_servers_retry_delay(make: Callable[..., Harness], fake_gemini: FakeGemini) -> None:
    h = make(max_attempts=5, deadline_s=60)
    fake_gemini.inject(Fault.rate_limited("2.5s"), times=2)
    assert h.provider.generate(Prompt.of("hello")).text
    assert len(h.sleep.waits) == 2
    assert all(2.5 <= w <= 2.5 * 1.1 for w in h.sleep.waits)  # the delay, plus at most 10% jitter
    assert [r.status for r in fake_gemini.requests] == [429, 429, 200]


@pytest.mark.parametrize("code", [500, 503, 504])
def test_server_errors_are_retried_with_growing_jittered_backoff(
    make: Callable[..., Harness], fake_gemini: FakeGemini, code: int
) -> None:
    h = make(max_attempts=6, backoff_initial_s=1.0, backoff_max_s=4.0, deadline_s=60)
    fake_gemini.inject(Fault.server_error(code), times=4)
    assert h.provider.generate(Prompt.of("hello")).text
    bounds = [(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (2.0, 4.0)]  # base/2..base, base capped at 4 s
    assert [lo <= w <= hi for w, (lo, hi) in zip(h.sleep.waits, bounds, strict=True)] == [True] * 4
    assert len(fake_gemini.requests) == 5


def test_retries_stop_at_max_attempts_with_a_typed_error(
    make: Callable[..., Harness], fake_gemini: FakeGemini
) -> None:
    h = make(max_attempts=3)
    fake_gemini.inject(Fault.server_error(503), times=None)
    with pytest.raises(ProviderError) as caught:
        h.provider.generate(Prompt.of("hello"))
    assert type(caught.value) is ProviderError
    assert caught.value.status == 503 and caught.value.model == FLASH
    assert "503 UNAVAILABLE" in str(caught.value) and "after 3 attempts" in str(caught.value)
    assert len(fake_gemini.requests) == 3


def test_persistent_429_becomes_quota_exhausted_saying_what_to_do(
    make: Callable[..., Harness], fake_gemini: FakeGemini
) -> None:
    h = make(max_attempts=3, tier="tier1")
    fake_gemini.inject(Fault.rate_limited("1s"), times=None)
    with pytest.raises(QuotaExhausted) as caught:
        h.provider.generate(Prompt.of("hello"))
    message = str(caught.value)
    assert FLASH in message and "'tier1' tier" in message
    assert "Wait" in message and "concurrency" in message and "gemrag.toml" in message


def test_retry_delay_past_the_deadline_fails_now_instead_of_sleeping(
    make: Callable[..., Harness], fake_gemini: FakeGemini
) -> None:
    h = make(deadline_s=10)
    fake_gemini.inject(Fault.rate_limited("30s"))
    with pytest.raises(QuotaExhausted, match="would pass the 10 s deadline"):
        h.provider.generate(Prompt.of("hello"))
    assert h.sleep.waits == [] and len(fake_gemini.requests) == 1


def test_a_calls_own_deadline_is_the_one_its_message_names(
    make: Callable[..., Harness], fake_gemini: FakeGemini
) -> None:
    """The reranker's call has 5 s: its failure said "would pass the 180 s deadline"."""
    h = make(deadline_s=180)
    fake_gemini.inject(Fault.rate_limited("30s"))
    with pytest.raises(QuotaExhausted, match="would pass the 5 s deadline") as caught:
        h.provider.generate(Prompt.of("hello", deadline_s=5))
    assert "180" not in str(caught.value) and h.sleep.waits == []


def test_deadline_bounds_a_hung_server(gemini_settings: Settings, fake_gemini: FakeGemini) -> None:
    settings = gemini_settings.model_copy(update={"request_timeout_s": 0.3, "deadline_s": 1.0, "max_attempts": 50})
    fake_gemini.inject(Fault.slow(5.0), times=None)
    started = time.monotonic()
    with pytest.raises(ProviderError, match=r"request timeout|deadline"):
        GeminiProvider(settings).generate(Prompt.of("hello"))
    # Generous bound (slow CI machines); without a deadline 50 attempts would take 15 s.
    assert time.monotonic() - started < 3.0
    assert 2 <= len(fake_gemini.requests) <= 6


def test_invalid_key_is_not_retried(make: Callable[..., Harness], fake_gemini: FakeGemini) -> None:
    h = make()
    fake_gemini.inject(Fault.invalid_key())
    with pytest.raises(InvalidKey, match="Set GEMINI_API_KEY to a valid key"):
        h.provider.generate(Prompt.of("hello"))
    assert len(fake_gemini.requests) == 1 and h.sleep.waits == []


@pytest.mark.parametrize("code", [401, 403])
def test_unauthorised_and_forbidden_are_key_errors(
    make: Callable[..., Harness], fake_gemini: FakeGemini, code: int
) -> None:
    fake_gemini.inject(Fault(code, "PERMISSION_DENIED", "Permission denied."))
    with pytest.raises(InvalidKey):
        make().provider.embed_query("hello")
    assert len(fake_gemini.requests) == 1


def test_malformed_json_is_retried_like_a_5xx_then_a_clear_provider_error(
    make: Callable[..., Harness], fake_gemini: FakeGemini
) -> None:
    h = make(max_attempts=3)
    fake_gemini.inject(Fault.malformed_json(), times=2)
    assert h.provider.generate(Prompt.of("hello")).text
    assert len(fake_gemini.requests) == 3 and len(h.sleep.waits) == 2
    fake_gemini.inject(Fault.malformed_json(), times=None)
    with pytest.raises(ProviderError, match="malformed JSON; after 3 attempts"):
        list(h.provider.stream(Prompt.of("hello")))


def test_stream_cut_after_text_is_interrupted_and_not_retried(
    make: Callable[..., Harness], fake_gemini: FakeGemini
) -> None:
    h = make()
    fake_gemini.reply(LONG)
    fake_gemini.inject(Fault.cut_stream(after_chunks=2))
    shown: list[str] = []
    with pytest.raises(StreamInterrupted, match="broke off mid-way"):
        shown.extend(d.text for d in h.provider.stream(Prompt.of("count")))
    assert "".join(shown) == "one two three four five six seven eight "
    assert len(fake_gemini.requests) == 1


def test_stream_cut_before_any_text_is_retried(make: Callable[..., Harness], fake_gemini: FakeGemini) -> None:
    h = make()
    fake_gemini.reply(LONG, LONG)  # the cut attempt consumes the first
    fake_gemini.inject(Fault.cut_stream(after_chunks=0))
    deltas = list(h.provider.stream(Prompt.of("count")))
    assert "".join(d.text for d in deltas) == LONG
    assert deltas[-1].final and deltas[-1].usage.output_tokens == 12
    assert len(fake_gemini.requests) == 2 and len(h.sleep.waits) == 1


def test_attempts_that_got_no_reply_are_handed_on_to_be_charged_refused_ones_are_not(
    make: Callable[..., Harness], fake_gemini: FakeGemini
) -> None:
    """A 503 did no work and is not billed; a reply broken in transit or a stream dropped
    before its text may have been served and billed, so each goes on to the caller's ledger."""
    h = make(max_attempts=3)
    prompt = Prompt.of("hello")
    one = Usage(prompt_tokens=estimate_tokens(prompt.text))
    fake_gemini.inject(Fault.server_error(503), times=2)
    assert h.provider.generate(prompt).abandoned == ()
    fake_gemini.inject(Fault.malformed_json(), times=2)
    assert h.provider.generate(prompt).abandoned == (one, one)
    fake_gemini.reply(LONG, LONG)
    fake_gemini.inject(Fault.cut_stream(after_chunks=0))
    assert [d.abandoned for d in h.provider.stream(prompt) if d.final] == [(one,)]
    fake_gemini.inject(Fault.malformed_json(), times=None)
    with pytest.raises(ProviderError) as caught:
        h.provider.generate(prompt)
    assert caught.value.abandoned == (one, one, one)


def test_attempts_that_never_connected_are_not_charged(gemini_settings: Settings) -> None:
    """A refused connection sent nothing, yet each attempt was charged its prompt as if the
    API might have served it: 4 calls to a dead address cost a session $0.0193 of nothing."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # closed again before anyone listens: connections are refused
    h = Harness(gemini_settings.model_copy(update={"base_url": f"http://127.0.0.1:{dead}", "max_attempts": 3}))
    with pytest.raises(ProviderError, match="could not connect") as caught:
        h.provider.generate(Prompt.of("hello"))
    assert caught.value.abandoned == ()
    assert len(h.sleep.waits) == 2  # still retried: the network may come back


def test_stream_429_on_open_is_retried(make: Callable[..., Harness], fake_gemini: FakeGemini) -> None:
    h = make()
    fake_gemini.reply(Reply("fine"))
    fake_gemini.inject(Fault.rate_limited("0.5s"), method="streamGenerateContent")
    assert "".join(d.text for d in h.provider.stream(Prompt.of("x"))) == "fine"
    assert h.sleep.waits and 0.5 <= h.sleep.waits[0] <= 0.55


def test_the_key_never_appears_in_errors_or_logs(
    make: Callable[..., Harness], fake_gemini: FakeGemini, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = make(max_attempts=2)
    echo = Fault(400, "INVALID_ARGUMENT", f"API key {TEST_API_KEY} not valid.", reason="API_KEY_INVALID")
    cases: list[tuple[Fault, Callable[[], object]]] = [
        (echo, lambda: h.provider.generate(Prompt.of("x"))),
        (Fault(503, "UNAVAILABLE", f"overloaded for {TEST_API_KEY}"), lambda: h.provider.generate(Prompt.of("x"))),
        (Fault.rate_limited("0s"), lambda: h.provider.embed_documents(["a", "b"])),
        (Fault.malformed_json(), lambda: h.provider.count_tokens("x")),
        (Fault.cut_stream(1), lambda: list(h.provider.stream(Prompt.of(LONG)))),
    ]
    for fault, call in cases:
        fake_gemini.inject(fault, times=None)
        with pytest.raises(GemragError) as caught:
            call()
        fake_gemini.clear_faults()
        err = caught.value
        for text in (str(err), repr(err), str(err.args)):
            assert TEST_API_KEY not in text
    assert "[redacted]" in caplog.text  # the 503's message was logged, scrubbed
    assert TEST_API_KEY not in caplog.text
    assert TEST_API_KEY not in repr(h.provider) and TEST_API_KEY not in repr(h.provider.settings)


def test_our_own_errors_pass_through_unretried() -> None:
    assert classify(QuotaExhausted("daily limit")) is None
    assert classify(KeyError("bug")) is None
