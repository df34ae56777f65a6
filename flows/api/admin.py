"""API keys in the admin: the key is shown once, on the page that answers its creation, and never again."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import reverse

from .models import ApiKey
from .services import api_key_generate_secret, api_key_revoke

KEY_CREATED_PAGE = """{% extends "admin/base_site.html" %}
{% block content %}
<p>Copy the key now: Flowgate keeps only a hash of it and <strong>cannot show it again</strong>.</p>
<p><input type="text" readonly value="{{ raw_key }}" size="70" onclick="this.select()" aria-label="The new API key"
   style="font-family: monospace"></p>
<p>Use it as <code>Authorization: Bearer KEY</code>. Scope: {{ scope }}.</p>
<p><a class="button" href="{{ change_url }}">Done</a> <a href="{{ list_url }}">All API keys</a></p>
{% endblock %}
"""


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "all_flows", "flows"]

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("all_flows") and not cleaned.get("flows"):
            self.add_error("flows", "Choose the flows this key may use, or tick 'all flows'.")
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix", "scope", "created_at", "last_used_at", "state"]
    list_filter = ["all_flows", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    filter_horizontal = ["flows"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        return super().get_queryset(request).prefetch_related("flows__org")

    @admin.display(description="Scope")
    def scope(self, api_key: ApiKey) -> str:
        return "all flows" if api_key.all_flows else ", ".join(str(flow) for flow in api_key.flows.all()) or "none"

    @admin.display(description="State", ordering="revoked_at")
    def state(self, api_key: ApiKey) -> str:
        return "active" if api_key.is_active else f"revoked {api_key.revoked_at:%Y-%m-%d %H:%M}"

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = api_key_revoke(api_keys=queryset)
        self.message_user(request, f"Revoked {count} API key(s): requests with them now get 401.", messages.SUCCESS)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        if not change:
            obj.created_by = request.user
            # Kept on this request only, for response_add to show once; stored nowhere.
            request._new_api_key = api_key_generate_secret(api_key=obj)
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        raw_key = getattr(request, "_new_api_key", None)
        if raw_key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": f"API key “{obj.name}” created", "api_key": obj, "raw_key": raw_key, "scope": self.scope(obj),
            "change_url": reverse("admin:flows_apikey_change", args=[obj.pk]),
            "list_url": reverse("admin:flows_apikey_changelist"),
        }
        response = TemplateResponse(request, engines["django"].from_string(KEY_CREATED_PAGE), context)
        response["Cache-Control"] = "no-store"
        return response
