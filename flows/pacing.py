"""Per-org pacing, shared by every worker on every machine.

A cap on concurrent calls to each org (Salesforce allows 25 long-running requests per org, 5 on Developer
Edition) is a semaphore in Redis: a sorted set of slot holders scored by when their lease ends, so a worker
killed while holding a slot frees it when its lease runs out. Without a Redis cache (the embedded default of
`make run`), there is no cap: one machine, a few threads.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from .models import Org

# Drops expired holders, then takes a slot if fewer than the limit are held. Atomic: one script, one server.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""
POLL_SECONDS = 0.02


def _redis():
    backend = caches["default"]
    return backend._cache.get_client(write=True) if isinstance(backend, RedisCache) else None


def _acquire_script(client: Any) -> Any:
    # Registered once per client (flows.cache reuses clients): registering hashes the script each time.
    script = getattr(client, "_flowgate_acquire", None)
    if script is None:
        script = client._flowgate_acquire = client.register_script(_ACQUIRE)
    return script


# Kept at the end of every lease for writing the result: no call starts that could end later than this before it.
SETTLE_SECONDS = 5.0


def call_seconds() -> float:
    """The longest one call to Salesforce can take: its connect and read timeouts, capped in total (the client
    passes urllib3 a total timeout)."""
    return settings.FLOWGATE_HTTP_CONNECT_TIMEOUT + settings.FLOWGATE_HTTP_READ_TIMEOUT


def lease_seconds() -> float:
    """How long one dispatch may hold a slot or a SENDING claim: three calls (a token request and an invoke, or
    after a 401 an invoke, a new token and the invoke again), each capped at call_seconds(), and SETTLE_SECONDS
    to write the result. Waiting for another process's token request counts against it too: the client starts no
    call, and stops waiting, when what is left could not hold a whole call (the dispatch then ends, nothing sent,
    and is retried). So a live worker is always done before its lease runs out; a later result (a frozen process)
    is fenced off by the claim token."""
    return 3 * call_seconds() + SETTLE_SECONDS


@contextmanager
def org_slot(org: Org, *, wait: float | None = None) -> Iterator[bool]:
    """Yields True while holding one of the org's call slots, False when none freed up within `wait` seconds."""
    client = _redis()
    if client is None or not org.max_concurrent_calls:
        yield True
        return
    key = f"flowgate:org:{org.pk}:calls"
    member = uuid.uuid4().hex
    lease = lease_seconds()
    deadline = time.monotonic() + (settings.FLOWGATE_SLOT_WAIT if wait is None else wait)
    script = _acquire_script(client)
    while True:
        now = time.time()
        if script(keys=[key], args=[now, now + lease, org.max_concurrent_calls, member, int(lease) + 60]):
            break
        if time.monotonic() >= deadline:
            yield False
            return
        time.sleep(POLL_SECONDS)
    try:
        yield True
    finally:
        client.zrem(key, member)
