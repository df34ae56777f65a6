"""API keys: stored as a SHA-256 of the key plus a short non-secret prefix to find it; never the key itself."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ApiKey(models.Model):
    name = models.CharField(
        max_length=120, help_text="Who uses it, e.g. 'ERP sync'. Shown as the author of the triggers it fires.",
    )
    prefix = models.CharField(
        max_length=16, unique=True, editable=False,
        help_text="The start of the key (not secret): tells keys apart in lists and logs.",
    )
    key_hash = models.CharField(max_length=64, editable=False)  # hex SHA-256 of the whole key
    all_flows = models.BooleanField(
        default=False, help_text="May fire and read every flow, including flows added later.",
    )
    flows = models.ManyToManyField(
        "flows.Flow", blank=True, related_name="api_keys",
        help_text="The flows this key may fire and read (ignored when 'all flows' is on).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "-created_at"]
        verbose_name = "API key"
        constraints = [
            models.UniqueConstraint(fields=["name"], condition=Q(revoked_at__isnull=True),
                                    name="api_key_name_unique_while_active"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
