"""One Gemini rate limiter for every replica and worker, in Redis.

The API's limits (requests/min, tokens/min, requests/day per model) belong to the Google
project, not to a process, so with `REDIS_URL` set every process draws on the same counts.
A call that does not fit waits in a fair queue: one queue per session, served round robin,
so one session's burst cannot starve the others. The wait is bounded
(`queue_max_wait_s`, or less if the call's deadline is nearer); past it the call fails with
QuotaExhausted carrying `retry_after_s`, which the API answers as 429 with Retry-After. A
spent day fails at once, as in the per-process limiter (rag/ratelimit.py).

All decisions happen in one Lua script, atomically, on Redis' own clock (replicas' clocks may
differ). Every waiter's poll also dispatches: it grants, in round-robin order, as many
queued calls as the windows allow, so a freed slot goes to the next session in turn rather
than to whoever polls first. A waiter that stops polling (its process died) is dropped from
the queue after `ALIVE_MS`.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable

from rag.kv import StoreUnavailable, redis_client
from rag.ratelimit import WINDOW, Quota, WaitObserver, current_session, predicted_quota, quota_exhausted
from rag.settings import Settings

ALIVE_MS = 2_000  # a queued call not polled for this long is forgotten
POLL_MIN_S, POLL_MAX_S = 0.01, 0.25

_SCRIPT = """
local base = KEYS[1]
local op, ticket, session = ARGV[1], ARGV[2], ARGV[3]
local tokens, rpm, tpm, rpd, alive_ms = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[7]), tonumber(ARGV[8])
local MINUTE = tonumber(ARGV[9])
local t = redis.call("time")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local DAY = 86400000
local req, day, ring, alive, info = base .. ":req", base .. ":day", base .. ":ring", base .. ":alive", base .. ":info"

local function queue_of(s) return base .. ":q:" .. s end
local function tokens_of(member) return tonumber(string.match(member, "|(%d+)$")) end
local function forget(tk)
  local meta = redis.call("hget", info, tk)
  if meta then
    local s = string.match(meta, "^(.*)|")
    redis.call("lrem", queue_of(s), 0, tk)
    if redis.call("llen", queue_of(s)) == 0 then redis.call("lrem", ring, 0, s) end
  end
  redis.call("hdel", info, tk)
  redis.call("zrem", alive, tk)
end

redis.call("zremrangebyscore", req, "-inf", now - MINUTE)
redis.call("zremrangebyscore", day, "-inf", now - DAY)
for _, tk in ipairs(redis.call("zrangebyscore", alive, "-inf", now)) do forget(tk) end

if op == "quota" then
  return {redis.call("zcard", day), redis.call("zcard", req), redis.call("zcard", alive)}
end
if op == "cancel" then
  forget(ticket)
  redis.call("del", base .. ":granted:" .. ticket)
  return {0, 0, 0}
end
if rpd > 0 and redis.call("zcard", day) >= rpd then
  forget(ticket)
  local oldest = redis.call("zrange", day, 0, 0, "withscores")
  return {-1, tonumber(oldest[2]) + DAY - now, 0}
end
if redis.call("zscore", alive, ticket) == false then
  redis.call("hset", info, ticket, session .. "|" .. tokens)
  redis.call("rpush", queue_of(session), ticket)
  if redis.call("llen", queue_of(session)) == 1 then redis.call("rpush", ring, session) end
end
redis.call("zadd", alive, now + alive_ms, ticket)

local count, used = redis.call("zcard", req), 0
for _, member in ipairs(redis.call("zrange", req, 0, -1)) do used = used + tokens_of(member) end
local hint = 0
while true do
  local s = redis.call("lindex", ring, 0)
  if not s then break end
  local tk = redis.call("lindex", queue_of(s), 0)
  local need = tokens_of(redis.call("hget", info, tk))
  if tpm > 0 then need = math.min(need, tpm) end
  if rpd > 0 and redis.call("zcard", day) >= rpd then break end
  if rpm > 0 and count >= rpm then
    local oldest = redis.call("zrange", req, 0, 0, "withscores")
    hint = tonumber(oldest[2]) + MINUTE - now
    break
  end
  if tpm > 0 and used + need > tpm then
    local left = used
    local flat = redis.call("zrange", req, 0, -1, "withscores")
    for i = 1, #flat, 2 do
      left = left - tokens_of(flat[i])
      if left + need <= tpm then hint = tonumber(flat[i + 1]) + MINUTE - now break end
    end
    break
  end
  redis.call("zadd", req, now, tk .. "|" .. need)
  redis.call("zadd", day, now, tk)
  count, used = count + 1, used + need
  redis.call("set", base .. ":granted:" .. tk, "1", "PX", MINUTE)
  redis.call("lpop", queue_of(s))
  redis.call("lpop", ring)
  if redis.call("llen", queue_of(s)) > 0 then redis.call("rpush", ring, s) end
  redis.call("hdel", info, tk)
  redis.call("zrem", alive, tk)
end
if redis.call("del", base .. ":granted:" .. ticket) == 1 then
  return {1, 0, redis.call("zcard", alive)}
end
return {0, hint, redis.call("zcard", alive)}
"""


def per_minute(rpm: int | None, tpm: int | None) -> str:
    parts = [f"{rpm} requests/min" if rpm else "", f"{tpm} tokens/min" if tpm else ""]
    return " and ".join(p for p in parts if p) or "the daily limit"


class GlobalRateLimiter:
    """Same interface as rag.ratelimit.RateLimiter; shared by every process on one Redis."""

    def __init__(
        self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep, window_s: float = WINDOW
    ) -> None:
        """`window_s`: the length of the per-minute windows; tests shorten it."""
        self.settings = settings
        self.window_ms = int(window_s * 1000)
        self.observers: list[WaitObserver] = []
        self._sleep = sleep
        self._redis = redis_client(settings.redis_url)  # type: ignore[arg-type]  # checked by the caller
        self._script = self._redis.register_script(_SCRIPT)

    def acquire(self, model: str, tokens: int = 0, *, max_wait_s: float | None = None) -> float:
        limit = self.settings.limit_for(model)
        if limit.rpm is None and limit.tpm is None and limit.rpd is None:
            return 0.0
        bound = min(self.settings.queue_max_wait_s, math.inf if max_wait_s is None else max_wait_s)
        ticket, session = uuid.uuid4().hex, current_session.get() or "-"
        args = [ticket, session, tokens, limit.rpm or 0, limit.tpm or 0, limit.rpd or 0, ALIVE_MS]
        started = time.monotonic()
        while True:
            granted, hint_ms, _ = self._run(model, "acquire", *args)
            waited = time.monotonic() - started
            if granted == 1:
                for observe in self.observers:
                    observe(model, waited)
                return waited
            if granted == -1:
                raise quota_exhausted(
                    model, self.settings.tier,
                    f"the daily limit of {limit.rpd} requests is used up (counted across all replicas over 24 h)",
                    retry_after_s=hint_ms / 1000,
                )
            if waited >= bound:
                self._run(model, "cancel", *args)
                raise quota_exhausted(
                    model, self.settings.tier,
                    f"no slot under {per_minute(limit.rpm, limit.tpm)} (shared by all replicas) "
                    f"came free within the {bound:.0f} s a call may wait",
                    retry_after_s=max(1.0, hint_ms / 1000),
                )
            self._sleep(min(max(hint_ms / 1000, POLL_MIN_S), POLL_MAX_S, max(bound - waited, POLL_MIN_S)))

    def quota(self, model: str) -> Quota:
        limit = self.settings.limit_for(model)
        today, last_minute, waiting = self._run(model, "quota", "", "", 0, 0, 0, 0, ALIVE_MS)
        return predicted_quota(model, today, limit.rpd, last_minute, waiting)

    def _run(self, model: str, op: str, *args: object) -> list[int]:
        import redis

        try:
            # As redis-py would encode them: numbers by their text.
            reply = self._script(keys=[f"gemrag:limit:{model}"], args=[op, *map(str, args), str(self.window_ms)])
            return [int(x) for x in reply]
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Cannot use Redis (REDIS_URL) for the global rate limit: {exc}") from exc
