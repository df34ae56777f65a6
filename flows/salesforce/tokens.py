"""Access tokens, cached for every process (encrypted), with at most one token request in flight per credential.

A burst of triggers after a token expired makes one token request: the first caller takes a lock in the
shared cache and fetches; the others wait for the token (or the error) it leaves in the cache.

Each process also keeps the tokens it read for a few seconds (in memory only, never on disk): reading and
decrypting the shared copy for every call was a tenth of a worker's CPU per trigger. A token another process
renewed meanwhile costs at most one refused call (401), after which this process's copy is dropped too.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from .. import crypto
from ..models import ExternalClientApp
from .errors import SalesforceError

LOCK_SECONDS = 60
# A token request refused for good (wrong secret, policy) is remembered briefly so a burst of waiting triggers
# shares its outcome instead of queueing one failing request each.
FAILURE_SECONDS = 5
POLL_SECONDS = 0.05
LOCAL_SECONDS = 10.0

_local: dict[str, tuple[Token, float]] = {}  # token key -> (token, monotonic time it is kept until)


@dataclass(frozen=True)
class Token:
    access_token: str
    instance_url: str

    def __repr__(self) -> str:
        return f"Token(access_token='********', instance_url={self.instance_url!r})"


def token_key(credential_version: str, my_domain_url: str) -> str:
    """Where an org's token is cached. A new credential or a new My Domain URL means a new token: never reuse
    one issued for the old."""
    domain = hashlib.sha256(my_domain_url.encode()).hexdigest()[:12]
    return f"flowgate:token:{credential_version}:{domain}"


def _key(app: ExternalClientApp) -> str:
    return token_key(app.credential_version, app.org.my_domain_url)


def _read(key: str) -> Token | SalesforceError | None:
    sealed = cache.get(key)
    if sealed is None:
        return None
    try:
        data = json.loads(crypto.decrypt(sealed))
    except (crypto.DecryptionError, ValueError):
        return None  # encrypted under a key since removed: fetch a new token
    if "error" in data:
        return SalesforceError.from_dict(data["error"])
    return Token(data["access_token"], data["instance_url"])


def _write(key: str, value: Token | SalesforceError) -> None:
    if isinstance(value, Token):
        payload = {"access_token": value.access_token, "instance_url": value.instance_url}
        ttl = settings.FLOWGATE_TOKEN_CACHE_SECONDS
    else:
        payload, ttl = {"error": value.as_dict()}, FAILURE_SECONDS
    cache.set(key, crypto.encrypt(json.dumps(payload)), timeout=ttl)


def get_token(app: ExternalClientApp, fetch: Callable[[], Token]) -> Token:
    return get_token_at(_key(app), fetch)


def get_token_at(key: str, fetch: Callable[[], Token], *, wait_until: float | None = None) -> Token:
    """The token cached under `key` (see token_key), or the one `fetch` gets, fetched once for all processes.
    Waiting for another process's request stops at `wait_until` (time.monotonic()), if given."""
    kept = _local.get(key)
    if kept is not None and kept[1] > time.monotonic():
        return kept[0]
    token = _shared_token(key, fetch, wait_until)
    _local[key] = (token, time.monotonic() + min(LOCAL_SECONDS, settings.FLOWGATE_TOKEN_CACHE_SECONDS))
    return token


def _shared_token(key: str, fetch: Callable[[], Token], wait_until: float | None = None) -> Token:
    lock_key = f"{key}:lock"
    deadline = time.monotonic() + LOCK_SECONDS
    if wait_until is not None:
        deadline = min(deadline, wait_until)
    while True:
        found = _read(key)
        if isinstance(found, Token):
            return found
        if isinstance(found, SalesforceError):
            raise found
        owner = uuid.uuid4().hex
        if cache.add(lock_key, owner, timeout=LOCK_SECONDS):
            try:
                found = _read(key)  # another process may have finished between our read and our lock
                if isinstance(found, Token):
                    return found
                try:
                    token = fetch()
                except SalesforceError as error:
                    if error.permanent:  # a transient failure is tried again by the next caller in line
                        _write(key, error)
                    raise
                _write(key, token)
                return token
            finally:
                if cache.get(lock_key) == owner:
                    cache.delete(lock_key)
        if time.monotonic() > deadline:
            raise SalesforceError(
                "TOKEN_WAIT_TIMEOUT", "Waited too long for another process's token request.", permanent=False
            )
        time.sleep(POLL_SECONDS)


def forget_token_at(key: str, token: Token) -> None:
    """Drops a token Salesforce refused, unless another process already replaced it."""
    _local.pop(key, None)
    if _read(key) == token:
        cache.delete(key)


def forget_all(app: ExternalClientApp) -> None:
    _local.pop(_key(app), None)
    cache.delete(_key(app))


def forget_local() -> None:
    """Drops this process's copies (tests clear the shared cache between them)."""
    _local.clear()
