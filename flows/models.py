from __future__ import annotations

import datetime as dt
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from .fields import EncryptedTextField
from .hosts import validate_my_domain_url

validate_api_version = RegexValidator(
    r"^v\d{2,3}\.0$", "Write the API version as vNN.0, e.g. v65.0 (Winter '26)."
)
validate_flow_api_name = RegexValidator(
    r"^(?:[A-Za-z][A-Za-z0-9]*__)?[A-Za-z](?:[A-Za-z0-9]|_(?!_))*(?<!_)$",
    "A flow API name starts with a letter and has only letters, digits and single underscores, not at the end "
    "(an optional namespace prefix like ns__ is allowed), e.g. On_Demand_Flow.",
)
validate_input_name = RegexValidator(
    r"^[A-Za-z][A-Za-z0-9_]*$",
    "An input name is the flow variable's API name: a letter, then letters, digits or underscores.",
)


class Org(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    my_domain_url = models.CharField(
        "My Domain URL", max_length=255, validators=[validate_my_domain_url],
        help_text="e.g. https://acme.my.salesforce.com (not login.salesforce.com or the setup domain)",
    )
    api_version = models.CharField("API version", max_length=8, default="v65.0", validators=[validate_api_version])
    is_active = models.BooleanField("active", default=True)
    api_usage_used = models.PositiveIntegerField("API requests used", null=True, blank=True, editable=False)
    api_usage_max = models.PositiveIntegerField("API daily limit", null=True, blank=True, editable=False)
    api_usage_seen_at = models.DateTimeField("API usage seen at", null=True, blank=True, editable=False)
    max_concurrent_calls = models.PositiveSmallIntegerField(
        "concurrent calls", default=10,
        help_text="Calls to this org in flight at once, across every worker and machine. Salesforce allows 25 "
                  "long-running requests per org (5 on Developer Edition).",
    )
    paused_until = models.DateTimeField(
        null=True, blank=True,
        help_text="Set when the org answered REQUEST_LIMIT_EXCEEDED: no call before then, and its triggers wait "
                  "without using a retry. Clear it to resume at once.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "org"

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.my_domain_url = self.my_domain_url.rstrip("/")
        super().save(*args, **kwargs)


class OrgUsageSample(models.Model):
    """An org's API usage against its daily limit (Sforce-Limit-Info api-usage) as seen at one moment.

    Org.api_usage_* keeps only the latest; these rows give the dashboard its line over time. At most one per org
    per 5 minutes (flows/salesforce/client.py), kept 8 days (flows/retention.py): about 2,300 rows per org.
    """

    # No index of its own: org_usage_sample_seen leads with it.
    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="usage_samples", db_index=False)
    used = models.PositiveIntegerField()
    max = models.PositiveIntegerField()
    seen_at = models.DateTimeField()

    class Meta:
        verbose_name = "org usage sample"
        indexes = [models.Index(fields=["org", "seen_at"], name="org_usage_sample_seen")]

    def __str__(self) -> str:
        return f"{self.org_id}: {self.used}/{self.max} at {self.seen_at:%Y-%m-%d %H:%M}"


class ExternalClientApp(models.Model):
    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="client_apps")
    name = models.CharField(max_length=120, blank=True, help_text="The External Client App's name in Salesforce.")
    consumer_key = EncryptedTextField()
    consumer_secret = EncryptedTextField()
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "External Client App"
        constraints = [
            models.UniqueConstraint(fields=["org"], condition=Q(is_active=True), name="one_active_client_app_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'External Client App'} ({self.org})"

    @property
    def credential_version(self) -> str:
        """Changes whenever the credentials do, so tokens cached for the old ones are never reused."""
        return credential_version(self.pk, self.created_at, self.rotated_at)


def credential_version(app_id: int | None, created_at: dt.datetime | None, rotated_at: dt.datetime | None) -> str:
    stamp = rotated_at or created_at
    return f"{app_id}.{int(stamp.timestamp()) if stamp else 0}"


class Flow(models.Model):
    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="flows")
    api_name = models.CharField("API name", max_length=80, validators=[validate_flow_api_name])
    label = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField("active", default=True)
    batch_enabled = models.BooleanField(
        "micro-batching", default=False,
        help_text="Send triggers queued within a short window in one Actions call (fewer API calls; Salesforce may "
                  "run one call's inputs in one transaction).",
    )
    batch_window_ms = models.PositiveIntegerField("batch window (ms)", default=200)
    batch_max_inputs = models.PositiveIntegerField("batch size", default=200)

    class Delivery(models.TextChoices):
        AT_LEAST_ONCE = "at_least_once", "At least once"
        AT_MOST_ONCE = "at_most_once", "At most once"

    delivery = models.CharField(
        max_length=14, choices=Delivery.choices, default=Delivery.AT_LEAST_ONCE,
        help_text="When Salesforce's answer to a call is lost (a timeout, a reset, a 502 or 504), the flow may or "
                  "may not have run. At least once: such a call is retried, so the customer may get the message "
                  "twice. At most once: it is never retried automatically; the trigger ends as unknown and a "
                  "person decides (Mark as delivered, or Re-send).",
    )
    trigger_id_input = models.CharField(
        "trigger id input", max_length=80, blank=True,
        help_text="A text input of this flow (e.g. FlowgateTriggerId) that Flowgate fills with the trigger's key, "
                  "the same on every automatic retry, so the flow can skip a key it has already seen. Callers "
                  "cannot fill it. Leave empty to send no key.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["org__name", "api_name"]
        constraints = [models.UniqueConstraint(fields=["org", "api_name"], name="flow_api_name_unique_per_org")]
        permissions = [("fire_flow", "Can fire flows")]

    def __str__(self) -> str:
        return f"{self.org.slug}/{self.api_name}"


class FlowInput(models.Model):
    class Type(models.TextChoices):
        TEXT = "text"
        NUMBER = "number"
        CURRENCY = "currency"
        BOOLEAN = "boolean"
        DATE = "date"
        DATETIME = "datetime"
        RECORD = "record"

    class Format(models.TextChoices):
        # Salesforce only knows Text; a format is Flowgate's own check on what a text input may carry.
        NONE = "", "None"
        EMAIL = "email", "E-mail address"
        E164 = "e164", "Phone (E.164)"

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="inputs")
    name = models.CharField(max_length=80, validators=[validate_input_name])
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.TEXT)
    format = models.CharField(
        max_length=8, choices=Format.choices, default=Format.NONE, blank=True,
        help_text="Text inputs only: values (each item of a collection) must be an e-mail address or an E.164 "
                  "phone number.",
    )
    is_collection = models.BooleanField("collection", default=False)
    required = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]
        constraints = [models.UniqueConstraint(fields=["flow", "name"], name="input_name_unique_per_flow")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        # Only text is checked against a format (inputs.validate_inputs ignores it elsewhere): refused here so an
        # admin does not believe a number or a record is being checked.
        if self.format and self.type != self.Type.TEXT:
            raise ValidationError({"format": (
                f"Only text inputs take a format (this one is {self.get_type_display()}): set Format to None, or "
                f"Type to Text.")})


class Trigger(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        RETRYING = "retrying"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        # At most once: Salesforce may have run the flow (its answer was lost); a person decides.
        UNKNOWN = "unknown"

    class Source(models.TextChoices):
        # One spelling wherever a source is shown: filters, tables, pages.
        ADMIN = "admin", "Admin"
        CONSOLE = "console", "Console"
        CLI = "cli", "CLI"
        API = "api", "API"
        WEBHOOK = "webhook", "Shopify"
        RESEND = "resend", "Re-send"

    FINAL = (Status.SUCCEEDED, Status.FAILED, Status.UNKNOWN)
    # A chain (a trigger and its re-sends) with one of these reached the customer, or may have.
    DELIVERED = (Status.SUCCEEDED, Status.UNKNOWN)
    WAITING = (Status.QUEUED, Status.RETRYING)

    # No index of its own: trigger_flow_recent and trigger_flow_status_newest lead with it. Every index here is
    # written three times per trigger (the insert and two updates that change indexed columns).
    flow = models.ForeignKey(Flow, on_delete=models.PROTECT, related_name="triggers", db_index=False)
    # The trigger's own id for the flow: the same on every automatic retry, new on a person's re-send.
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    inputs = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    source = models.CharField(max_length=10, choices=Source.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    actor_label = models.CharField(
        max_length=150, blank=True, help_text="Who fired it when not a user: an API key's or webhook's name."
    )
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    resend_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resends",
                                  db_index=False)
    # The first trigger of the chain this re-send belongs to (empty on an original): one re-send action makes at
    # most one new trigger per chain.
    origin = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="chain",
                               db_index=False)
    resend_job = models.ForeignKey(
        "ResendJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="triggers", db_index=False
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When the task message last sent for this trigger is due at a worker; empty when none is on the way.
    # The sweep enqueues due triggers with no message in flight (the broker was down, or the delay was too
    # long for a countdown).
    enqueued_at = models.DateTimeField(null=True, blank=True, editable=False)
    # New at every claim (queued -> sending). Every write after the call is conditional on it, so a dispatch whose
    # trigger was taken back (its lease ran out) can no longer change it.
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    outputs = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=80, blank=True)
    error_message = models.TextField(blank=True)
    hint = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A person's decision on an unknown outcome: the customer got it.
    delivered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+", db_index=False, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("resend_trigger", "Can re-send triggers")]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="idempotency_key_unique_per_flow",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="trigger_status_recent"),
            models.Index(fields=["status", "-id"], name="trigger_status_newest"),
            models.Index(fields=["flow", "status", "-id"], name="trigger_flow_status_newest"),
            models.Index(fields=["error_code", "-id"], name="trigger_error_code_newest", condition=~Q(error_code="")),
            models.Index(fields=["flow", "-created_at"], name="trigger_flow_recent"),
            models.Index(
                fields=["next_attempt_at"], name="trigger_due",
                condition=Q(status__in=["queued", "retrying", "sending"]),
            ),
            # Most triggers have none of these: partial indexes skip them.
            models.Index(fields=["actor"], name="trigger_actor", condition=Q(actor__isnull=False)),
            models.Index(fields=["resend_of"], name="trigger_resend_of", condition=Q(resend_of__isnull=False)),
            models.Index(fields=["origin"], name="trigger_origin", condition=Q(origin__isnull=False)),
            models.Index(fields=["resend_job"], name="trigger_resend_job", condition=Q(resend_job__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"Trigger {self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    @property
    def who(self) -> str:
        return self.actor.get_username() if self.actor else self.actor_label

    @property
    def chain_origin_id(self) -> int:
        return self.origin_id or self.pk


class ResendJob(models.Model):
    """Re-sends every trigger that matched a console filter, in the background, with counts that persist."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    filters = models.JSONField(default=dict, help_text="The console filter the re-send was confirmed for.")
    trigger_ids = models.JSONField(
        null=True, blank=True, help_text="The triggers selected (the admin's action), instead of a filter.",
    )
    include_delivered = models.BooleanField(
        default=False, help_text="Also re-send chains that already have a succeeded or unknown trigger.",
    )
    # Only triggers that existed at confirmation: the re-sends themselves, and later failures, are not swept in.
    max_trigger_id = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0, help_text="Triggers matching at confirmation.")
    processed = models.PositiveIntegerField(default=0)
    resent = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    skips = models.JSONField(default=dict, blank=True, help_text="Skipped triggers by reason.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "re-send job"

    def __str__(self) -> str:
        return f"Re-send job {self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)


class ExchangeQuerySet(models.QuerySet):
    def update(self, **kwargs):  # type: ignore[override]
        raise TypeError("Exchanges are immutable: they record what was sent and received.")

    def delete(self):  # type: ignore[override]
        raise TypeError("Exchanges are immutable; retention is purge_exchanges' job.")


class Exchange(models.Model):
    """One HTTP request and its response (or network error) with Salesforce, redacted, never changed."""

    class Classification(models.TextChoices):
        """What an invoke's outcome says of the flow (salesforce-api facts, section 7)."""

        RAN = "ran", "Flow ran"
        NOT_RUN = "not_run", "Not run: safe to retry"
        UNKNOWN = "unknown", "Salesforce may have run this attempt"

    class Kind(models.TextChoices):
        TOKEN = "token"
        INVOKE = "invoke"
        DESCRIBE = "describe"
        LIST = "list"
        VERSIONS = "versions"
        LIMITS = "limits"

    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="exchanges")
    # Indexed by exchange_trigger_timeline, which leads with it.
    trigger = models.ForeignKey(Trigger, null=True, blank=True, on_delete=models.SET_NULL, related_name="exchanges",
                                db_index=False)
    # A micro-batch's invoke is one exchange shared by all of its triggers.
    batch_triggers = models.ManyToManyField(Trigger, blank=True, related_name="batch_exchanges")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    method = models.CharField(max_length=8)
    url = models.TextField()
    request_headers = models.JSONField(default=dict)
    request_body = models.TextField(blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict)
    response_body = models.TextField(blank=True)
    network_error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    # Invokes only: whether the flow ran, did not, or may have.
    classification = models.CharField(max_length=8, choices=Classification.choices, blank=True)
    # The trigger's attempt the call belonged to, and whether its answer came after the trigger was taken back
    # from that attempt (its lease ran out): a late answer is recorded, but changes nothing.
    attempt = models.PositiveIntegerField(null=True, blank=True)
    late = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = ExchangeQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["trigger", "created_at"], name="exchange_trigger_timeline")]

    def __str__(self) -> str:
        return f"{self.method} {self.kind} → {self.response_status or self.network_error[:40] or '…'}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise TypeError("Exchanges are immutable: they record what was sent and received.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):  # type: ignore[override]
        raise TypeError("Exchanges are immutable; retention is purge_exchanges' job.")

from .api.models import ApiKey  # noqa: E402,F401
from .webhooks.models import ShopifyTopic, ShopifyWebhook, WebhookDelivery  # noqa: E402,F401
