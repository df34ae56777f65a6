from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models.query_utils import DeferredAttribute

from .crypto import Secret


class _SealOnAssign(DeferredAttribute):
    """Plain strings assigned to the field are encrypted at once, so no plaintext lingers on the instance."""

    def __set__(self, instance: models.Model, value: Any) -> None:
        instance.__dict__[self.field.attname] = self.field.to_python(value)


class EncryptedTextField(models.TextField):
    """Stores a `Secret` as MultiFernet ciphertext; reading gives a `Secret`, never plaintext."""

    descriptor_class = _SealOnAssign

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Secret | None:
        return None if value is None else Secret(value)

    def to_python(self, value: Any) -> Secret | None:
        if value is None or isinstance(value, Secret):
            return value
        return Secret.seal(str(value))

    def get_prep_value(self, value: Any) -> str | None:
        value = self.to_python(value)
        return None if value is None else value.ciphertext

    def value_to_string(self, obj: models.Model) -> str:
        # Serialising (dumpdata) never exposes plaintext.
        value = self.value_from_object(obj)
        return "" if value is None else value.ciphertext

    def formfield(self, **kwargs: Any) -> None:  # type: ignore[override]
        # Never offered as an editable field that would render its value back; forms declare their own.
        return None
