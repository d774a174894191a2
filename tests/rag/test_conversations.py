"""Server-kept conversations: every finished ask adds its turn, however many asks of one
session finish at once and on however many replicas, within the bound on history length."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from rag.conversations import MAX_MESSAGES, Conversations
from rag.settings import Settings


def _turns(conversations: Conversations, session: str) -> list[tuple[str, str]]:
    messages = conversations.history(session)
    assert [m.role for m in messages] == ["user", "model"] * (len(messages) // 2)
    return [(q.text, a.text) for q, a in zip(messages[::2], messages[1::2], strict=True)]


def test_asks_finishing_together_in_one_session_each_keep_their_turn(store_settings: Settings) -> None:
    """Two tabs or a double submit: one ask, then eight at once (the walkthrough that lost 3)."""
    conversations = Conversations(store_settings)
    conversations.append("alice/s", "q-first", "a-first")
    start = threading.Barrier(8)

    def ask(n: int) -> None:
        start.wait()
        conversations.append("alice/s", f"q{n}", f"a{n}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(ask, range(8)))
    turns = _turns(conversations, "alice/s")
    assert turns[0] == ("q-first", "a-first")
    assert sorted(turns[1:]) == sorted((f"q{n}", f"a{n}") for n in range(8))


def test_history_keeps_the_latest_turns(settings: Settings) -> None:
    conversations = Conversations(settings)
    for n in range(MAX_MESSAGES):
        conversations.append("s", f"q{n}", f"a{n}")
    assert _turns(conversations, "s") == [(f"q{n}", f"a{n}") for n in range(MAX_MESSAGES // 2, MAX_MESSAGES)]


def test_one_key_opening_many_sessions_evicts_no_other_keys_conversation(settings: Settings) -> None:
    """In one table of `cache_max_entries`, a key opening sessions by the thousand pushed every
    other key's conversation out (security walkthrough)."""
    conversations = Conversations(settings.model_copy(update={"cache_max_entries": 5}))
    conversations.append("alice/talk", "What is the refund window?", "30 days [1].")
    for n in range(20):
        conversations.append(f"mallory/s{n}", "spam", "answer")
    assert _turns(conversations, "alice/talk") == [("What is the refund window?", "30 days [1].")]
    assert _turns(conversations, "mallory/s19") and not _turns(conversations, "mallory/s0")  # its own bound holds


ASKER = """
import sys, time
from rag.conversations import Conversations
from rag.settings import Settings
conversations = Conversations(Settings(data_dir=sys.argv[1], redis_url=sys.argv[2] or None))
time.sleep(max(0.0, float(sys.argv[4]) - time.time()))
for n in range(5):
    for session in range(30):
        conversations.append(f"alice/s{session}", f"{sys.argv[3]}{n}", "answer")
"""


def test_asks_on_two_replicas_each_keep_their_turn(store_settings: Settings) -> None:
    """A load balancer spreading sessions: two processes append to each at the same moment."""
    args = [str(store_settings.data_dir), store_settings.redis_url or ""]
    at = repr(time.time() + 2.0)  # both start together, after their imports
    replicas = [subprocess.Popen([sys.executable, "-c", ASKER, *args, name, at]) for name in ("p", "q")]
    assert [r.wait(timeout=60) for r in replicas] == [0, 0]
    conversations = Conversations(store_settings)
    for session in range(30):
        questions = [q for q, _ in _turns(conversations, f"alice/s{session}")]
        assert sorted(questions) == sorted(f"{name}{n}" for name in ("p", "q") for n in range(5))
