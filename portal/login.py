"""The admin's login, throttled: after repeated failures a user name, or an address, is refused for a while.

Counted in Django's cache (Redis in production, shared by every web process) rather than with django-axes:
the counters need nothing more than the cache every process already shares, no tables, and no authentication
backend that would make every `authenticate()` call need a request. A fixed window per key: the first failure
starts it; FLOWGATE_LOGIN_MAX_FAILURES failures for a user name (or FLOWGATE_LOGIN_MAX_FAILURES_PER_ADDRESS from
one address) within FLOWGATE_LOGIN_WINDOW_SECONDS refuse further attempts, right or wrong, until it ends.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest

logger = logging.getLogger("flowgate.login")


def client_address(request: HttpRequest) -> str:
    """The connection's address, or behind FLOWGATE_TRUSTED_PROXIES proxies the one the outermost of them saw."""
    proxies = settings.FLOWGATE_TRUSTED_PROXIES
    if proxies > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _keys(*, username: str, address: str) -> dict[str, str]:
    user_digest = hashlib.sha256(username.casefold().encode()).hexdigest()[:32]
    return {"user name": f"flowgate:login-failures:user:{user_digest}",
            "address": f"flowgate:login-failures:address:{address}"}


def login_refused_because(*, username: str, address: str) -> str | None:
    """'user name' or 'address' when that one has used up its failures in the current window, else None."""
    limits = {"user name": settings.FLOWGATE_LOGIN_MAX_FAILURES,
              "address": settings.FLOWGATE_LOGIN_MAX_FAILURES_PER_ADDRESS}
    counts = cache.get_many(list(_keys(username=username, address=address).values()))
    for what, key in _keys(username=username, address=address).items():
        if counts.get(key, 0) >= limits[what]:
            return what
    return None


def login_failure_record(*, username: str, address: str) -> None:
    for key in _keys(username=username, address=address).values():
        cache.add(key, 0, timeout=settings.FLOWGATE_LOGIN_WINDOW_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr: this failure starts a new window
            cache.add(key, 1, timeout=settings.FLOWGATE_LOGIN_WINDOW_SECONDS)


def login_success_record(*, username: str) -> None:
    cache.delete(_keys(username=username, address="")["user name"])


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "throttled": "Too many failed logins %(what)s: logins are refused for up to %(minutes)d minutes. Wait and "
                     "try again; if you have forgotten your password, a Flowgate admin can set a new one.",
    }

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        refused = login_refused_because(username=username, address=address)
        if refused:
            logger.warning("Login refused: too many failed logins for this %s (user name %r, address %s).",
                           refused, username, address)
            raise ValidationError(self.error_messages["throttled"], code="throttled", params={
                "what": "for this user name" if refused == "user name" else "from this address", "minutes": max(1, round(settings.FLOWGATE_LOGIN_WINDOW_SECONDS / 60))})
        try:
            cleaned = super().clean()
        except ValidationError as error:
            if username and self.cleaned_data.get("password") and error.code == "invalid_login":
                login_failure_record(username=username, address=address)
                logger.warning("Login failed for user name %r from %s.", username, address)
            raise
        login_success_record(username=username)
        return cleaned
