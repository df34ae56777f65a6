"""Shopify webhooks: where deliveries come in (slug, shops, signing secrets), what each topic fires, and the
record of every delivery."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from ..fields import EncryptedTextField

validate_topic = RegexValidator(
    r"^[a-z][a-z0-9_]*/[a-z][a-z0-9_]*$", "Write the topic as Shopify names it, e.g. orders/create.",
)


class ShopifyWebhook(models.Model):
    name = models.CharField(
        max_length=120, help_text="e.g. the store's name. Shown as the author of the triggers it fires.",
    )
    slug = models.SlugField(
        max_length=60, unique=True, help_text="Shopify delivers to https://HOST/hooks/shopify/SLUG.",
    )
    shop_domains = models.TextField(
        "allowed shop domains",
        help_text="One per line, as Shopify sends them in X-Shopify-Shop-Domain, e.g. acme.myshopify.com. "
                  "A line with only * accepts any shop that signs with the secret.",
    )
    secret = EncryptedTextField(help_text="The app's client secret (or the store's webhook key).")
    rotation_secret = EncryptedTextField(
        null=True, blank=True,
        help_text="Also accepted, while Shopify moves to a new secret (up to an hour after a rotation).",
    )
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "Shopify webhook"

    def __str__(self) -> str:
        return self.name

    @property
    def allowed_shop_domains(self) -> list[str]:
        return [line.strip().lower() for line in self.shop_domains.splitlines() if line.strip()]


class ShopifyTopic(models.Model):
    """What one topic of a webhook fires: a flow, with each input taken from the payload by a mapping."""

    webhook = models.ForeignKey(ShopifyWebhook, on_delete=models.CASCADE, related_name="topics")
    topic = models.CharField(max_length=80, validators=[validate_topic], help_text="e.g. orders/create")
    flow = models.ForeignKey("flows.Flow", on_delete=models.PROTECT, related_name="shopify_topics")
    mapping = models.JSONField(
        default=dict,
        help_text='Input name → where its value comes from: dotted paths into the payload, alternatives '
                  'separated by | (the first with a value wins), or a literal: a number, true, false or text in '
                  'double quotes. E.g. {"EmailAddress": "email | contact_email | customer.email", '
                  '"IndividualId": "customer.id"}.',
    )

    class Meta:
        ordering = ["topic"]
        verbose_name = "Shopify topic"
        constraints = [models.UniqueConstraint(fields=["webhook", "topic"], name="shopify_topic_unique_per_webhook")]

    def __str__(self) -> str:
        return f"{self.topic} → {self.flow}"


class WebhookDelivery(models.Model):
    """One signed delivery as received, and what came of it. Unsigned requests are answered 401, never stored."""

    class Outcome(models.TextChoices):
        TRIGGERED = "triggered", "Triggered"
        REPLAYED = "replayed", "Same event as an earlier delivery"
        UNMAPPABLE = "unmappable", "Unmappable"
        # The flow or its org is inactive, or the org is paused: kept whole, to be replayed.
        HELD = "held", "Held"
        IGNORED = "ignored", "Topic not mapped"
        REJECTED = "rejected", "Rejected (shop not allowed)"

    class HeldFor(models.TextChoices):
        # A person deactivated the flow or org on purpose: a person replays. A pause ends by itself: the sweep does.
        INACTIVE = "inactive", "Flow or org inactive"
        PAUSED = "paused", "Org paused"

    class SignedWith(models.TextChoices):
        CURRENT = "current", "Current secret"
        ROTATION = "rotation", "Rotation secret"

    webhook = models.ForeignKey(ShopifyWebhook, on_delete=models.PROTECT, related_name="deliveries")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    shopify_webhook_id = models.CharField("webhook id", max_length=255, help_text="X-Shopify-Webhook-Id")
    event_id = models.CharField("event id", max_length=255, blank=True, help_text="X-Shopify-Event-Id")
    topic = models.CharField(max_length=120, blank=True)
    shop_domain = models.CharField(max_length=255, blank=True)
    api_version = models.CharField("API version", max_length=32, blank=True)
    triggered_at = models.CharField(max_length=64, blank=True, help_text="X-Shopify-Triggered-At, as sent.")
    signed_with = models.CharField(
        max_length=10, choices=SignedWith.choices, help_text="The secret whose signature matched.",
    )
    headers = models.JSONField(default=dict, help_text="As received, the signature redacted.")
    body = models.TextField(
        blank=True, help_text="As received: whole when held or unmappable (to be replayed), otherwise cut at "
                              "FLOWGATE_DELIVERY_BODY_LIMIT characters.",
    )
    body_bytes = models.PositiveIntegerField(default=0)
    body_truncated = models.BooleanField(default=False, help_text="The body was cut: it cannot be replayed.")
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    held_for = models.CharField(
        max_length=8, choices=HeldFor.choices, blank=True,
        help_text="Why it is held: a delivery held for a pause is replayed automatically when the pause ends.",
    )
    trigger = models.ForeignKey(
        "flows.Trigger", null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_deliveries",
    )
    order_number = models.CharField(max_length=40, blank=True)
    order_name = models.CharField(max_length=80, blank=True)
    email = models.CharField(max_length=254, blank=True, help_text="Lower case, for search.")
    duplicates = models.PositiveIntegerField(default=0, help_text="Later deliveries with the same webhook id.")
    last_duplicate_at = models.DateTimeField(null=True, blank=True)
    replayed_at = models.DateTimeField(null=True, blank=True, help_text="When it was last replayed.")
    replayed_by = models.CharField(max_length=150, blank=True, help_text="Who replayed it last.")

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        permissions = [("replay_webhookdelivery", "Can replay webhook deliveries")]
        constraints = [
            # Rejected deliveries do not count: once the shop is allowed, Shopify's retry is processed.
            models.UniqueConstraint(fields=["webhook", "shopify_webhook_id"], condition=~Q(outcome="rejected"),
                                    name="delivery_unique_webhook_id"),
        ]
        indexes = [
            models.Index(fields=["shopify_webhook_id"], name="delivery_webhook_id"),
            models.Index(fields=["order_number"], name="delivery_order_number"),
            models.Index(fields=["order_name"], name="delivery_order_name"),
            models.Index(fields=["email"], name="delivery_email"),
            models.Index(fields=["outcome", "-received_at"], name="delivery_outcome_recent"),
        ]

    def __str__(self) -> str:
        return f"Delivery {self.pk} ({self.topic or 'no topic'}, {self.outcome})"
