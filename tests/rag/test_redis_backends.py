"""With REDIS_URL set, server replicas share one answer cache and one ledger, and Redis
holds no more than the configured bound."""

from __future__ import annotations

import pytest
import redis

from rag.answer import AnswerRecord, Route
from rag.cache import AnswerCache, cache_key
from rag.costs import Ledger
from rag.kv import RedisKV, StoreUnavailable, Table
from rag.settings import Settings
from rag.types import Usage

pytestmark = pytest.mark.redis


@pytest.fixture
def shared(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url})


def _record(n: int) -> AnswerRecord:
    route = Route("flash", "gemini-3.8-flash", "small context")
    return AnswerRecord(f"q{n}", f"q{n}", f"answer {n}", [], [], route, Usage(prompt_tokens=10), cost_usd=0.001)


def test_replicas_share_the_answer_cache_and_the_ledger(
    shared: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    replica_b = shared.model_copy(update={"data_dir": tmp_path_factory.mktemp("replica-b")})
    key = cache_key("q1", 1, "gemini-3.8-flash", "answer-1", {"top_k": 6})

    AnswerCache(shared).put(key, _record(1))
    Ledger(shared).charge("s1", "gemini-3.8-flash", Usage(prompt_tokens=1_000), "answer")

    hit = AnswerCache(replica_b).get(key)
    assert hit is not None and hit.answer == "answer 1"
    assert Ledger(replica_b).session("s1").usage.prompt_tokens == 1_000
    assert not (replica_b.data_dir / "cache.sqlite3").exists()


def test_redis_holds_no_more_than_the_size_bound(shared: Settings, redis_url: str) -> None:
    cache = AnswerCache(shared.model_copy(update={"cache_max_entries": 5}))
    for n in range(20):
        cache.put(cache_key(f"q{n}", 1, "m", "p", {}), _record(n))
    server = redis.Redis.from_url(redis_url)
    assert server.hlen("gemrag:cache:t:answers") == 5
    assert server.zcard("gemrag:cache:t:answers:age") == 5


def test_a_table_with_a_time_to_live_expires_whole_after_its_last_write(shared: Settings, redis_url: str) -> None:
    """So a table nobody writes any more (an account's conversations) leaves Redis; one
    without a time to live stays."""
    kv = RedisKV(redis_url, prefix="gemrag:test:")
    kv.put(Table("conversations/gone", ttl_s=100, max_entries=10), "k", b"v")
    kv.put(Table("forever", ttl_s=None, max_entries=10), "k", b"v")
    server = redis.Redis.from_url(redis_url)
    for key in ("gemrag:test:t:conversations/gone", "gemrag:test:t:conversations/gone:age"):
        assert 99_000 < server.pttl(key) <= 100_000
    assert server.pttl("gemrag:test:t:forever") == -1


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    kv = RedisKV("redis://:hunter2@127.0.0.1:1/0")
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1/0 \(REDIS_URL\).*unset it") as error:
        kv.counters("total")
    assert "hunter2" not in str(error.value)
