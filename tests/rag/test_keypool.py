"""The key pool on its own: spreading calls, resting a key whose quota ran out (for the delay
the server asks), state shared through the store. The end-to-end rotation against the fake
Gemini server is in test_gemini_keys.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.genai import errors as genai_errors

from rag.keypool import KeyPool
from rag.kv import open_kv
from rag.settings import Settings
from tests.fakes.clock import ManualClock


def quota_error(delay: str | None = None) -> genai_errors.ClientError:
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}] if delay else []
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota", "details": details}}
    return genai_errors.ClientError(429, body)


class Client:
    """Stands in for one genai.Client: answers with its name, or raises what it is told to."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fail: Exception | None = None
        self.calls = 0

    def send(self) -> str:
        self.calls += 1
        if self.fail:
            raise self.fail
        return self.name

    def stream(self) -> Iterator[str]:
        self.calls += 1
        if self.fail:
            raise self.fail
        yield from (self.name, "more")


@pytest.fixture
def clients() -> list[Client]:
    return [Client("a"), Client("b"), Client("c")]


def pool(settings: Settings, clients: list[Client], clock: ManualClock) -> KeyPool:
    secrets = ["secret-a", "secret-b", "secret-c"]
    return KeyPool(clients, secrets, open_kv(settings, "ledger"), cooldown_s=60, clock=clock)


def test_calls_spread_across_keys(settings: Settings, clients: list[Client], clock: ManualClock) -> None:
    keys = pool(settings, clients, clock)
    served = [keys.call(Client.send) for _ in range(9)]
    assert sorted(served) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    assert keys.requests_today() == {"key 1": 3, "key 2": 3, "key 3": 3}


def test_a_spent_key_rests_for_the_servers_delay(settings: Settings, clients: list[Client], clock: ManualClock) -> None:
    keys = pool(settings, clients, clock)
    clients[0].fail = quota_error("30s")
    assert keys.call(Client.send) == "b"  # key 1 was tried first, failed, and the call moved on
    clients[0].fail = None
    assert {keys.call(Client.send) for _ in range(4)} == {"b", "c"}, "key 1 rests"
    clock.advance(31)
    assert "a" in {keys.call(Client.send) for _ in range(3)}


def test_every_key_spent_raises_the_quota_error(settings: Settings, clients: list[Client], clock: ManualClock) -> None:
    keys = pool(settings, clients, clock)
    for client in clients:
        client.fail = quota_error()
    with pytest.raises(genai_errors.ClientError):
        keys.call(Client.send)
    assert [c.calls for c in clients] == [1, 1, 1]


def test_other_errors_are_not_a_reason_to_switch(settings: Settings, clients: list[Client], clock: ManualClock) -> None:
    keys = pool(settings, clients, clock)
    clients[0].fail = genai_errors.ClientError(400, {"error": {"code": 400, "message": "bad request"}})
    with pytest.raises(genai_errors.ClientError):
        keys.call(Client.send)
    assert clients[1].calls == clients[2].calls == 0


def test_a_stream_moves_on_only_before_its_first_piece(
    settings: Settings, clients: list[Client], clock: ManualClock
) -> None:
    keys = pool(settings, clients, clock)
    clients[0].fail = quota_error()
    assert list(keys.stream(Client.stream)) == ["b", "more"]


def test_state_is_shared_by_every_pool_on_the_same_store(
    settings: Settings, clients: list[Client], clock: ManualClock
) -> None:
    first, second = pool(settings, clients, clock), pool(settings, clients, clock)
    clients[0].fail = quota_error("120s")
    first.call(Client.send)
    clients[0].fail = None
    assert "a" not in {second.call(Client.send) for _ in range(4)}


def test_no_secret_reaches_the_store(settings: Settings, clients: list[Client], clock: ManualClock) -> None:
    keys = pool(settings, clients, clock)
    clients[0].fail = quota_error()
    keys.call(Client.send)
    stored = b"".join(p.read_bytes() for p in settings.data_dir.rglob("*") if p.is_file())
    assert b"secret-" not in stored
