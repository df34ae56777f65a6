"""Shopify webhooks (write-only secrets, a flow and mapping per topic) and their deliveries (read-only)."""

from __future__ import annotations

import json
import re

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from ..admin import ReadOnlyAdmin
from ..inputs import caller_inputs
from .mapping import validate_mapping
from .models import ShopifyTopic, ShopifyWebhook, WebhookDelivery
from .services import deliveries_replay, shopify_webhook_set_secret

SHOP_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")


class ShopifyWebhookForm(forms.ModelForm):
    """Write-only secrets: the form takes new values and never renders stored ones."""

    new_secret = forms.CharField(
        label="Signing secret", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The app's client secret (Shopify Partners/Dev Dashboard → your app → Settings), or the key "
                  "shown under Settings › Notifications › Webhooks for webhooks made in the store's admin. Leave "
                  "empty to keep the stored one. A new one moves the old one to the rotation secret, still "
                  "accepted while Shopify switches over (up to an hour).",
    )
    forget_rotation_secret = forms.BooleanField(
        label="Remove the rotation secret", required=False,
        help_text="Once Shopify signs with the new secret, stop accepting the old one.",
    )

    class Meta:
        model = ShopifyWebhook
        fields = ["name", "slug", "shop_domains", "is_active"]
        widgets = {"shop_domains": forms.Textarea(attrs={"rows": 3, "cols": 50})}

    def clean_shop_domains(self) -> str:
        lines = [line.strip().lower() for line in self.cleaned_data["shop_domains"].splitlines() if line.strip()]
        wrong = [line for line in lines if line != "*" and not SHOP_DOMAIN.match(line)]
        if wrong:
            raise forms.ValidationError(f"Not a shop domain: {', '.join(wrong[:3])}. Write e.g. acme.myshopify.com.")
        if not lines:
            raise forms.ValidationError("Give at least one shop domain (or * for any shop).")
        return "\n".join(lines)

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None and not cleaned.get("new_secret"):
            self.add_error("new_secret", "Required for a new webhook.")
        return cleaned

    def save(self, commit: bool = True) -> ShopifyWebhook:
        webhook = super().save(commit=False)
        forget = self.cleaned_data.get("forget_rotation_secret")
        if secret := self.cleaned_data.get("new_secret"):
            shopify_webhook_set_secret(webhook=webhook, secret=secret, keep_previous=not forget)
        if forget:
            webhook.rotation_secret = None
        if commit:
            webhook.save()
        return webhook


class ShopifyTopicForm(forms.ModelForm):
    mapping = forms.JSONField(
        widget=forms.Textarea(attrs={"rows": 5, "cols": 70, "style": "font-family: monospace"}),
        help_text=ShopifyTopic._meta.get_field("mapping").help_text,
    )

    class Meta:
        model = ShopifyTopic
        fields = ["topic", "flow", "mapping"]

    def clean(self):
        cleaned = super().clean()
        flow, mapping = cleaned.get("flow"), cleaned.get("mapping")
        if flow is not None and "mapping" in cleaned:
            for name, problems in validate_mapping(mapping, caller_inputs(flow),
                                                   reserved=flow.trigger_id_input).items():
                self.add_error("mapping", f"{name}: {' '.join(problems)}")
        return cleaned


class ShopifyTopicInline(admin.StackedInline):
    model = ShopifyTopic
    form = ShopifyTopicForm
    extra = 0


@admin.register(ShopifyWebhook)
class ShopifyWebhookAdmin(admin.ModelAdmin):
    form = ShopifyWebhookForm
    list_display = ["name", "slug", "url", "allowed_shops", "is_active", "secrets", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug", "shop_domains"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["url", "secrets", "created_at", "updated_at"]
    fields = ["name", "slug", "url", "shop_domains", "is_active", "new_secret", "forget_rotation_secret", "secrets",
              "created_at", "updated_at"]
    inlines = [ShopifyTopicInline]

    @admin.display(description="Delivery URL")
    def url(self, webhook: ShopifyWebhook) -> str:
        if not webhook.slug:
            return "—"
        return f"https://HOST{reverse('hooks:shopify', args=[webhook.slug])}"

    @admin.display(description="Shops")
    def allowed_shops(self, webhook: ShopifyWebhook) -> str:
        return ", ".join(webhook.allowed_shop_domains)

    @admin.display(description="Secrets")
    def secrets(self, webhook: ShopifyWebhook) -> str:
        if not webhook.pk:
            return "Not set yet."
        text = "Signing secret set"
        if webhook.rotation_secret is not None and webhook.secret_rotated_at:
            since = timezone.localtime(webhook.secret_rotated_at)
            text += f"; the previous one still accepted since {since:%Y-%m-%d %H:%M}"
        elif webhook.rotation_secret is not None:
            text += "; a rotation secret is accepted too"
        return text + "."


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "received_at", "webhook", "topic", "shop_domain", "order_name", "email", "outcome",
                    "trigger_link"]
    list_filter = ["outcome", "webhook", "topic", "received_at"]
    search_fields = ["=shopify_webhook_id", "=email", "=order_number", "=order_name"]
    list_select_related = ["webhook"]
    date_hierarchy = "received_at"
    show_full_result_count = False
    fields = ["webhook", "received_at", "outcome", "reason", "held_for", "trigger", "replayed_at", "replayed_by",
              "topic", "shop_domain", "shopify_webhook_id", "event_id", "api_version", "triggered_at", "signed_with",
              "order_number", "order_name", "email", "duplicates", "last_duplicate_at", "pretty_headers", "body_bytes",
              "body_truncated", "body"]
    readonly_fields = fields
    actions = ["replay_action"]

    @admin.action(description="Replay the selected deliveries", permissions=["replay"])
    def replay_action(self, request, queryset) -> None:
        counts = deliveries_replay(deliveries=queryset, actor_label=request.user.get_username())
        self.message_user(request, f"Replayed {counts.replayed}: {counts.triggered} triggered, "
                                   f"{counts.still_unmappable} still unmappable, {counts.skipped} skipped.",
                          messages.SUCCESS if counts.triggered else messages.WARNING)
        for pk, reason in counts.skips[:10]:
            self.message_user(request, f"Delivery {pk} skipped: {reason}", messages.WARNING)

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("flows.replay_webhookdelivery")

    @admin.display(description="Trigger")
    def trigger_link(self, delivery: WebhookDelivery) -> str:
        if not delivery.trigger_id:
            return "—"
        return format_html('<a href="{}">#{}</a>', reverse("console:trigger", args=[delivery.trigger_id]),
                           delivery.trigger_id)

    @admin.display(description="Headers")
    def pretty_headers(self, delivery: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(delivery.headers, indent=2, ensure_ascii=False))
