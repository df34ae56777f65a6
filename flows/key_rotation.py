"""Re-encrypting every stored secret under the newest key of FLOWGATE_ENCRYPTION_KEYS, so older keys can go.

Every EncryptedTextField of every installed model is found by introspection, so a secret added later is rotated
too. Rows are read in batches by primary key; each row is rewritten with one conditional update that matches
the ciphertexts read, so a secret saved meanwhile (an admin typing a new one) is never overwritten with stale
data: the row is read again and redone. A row holding a value no configured key can read is reported and left
exactly as it was, all of its fields: never half-rotated, never garbage.

Cached access tokens (encrypted in the shared cache) are dropped rather than re-encrypted: the cache cannot
tell their remaining lifetime, and each org simply fetches a new token on its next call.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import models, transaction

from . import crypto
from .crypto import DecryptionError, Secret
from .fields import EncryptedTextField
from .models import ExternalClientApp

DEFAULT_BATCH_SIZE = 500
# Tries per row when its secrets keep changing under us; after that the row is reported, to be run again.
MAX_TRIES = 3


@dataclass(frozen=True)
class Problem:
    """A row that was not re-encrypted, and why. Nothing of that row was written."""

    model: str
    field: str
    pk: Any
    reason: str

    def __str__(self) -> str:
        return f"{self.model}.{self.field} pk={self.pk}: {self.reason}"


@dataclass
class RotationReport:
    # "flows.ExternalClientApp.consumer_secret" -> rotated / current (already under the newest key) / empty
    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    problems: list[Problem] = field(default_factory=list)
    retried_rows: int = 0  # rows changed by someone else while being rotated, then redone
    cached_tokens_dropped: int = 0


def encrypted_fields() -> dict[type[models.Model], list[EncryptedTextField]]:
    """Every model with encrypted fields, and those fields."""
    found = {}
    for model in apps.get_models():
        secret_fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if secret_fields:
            found[model] = secret_fields
    return found


def rotate_encryption_key(*, batch_size: int = DEFAULT_BATCH_SIZE) -> RotationReport:
    """Re-encrypts every stored secret under the newest key, drops cached tokens, and reports what it did."""
    crypto.validate_keys(settings.FLOWGATE_ENCRYPTION_KEYS)
    report = RotationReport()
    for model, secret_fields in encrypted_fields().items():
        names = [f.attname for f in secret_fields]
        for label in names:
            report.counts[f"{model._meta.label}.{label}"]  # listed even when the table is empty
        for batch in _batches(model, names, batch_size):
            with transaction.atomic():  # one commit per batch, not per row
                for pk, *values in batch:
                    _rotate_row(model, pk, names, values, report)
    report.cached_tokens_dropped = _drop_cached_tokens()
    return report


def _batches(model: type[models.Model], names: list[str], size: int):
    """Rows as (pk, *secrets) in primary-key order, `size` at a time (keyset pagination: no OFFSET scans)."""
    rows = model._base_manager.order_by("pk")
    last_pk = None
    while True:
        page = rows.filter(pk__gt=last_pk) if last_pk is not None else rows
        batch = list(page.values_list("pk", *names)[:size])
        if not batch:
            return
        yield batch
        last_pk = batch[-1][0]


def _rotate_row(model: type[models.Model], pk: Any, names: list[str], values: Sequence[Secret | None],
                report: RotationReport) -> None:
    label = model._meta.label
    for _ in range(MAX_TRIES):
        outcomes, updates, unreadable = {}, {}, []
        for name, secret in zip(names, values):
            if secret is None:
                outcomes[name] = "empty"
            elif crypto.newest_key_reads(secret.ciphertext):
                outcomes[name] = "current"
            else:
                try:
                    updates[name] = Secret(crypto.rotate(secret.ciphertext))
                    outcomes[name] = "rotated"
                except DecryptionError:
                    unreadable.append(name)
        if unreadable:
            report.problems.extend(
                Problem(label, name, pk, "cannot be decrypted with any key in FLOWGATE_ENCRYPTION_KEYS (was the "
                                         "key it was saved with removed?); this row was left unchanged")
                for name in unreadable)
            return
        # Matching the ciphertexts read: a secret saved since then makes this update match no row.
        if not updates or model._base_manager.filter(pk=pk, **dict(zip(names, values))).update(**updates):
            for name, outcome in outcomes.items():
                report.counts[f"{label}.{name}"][outcome] += 1
            return
        report.retried_rows += 1
        current = model._base_manager.filter(pk=pk).values_list(*names).first()
        if current is None:
            return  # deleted meanwhile: nothing left to rotate
        values = list(current)
    report.problems.append(Problem(label, "*", pk, f"changed by someone else on each of {MAX_TRIES} tries; "
                                                   "run the command again"))


def _drop_cached_tokens() -> int:
    """Forgets every External Client App's cached token (encrypted under the key of its day)."""
    from .salesforce import tokens

    apps_ = list(ExternalClientApp.objects.select_related("org"))
    for app in apps_:
        tokens.forget_all(app)
    return len(apps_)
