"""Several Gemini keys against the fake server: one key's quota runs out, the answer comes
from the other key at once, the spent key rests, and neither key appears in any log line; a
key Gemini rejects leaves the pool with one warning naming its position."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from rag.errors import InvalidKey
from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini, Fault
from rag.types import Prompt
from tests.fakes.gemini_cli import gemini_env, run
from tests.fakes.logs import captured_logs
from tests.fakes.tiny_corpus import build_store

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


BAD_KEY = "third-key-PLANTED-bad-31cc"


@pytest.fixture
def three_keys(gemini_settings: Settings) -> Settings:
    """Key 3 (entry 2 of GEMINI_API_KEYS) is one Gemini rejects."""
    return gemini_settings.model_copy(update={"extra_api_keys": [SecretStr(SECOND_KEY), SecretStr(BAD_KEY)]})


def test_a_rejected_key_leaves_the_pool_and_the_call_moves_on(
    three_keys: Settings, fake_gemini: FakeGemini
) -> None:
    fake_gemini.inject(Fault.invalid_key(), times=None, key=BAD_KEY)
    with captured_logs(three_keys) as out:
        first, second = GeminiProvider(three_keys), GeminiProvider(three_keys)  # e.g. embedder and generator
        answers = [p.generate(Prompt.of(f"q{i}")).text for i in range(4) for p in (first, second)]
    assert all(answers)
    used = [r.headers["x-goog-api-key"] for r in fake_gemini.calls("generateContent")]
    assert used.count(BAD_KEY) == 1, "tried once in the process, then out of every pool"
    assert used.count(TEST_API_KEY) and used.count(SECOND_KEY)
    logged = out.getvalue()
    assert logged.count("Gemini rejected key 3 of 3 (set as entry 2 of GEMINI_API_KEYS)") == 1, logged
    assert BAD_KEY not in logged and TEST_API_KEY not in logged and SECOND_KEY not in logged


def test_only_every_key_rejected_fails_naming_each_by_position(
    three_keys: Settings, fake_gemini: FakeGemini
) -> None:
    fake_gemini.inject(Fault.invalid_key(), times=None)
    with pytest.raises(InvalidKey) as refused:
        GeminiProvider(three_keys).generate(Prompt.of("q"))
    message = str(refused.value)
    assert (
        "key 1 (GEMINI_API_KEY), key 2 (entry 1 of GEMINI_API_KEYS), key 3 (entry 2 of GEMINI_API_KEYS)" in message
    )
    assert not any(key in message for key in (TEST_API_KEY, SECOND_KEY, BAD_KEY))
    assert len(fake_gemini.calls("generateContent")) == 3, "each key once: a rejection is not retried"
    with pytest.raises(InvalidKey):
        GeminiProvider(three_keys).generate(Prompt.of("again"))
    assert len(fake_gemini.calls("generateContent")) == 3, "no key left to send it with"


@pytest.mark.slow
def test_python_m_rag_ask_answers_past_a_rejected_extra_key(gemini_settings: Settings, fake_gemini: FakeGemini) -> None:
    build_store(gemini_settings, GeminiProvider(gemini_settings))
    env = gemini_env(fake_gemini, gemini_settings.data_dir, collection="tiny-corpus")
    env["GEMINI_API_KEYS"] = f"{BAD_KEY},{SECOND_KEY}"
    fake_gemini.inject(Fault.invalid_key(), times=None, key=BAD_KEY)
    done = run("rag", "ask", "How many days of paid vacation do employees get?", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("Gemini rejected key 2 of 3 (set as entry 1 of GEMINI_API_KEYS)") == 1, done.stderr
    assert BAD_KEY in [r.headers["x-goog-api-key"] for r in fake_gemini.requests], "the bad key was met"
    assert BAD_KEY not in done.stderr + done.stdout
