from __future__ import annotations

import re
from functools import partial

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from .connection import org_test_connection
from .admin_paging import CappedCountPaginator, IndexedSearchMixin, ResponseStatusClassFilter
from .console import views as console_views
from .crypto import DecryptionError
from .flow_import import flow_import_apply, flow_import_preview, flow_list_remote
from .models import Exchange, ExternalClientApp, Flow, FlowInput, Org, ResendJob, Trigger
from .resend_jobs import MAX_JOB_SELECTION, resend_job_create
from .roles import ADMINS, SUPPORT, login_problem
from .salesforce import SalesforceError
from .selectors import chain_counts
from .templatetags.console import usage


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class SecretInput(forms.PasswordInput):
    """A password box that never renders a value. After a failed save in which a secret was typed, it says plainly
    that the secret must be typed again (`retype_note`), rather than leaving an empty box to be noticed."""

    retype_note = ""

    def __init__(self, attrs: dict | None = None) -> None:
        super().__init__(attrs, render_value=False)

    def render(self, name: str, value, attrs: dict | None = None, renderer=None) -> str:
        if not self.retype_note:
            return super().render(name, value, attrs, renderer)
        note_id = f"{(attrs or {}).get('id') or name}_retype"
        box = super().render(name, value, {**(attrs or {}), "aria-describedby": note_id}, renderer)
        # Bold in the text's own colour, not a help text's grey: it asks for something (works on both pages that
        # show the form, whose stylesheets are not this form's).
        return format_html('{}<p class="help retype-note" id="{}" style="{}">{}</p>', box, note_id,
                           "font-weight: 600; color: var(--body-fg)", self.retype_note)


class ExternalClientAppForm(forms.ModelForm):
    """Write-only credentials: the form takes new values and never renders stored ones."""

    new_consumer_key = forms.CharField(
        label="Consumer key", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Leave empty to keep the stored key.",
    )
    new_consumer_secret = forms.CharField(
        label="Consumer secret", required=False, strip=True,
        widget=SecretInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored secret.",
    )

    class Meta:
        model = ExternalClientApp
        fields = ["org", "name", "is_active"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A bound form is rendered only when its page did not save (an error in it, or elsewhere on the page, e.g.
        # the org's fields above the inline). The key it carries is what this admin just typed in this request, never
        # a stored value (an unbound form has none: the field has no initial), so it is kept in its box. The secret
        # is not sent back even so; the box says it must be typed again. (Fields and widgets are this form's copies.)
        self.fields["new_consumer_key"].widget.render_value = self.is_bound
        if self.is_bound and str(self.data.get(self.add_prefix("new_consumer_secret")) or "").strip():
            self.fields["new_consumer_secret"].widget.retype_note = (
                "For safety the secret is not shown again: type it again." if self.instance.pk is None else
                "For safety the secret you typed is not shown again: type it again, or leave it empty to keep the "
                "stored one."
            )

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None:
            for field in ("new_consumer_key", "new_consumer_secret"):
                if not cleaned.get(field):
                    self.add_error(field, "Required for a new External Client App.")
        return cleaned

    def save(self, commit: bool = True) -> ExternalClientApp:
        app = super().save(commit=False)
        key, secret = self.cleaned_data.get("new_consumer_key"), self.cleaned_data.get("new_consumer_secret")
        if key:
            app.consumer_key = key
        if secret:
            app.consumer_secret = secret
        if app.pk and (key or secret):
            app.rotated_at = timezone.now()  # a new credential version: cached tokens of the old one go unused
        if commit:
            app.save()
        return app


@admin.register(ExternalClientApp)
class ExternalClientAppAdmin(admin.ModelAdmin):
    form = ExternalClientAppForm
    list_display = ["__str__", "org", "is_active", "credentials", "created_at", "rotated_at"]
    list_filter = ["is_active", "org"]
    readonly_fields = ["credentials", "created_at", "rotated_at"]
    fields = ["org", "name", "is_active", "new_consumer_key", "new_consumer_secret", "credentials", "created_at",
              "rotated_at"]

    @admin.display(description="Credentials")
    def credentials(self, app: ExternalClientApp) -> str:
        return credentials_fingerprint(app)


# Real consumer keys run to 85 characters; a key shorter than this shows none of its characters, since its last 4
# would be too large a part of it.
KEY_TAIL_MIN_LENGTH = 16


def credentials_fingerprint(app: ExternalClientApp) -> str:
    """Which credentials are stored, never what they are: the key's last 4 characters, the secret's length, and when
    they were set. Decrypted here, at display time, for an admin's page only (Support gets 403 on the app's pages
    and no inline on the org's); nothing of it is logged or kept."""
    if not app.pk or app.consumer_key is None or app.consumer_secret is None:
        return "Not set yet."
    try:
        key, secret = app.consumer_key.reveal(), app.consumer_secret.reveal()
    except DecryptionError:
        return ("Stored, but no key in FLOWGATE_ENCRYPTION_KEYS decrypts them: put back the key they were encrypted "
                "with, or type the consumer key and secret again.")
    key_part = f"key …{key[-4:]}" if len(key) >= KEY_TAIL_MIN_LENGTH else f"key of {len(key)} characters"
    # rotated_at moves when the key, the secret or both change (the form takes either alone): it cannot tell which,
    # so a changed app shows when its credentials last changed rather than claiming a date for each.
    when = (f"last changed {timezone.localtime(app.rotated_at):%Y-%m-%d %H:%M %Z}" if app.rotated_at else
            f"set {timezone.localtime(app.created_at):%Y-%m-%d %H:%M %Z}")
    return f"{key_part} · secret {len(secret)} character{'s' if len(secret) != 1 else ''} · {when}"


class ExternalClientAppInline(admin.TabularInline):
    model = ExternalClientApp
    form = ExternalClientAppForm
    fields = ["name", "is_active", "new_consumer_key", "new_consumer_secret", "credentials"]
    readonly_fields = ["credentials"]

    def get_extra(self, request: HttpRequest, obj=None, **kwargs) -> int:
        return 0 if obj else 1  # a new org gets its credentials on the same page

    @admin.display(description="Credentials")
    def credentials(self, app: ExternalClientApp) -> str:
        return credentials_fingerprint(app)


@admin.register(Org)
class OrgAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "my_domain_url", "api_version", "is_active", "api_usage", "api_usage_seen_at",
                    "max_concurrent_calls", "paused_until"]
    list_filter = ["is_active", "api_version"]
    search_fields = ["name", "slug", "my_domain_url"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["api_usage", "api_usage_seen_at", "created_at", "updated_at"]
    inlines = [ExternalClientAppInline]
    actions = ["test_connection_action"]

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/test-connection/", wrap(self.test_connection_view), name="flows_org_test_connection"),
            path("<int:pk>/import-flows/", wrap(self.import_list_view), name="flows_org_import"),
            path("<int:pk>/import-flows/<str:api_name>/", wrap(self.import_preview_view),
                 name="flows_org_import_preview"),
            *super().get_urls(),
        ]

    def _org_for(self, request: HttpRequest, pk: int, *perms: str) -> Org:
        org = get_object_or_404(Org, pk=pk)
        if not self.has_change_permission(request, org) or not request.user.has_perms(perms):
            raise PermissionDenied
        return org

    def _render(self, request: HttpRequest, template: str, org: Org, **context) -> TemplateResponse:
        return TemplateResponse(request, template, {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": org, "org": org,
            **context,
        })

    def test_connection_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        org = self._org_for(request, pk)
        if request.method != "POST":  # a test makes calls that count against the org's limits: POST only
            return redirect("admin:flows_org_change", pk)
        report = org_test_connection(org=org)
        org.refresh_from_db()
        return self._render(request, "admin/flows/org/connection.html", org, report=report,
                            title=f"Test connection: {org.name}")

    # The same permission as the Test connection button: it calls Salesforce and drops the org's cached token.
    @admin.action(description="Test connection of the selected orgs", permissions=["change"])
    def test_connection_action(self, request: HttpRequest, queryset) -> None:
        for org in queryset:
            report = org_test_connection(org=org)
            if report.ok:
                messages.success(request, f"{org.slug}: connected; latest API version {report.latest_version}."
                                 + "".join(f" {w}" for w in report.warnings))
            else:
                messages.error(request, f"{org.slug}: {report.error.code}: {report.error.message}"
                               + (f" — {report.error.hint}" if report.error.hint else ""))

    def import_list_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        org = self._org_for(request, pk, "flows.add_flow", "flows.change_flow")
        try:
            remote = flow_list_remote(org=org)
            error = None
        except SalesforceError as failure:
            remote, error = [], failure
        return self._render(request, "admin/flows/org/import_list.html", org, remote=remote, error=error,
                            title=f"Import flows from {org.name}")

    def import_preview_view(self, request: HttpRequest, pk: int, api_name: str) -> HttpResponse:
        org = self._org_for(request, pk, "flows.add_flow", "flows.change_flow")
        try:
            preview = flow_import_preview(org=org, api_name=api_name)
        except SalesforceError as error:
            return self._render(request, "admin/flows/org/import_list.html", org, remote=[], error=error,
                                title=f"Import {api_name}")
        if request.method == "POST":
            flow = flow_import_apply(preview=preview)
            messages.success(request, f"Imported {flow.api_name} with {len(preview.inputs)} inputs.")
            return redirect("admin:flows_flow_change", flow.pk)
        return self._render(request, "admin/flows/org/import_preview.html", org, preview=preview,
                            title=f"Import {api_name}")

    @admin.display(description="API usage")
    def api_usage(self, org: Org) -> str:
        return usage(org)


class FlowInputInline(admin.TabularInline):
    model = FlowInput
    # One line per input: a description as a text box, not a textarea, so the table fits 1,280 px.
    formfield_overrides = {models.TextField: {"widget": forms.TextInput}}
    fields = ["order", "name", "type", "format", "is_collection", "required", "description"]
    extra = 0


POSTED_INPUT = re.compile(r"^inputs-(\d+)-name$")


class FlowForm(forms.ModelForm):
    class Meta:
        model = Flow
        fields = "__all__"

    def _inputs_after_save(self) -> dict[str, tuple[str, bool]]:
        """Name → (type, collection) of the inputs the flow will have once this page is saved: the stored ones,
        changed or deleted by the inline rows posted with it."""
        inputs = {i.name: (i.type, i.is_collection) for i in self.instance.inputs.all()} if self.instance.pk else {}
        by_id = {str(i.pk): i.name for i in self.instance.inputs.all()} if self.instance.pk else {}
        for key in self.data:
            if not (match := POSTED_INPUT.match(key)):
                continue
            prefix = f"inputs-{match.group(1)}-"
            inputs.pop(by_id.get(self.data.get(f"{prefix}id", ""), ""), None)
            if self.data.get(f"{prefix}DELETE") or not self.data.get(key):
                continue
            inputs[self.data[key]] = (self.data.get(f"{prefix}type", FlowInput.Type.TEXT),
                                      bool(self.data.get(f"{prefix}is_collection")))
        return inputs

    def clean_trigger_id_input(self) -> str:
        name = self.cleaned_data.get("trigger_id_input", "").strip()
        if not name:
            return ""
        found = self._inputs_after_save().get(name)
        if found is None:
            raise forms.ValidationError(f"This flow has no input named {name!r}: add it as a text input first "
                                        f"(import the flow again once it has the variable in Salesforce).")
        if found != (FlowInput.Type.TEXT, False):
            raise forms.ValidationError(f"{name} must be a single text input: it receives the trigger's key as "
                                        f"text.")
        return name


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    form = FlowForm
    list_display = ["api_name", "label", "org", "is_active", "delivery", "batch_enabled", "input_count",
                    "updated_at"]
    list_filter = ["is_active", "delivery", "batch_enabled", "org"]
    search_fields = ["api_name", "label", "org__slug"]
    list_select_related = ["org"]
    inlines = [FlowInputInline]

    def get_urls(self):
        fire = partial(console_views.flow_fire, source=Trigger.Source.ADMIN)
        return [
            path("<int:pk>/fire/", self.admin_site.admin_view(fire), name="flows_flow_fire"),
            *super().get_urls(),
        ]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(input_count=Count("inputs"))

    @admin.display(description="Inputs", ordering="input_count")
    def input_count(self, flow: Flow) -> int:
        return flow.input_count


class ExchangeInline(admin.TabularInline):
    model = Exchange
    fields = ["created_at", "kind", "method", "url", "response_status", "classification", "attempt", "late",
              "duration_ms", "network_error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["created_at", "id"]

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Trigger)
class TriggerAdmin(IndexedSearchMixin, ReadOnlyAdmin):
    list_display = ["id", "flow", "status_badge", "source", "who", "attempts", "error_code", "created_at",
                    "finished_at"]
    list_filter = ["status", "source", "flow__org", "flow", "created_at"]
    # Searches that indexes serve, and a capped count: the changelist stays fast at millions of rows.
    paginator = CappedCountPaginator
    search_id_fields = ("pk",)
    search_exact_fields = ("idempotency_key",)
    search_help_text = "A trigger id, or an idempotency key (exact)."
    list_select_related = ["flow__org", "actor"]
    show_full_result_count = False
    fields = ["flow", "status", "source", "actor", "actor_label", "key", "idempotency_key", "resend_of", "origin",
              "inputs", "outputs", "attempts", "next_attempt_at", "error_code", "error_message", "hint",
              "delivered_by", "delivered_at", "created_at", "updated_at", "finished_at"]
    readonly_fields = fields
    inlines = [ExchangeInline]
    actions = ["resend_action"]

    @admin.action(description="Re-send the selected triggers", permissions=["resend"])
    def resend_action(self, request: HttpRequest, queryset) -> HttpResponse | None:
        """Through a re-send job, as the console's filter-wide re-send: capped, confirmed with the chains' counts,
        recorded, followed on the job's page; never inside this request."""
        if request.POST.get("post") == "yes":  # confirmed: only what existed when the counts were shown
            max_id = request.POST.get("max_id", "")
            queryset = queryset.filter(pk__lte=int(max_id) if max_id.isascii() and max_id.isdigit() else 0)
        ids = list(queryset.order_by("-pk").values_list("pk", flat=True)[:MAX_JOB_SELECTION + 1])
        if len(ids) > MAX_JOB_SELECTION:
            self.message_user(request, format_html(
                'More than {} triggers selected: the admin re-sends at most {} at once. Narrow the selection, or '
                're-send every trigger matching a filter from <a href="{}">the console</a> (filter, then "Re-send '
                'all matching this filter…").', f"{MAX_JOB_SELECTION:,}", f"{MAX_JOB_SELECTION:,}",
                reverse("console:triggers")), messages.ERROR)
            return None
        if not ids:
            self.message_user(request, "None of the selected triggers is left to re-send.", messages.WARNING)
            return None
        if request.POST.get("post") == "yes":
            job = resend_job_create(trigger_ids=ids, actor=request.user,
                                    include_delivered=request.POST.get("include_delivered") == "on")
            self.message_user(request, f"Re-send job {job.pk} started for {job.total} triggers.", messages.SUCCESS)
            return redirect("console:job", pk=job.pk)
        return TemplateResponse(request, "console/admin_resend_confirm.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta,
            "title": "Re-send the selected triggers?",
            "counts": chain_counts(Trigger.objects.filter(pk__in=ids)), "max_id": ids[0],
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        })

    def has_resend_permission(self, request: HttpRequest) -> bool:
        # The action starts a re-send job: both permissions, as the console's filter-wide re-send asks.
        return request.user.has_perms(["flows.resend_trigger", "flows.add_resendjob"])

    @admin.display(description="Status", ordering="status")
    def status_badge(self, trigger: Trigger) -> str:
        colour = {"succeeded": "#2e7d32", "failed": "#c62828", "retrying": "#ef6c00",
                  "unknown": "#6a1b9a"}.get(trigger.status, "#555")
        return format_html('<strong style="color:{}">{}</strong>', colour, trigger.get_status_display())


@admin.register(Exchange)
class ExchangeAdmin(IndexedSearchMixin, ReadOnlyAdmin):
    # The method follows from the kind, and late answers have their filter: both off the list so it fits 1,280 px.
    list_display = ["id", "created_at", "org", "kind", "response_status", "classification", "duration_ms",
                    "trigger_id", "network_error"]
    list_filter = ["kind", ResponseStatusClassFilter, "classification", "late", "org", "created_at"]
    paginator = CappedCountPaginator
    search_id_fields = ("trigger_id",)
    search_help_text = "A trigger id."
    list_select_related = ["org"]
    show_full_result_count = False
    fields = ["org", "trigger", "kind", "method", "url", "request_headers", "request_body", "response_status",
              "response_headers", "response_body", "network_error", "classification", "attempt", "late",
              "duration_ms", "created_at"]
    readonly_fields = fields


@admin.register(ResendJob)
class ResendJobAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "created_by", "status", "total", "processed", "resent", "skipped"]
    list_filter = ["status", "created_at"]
    fields = ["created_by", "filters", "trigger_ids", "include_delivered", "max_trigger_id", "status", "total",
              "processed", "resent", "skipped", "skips", "error", "created_at", "started_at", "finished_at"]
    readonly_fields = fields

from .api import admin as api_admin  # noqa: E402,F401  (API keys)
from .webhooks import admin as webhooks_admin  # noqa: E402,F401  (Shopify webhooks, deliveries)


admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class PersonAdmin(UserAdmin):
    """Django's user admin, saying plainly when someone saved here still cannot use Flowgate, and why."""

    list_display = ["username", "email", "roles", "is_staff", "is_active", "last_login"]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="Groups")
    def roles(self, user) -> str:
        groups = ", ".join(sorted(group.name for group in user.groups.all()))
        return groups or ("none (superuser)" if user.is_superuser else "none")

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if "groups" in form.base_fields:
            form.base_fields["groups"].help_text = (
                f"{SUPPORT}: triggers, firing and re-sending. {ADMINS}: everything, credentials included. "
                "Either one turns on Staff status, which the admin and the console need to let someone in."
            )
        return form

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        user = form.instance
        user.refresh_from_db(fields=["is_staff", "is_active", "is_superuser"])
        problem = login_problem(user)
        if problem:
            messages.warning(request, f"User {user.get_username()} {problem}")
