"""Several Gemini keys against the fake server: one key's quota runs out, the answer comes
from the other key at once, the spent key rests, and neither key appears in any log line."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini, Fault
from rag.types import Prompt
from tests.fakes.logs import captured_logs

SECOND_KEY = "second-key-PLANTED-77aa"


@pytest.fixture
def two_keys(gemini_settings: Settings) -> Settings:
    return gemini_settings.model_copy(update={"extra_api_keys": [SecretStr(SECOND_KEY)], "log_level": "info"})


@pytest.fixture
def log_text(two_keys: Settings) -> Iterator[io.StringIO]:
    with captured_logs(two_keys) as out:
        yield out


def keys_used(fake: FakeGemini) -> list[str]:
    return [r.headers["x-goog-api-key"] for r in fake.calls("streamGenerateContent")]


def test_a_spent_key_hands_the_answer_to_the_other(
    two_keys: Settings, fake_gemini: FakeGemini, log_text: io.StringIO
) -> None:
    fake_gemini.inject(Fault.rate_limited("30s"), times=None, key=TEST_API_KEY)
    provider = GeminiProvider(two_keys)
    answers = ["".join(d.text for d in provider.stream(Prompt.of(f"question {i}"))) for i in range(3)]
    assert all(answers)
    used = keys_used(fake_gemini)
    # The first question tried the main key, met its 429 and went to the second at once; after
    # that the main key rests and is not tried again within its 30 s.
    assert used[:2] == [TEST_API_KEY, SECOND_KEY]
    assert used[2:] == [SECOND_KEY, SECOND_KEY]
    assert provider.keys.requests_today() == {"key 1": 1, "key 2": 3}
    logged = log_text.getvalue()
    assert "call done" in logged
    assert TEST_API_KEY not in logged and SECOND_KEY not in logged


def test_load_is_spread_across_keys(two_keys: Settings, fake_gemini: FakeGemini) -> None:
    provider = GeminiProvider(two_keys)
    for i in range(4):
        provider.generate(Prompt.of(f"q{i}"))
    used = [r.headers["x-goog-api-key"] for r in fake_gemini.calls("generateContent")]
    assert sorted(used) == sorted([TEST_API_KEY, SECOND_KEY] * 2)


def test_rate_limits_scale_with_the_keys(two_keys: Settings) -> None:
    free = two_keys.model_copy(update={"tier": "free"})
    one = free.model_copy(update={"extra_api_keys": []})
    single, double = one.limit_for(free.flash_model), free.limit_for(free.flash_model)
    assert single.rpd and double.rpd == 2 * single.rpd
    assert (single.rpm is None) == (double.rpm is None)
