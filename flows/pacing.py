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


def lease_seconds() -> float:
    """How long one dispatch may hold a slot or a SENDING claim: a token request and two REST calls (the
    second after a 401), each up to its timeouts, plus a few seconds for the database."""
    per_call = settings.FLOWGATE_HTTP_CONNECT_TIMEOUT + settings.FLOWGATE_HTTP_READ_TIMEOUT
    return 3 * per_call + 5


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
