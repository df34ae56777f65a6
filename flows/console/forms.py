from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone

from ..inputs import caller_inputs, parse_text_items
from ..models import Flow, FlowInput, Org, ResendJob, Trigger
from ..selectors import SINCE_FORMAT, parse_since

STATUS_CHOICES = [("", "any status"), *Trigger.Status.choices]
SOURCE_CHOICES = [("", "any source"), *Trigger.Source.choices]
RESENT_CHOICES = [("", "re-sent or not"), ("no", "not re-sent")]


class TriggerFilterForm(forms.Form):
    """The console's filter. Its cleaned, string-only `params` are what a re-send job stores and replays."""

    q = forms.CharField(required=False, label="Search",
                        widget=forms.TextInput(attrs={"placeholder": "email, phone, IndividualId or trigger id"}))
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False)
    org = forms.ModelChoiceField(queryset=Org.objects.all(), required=False, to_field_name="slug",
                                 empty_label="any org")
    flow = forms.ModelChoiceField(queryset=Flow.objects.select_related("org"), required=False,
                                  empty_label="any flow")
    source = forms.ChoiceField(choices=SOURCE_CHOICES, required=False)
    error_code = forms.CharField(required=False, label="Error code",
                                 widget=forms.TextInput(attrs={"placeholder": "error code"}))
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    # The dashboard's "needs a person" links: failed in the last 24 hours and not re-sent since.
    since = forms.DateTimeField(required=False, label="Since", widget=forms.DateTimeInput(
        attrs={"type": "datetime-local"}, format=SINCE_FORMAT))
    resent = forms.ChoiceField(choices=RESENT_CHOICES, required=False, label="Re-sent")

    FIELDS = ("q", "status", "org", "flow", "source", "error_code", "date_from", "date_to", "since", "resent")

    @classmethod
    def from_request(cls, data: Any) -> TriggerFilterForm:
        """A bare /console/ opens on failed triggers; any filter given (even 'any status') replaces that."""
        if not any(name in data for name in (*cls.FIELDS, "before")):
            data = {"status": Trigger.Status.FAILED}
        return cls(data)

    @property
    def params(self) -> dict[str, str]:
        params = {}
        for name in self.FIELDS:
            value = self.cleaned_data.get(name)
            if value in (None, ""):
                continue
            if isinstance(value, Org):
                value = value.slug
            elif isinstance(value, Flow):
                value = value.pk
            elif isinstance(value, dt.datetime):  # as the Since field shows it (local time, minutes): it round-trips
                value = timezone.localtime(value).strftime(SINCE_FORMAT)
            elif isinstance(value, dt.date):
                value = value.isoformat()
            params[name] = str(value).strip()
        return params


def describe_filter(params: Mapping[str, str]) -> str:
    """A console filter (TriggerFilterForm.params) in words, for the pages that confirm or report a re-send."""
    words = []
    if q := params.get("q"):
        words.append(f"with an input equal to “{q}” (or trigger id {q})" if q.isascii() and q.isdigit()
                     else f"with an input equal to “{q}”")
    if org := params.get("org"):
        words.append(f"in the org {org}")
    if flow_id := params.get("flow"):
        flow = Flow.objects.select_related("org").filter(pk=flow_id).first() if flow_id.isdigit() else None
        words.append(f"of the flow {flow or f'#{flow_id} (deleted)'}")
    if source := params.get("source"):
        words.append(f"from the source {dict(Trigger.Source.choices).get(source, source)}")
    if error_code := params.get("error_code"):
        words.append(f"with the error code {error_code}")
    if date_from := params.get("date_from"):
        words.append(f"created on {date_from} or later")
    if date_to := params.get("date_to"):
        words.append(f"created on {date_to} or earlier")
    if since := params.get("since"):
        words.append(f"created since {timezone.localtime(parse_since(since)):%Y-%m-%d %H:%M}")
    if params.get("resent") == "no":
        words.append("not re-sent")
    status = params.get("status")
    subject = f"every {status} trigger" if status else "every trigger"
    if not words:
        return subject if status else "every trigger (no filter)"
    return f"{subject} {', '.join(words)}"


def describe_job(job: ResendJob) -> str:
    if job.trigger_ids is not None:
        n = len(job.trigger_ids)
        return f"{n} trigger{'s' if n != 1 else ''} selected in the admin"
    return describe_filter(job.filters)


def _json_number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


# The hint under a text input with a format (single value, collection). The check itself is validate_inputs' (the
# page is novalidate), so the form says exactly what the API and the command line say.
FORMAT_HINTS = {
    FlowInput.Format.EMAIL: ("E-mail address.", "One e-mail address per line."),
    FlowInput.Format.E164: ("Phone, E.164: +14155550123.", "One phone number per line, E.164: +14155550123."),
}


class FireForm(forms.Form):
    """A form generated from a flow's inputs, with typed widgets; values come out as the JSON types to send."""

    def __init__(self, *args: Any, flow: Flow, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flow = flow
        self.schema = caller_inputs(flow)  # never the trigger id input: Flowgate fills it
        for field in self.schema:
            self.fields[field.name] = self._form_field(field)

    @staticmethod
    def _help(description: str, extra: str) -> str:
        """The input's description, then what the field takes, as two sentences ("Items. One text per line.")."""
        description = description.strip()
        if description and description[-1] not in ".!?:":
            description += "."
        return f"{description} {extra}".strip()

    @staticmethod
    def _form_field(field: FlowInput) -> forms.Field:
        common = {"required": field.required, "help_text": field.description, "label": field.name}
        Type = FlowInput.Type
        hint = FORMAT_HINTS.get(field.format) if field.type == Type.TEXT else None
        if field.is_collection:
            return forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), **{
                **common, "help_text": FireForm._help(field.description, hint[1] if hint else
                                                      f"One {field.get_type_display().lower()} per line.")})
        if field.type == Type.NUMBER:
            return forms.DecimalField(widget=forms.NumberInput(attrs={"step": "any"}), **common)
        if field.type == Type.CURRENCY:
            return forms.DecimalField(decimal_places=2, widget=forms.NumberInput(attrs={"step": "0.01"}), **common)
        if field.type == Type.BOOLEAN:
            # Salesforce's booleans are true or false; an optional one may also be left out ("not sent"), never
            # "Unknown".
            return forms.TypedChoiceField(
                choices=[("", "—" if field.required else "— not sent"), ("true", "Yes"), ("false", "No")],
                coerce=lambda v: v == "true", empty_value=None, **common)
        if field.type == Type.DATE:
            return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **common)
        if field.type == Type.DATETIME:
            return forms.DateTimeField(
                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
                **{**common, "help_text": FireForm._help(
                    field.description, f"Time zone: {timezone.get_current_timezone_name()}.")},
            )
        if field.type == Type.RECORD:
            return forms.JSONField(widget=forms.Textarea(attrs={"rows": 3}), **{
                **common, "help_text": FireForm._help(field.description, "A JSON object of field names to values.")})
        if hint:
            # The keyboard a phone shows, nothing more: the browser does not check (novalidate), Flowgate does.
            widget = (forms.EmailInput() if field.format == FlowInput.Format.EMAIL
                      else forms.TextInput(attrs={"type": "tel", "placeholder": "+14155550123"}))
            return forms.CharField(widget=widget, **{**common, "help_text": FireForm._help(field.description, hint[0])})
        return forms.CharField(**common)

    def inputs(self) -> dict[str, Any]:
        """The cleaned values as JSON types; call after is_valid()."""
        values: dict[str, Any] = {}
        for field in self.schema:
            value = self.cleaned_data.get(field.name)
            if value in (None, "", []):
                continue
            if field.is_collection:
                try:
                    value = parse_text_items(field, [line.strip() for line in value.splitlines() if line.strip()])
                except ValueError as error:
                    self.add_error(field.name, str(error))
                    continue
            elif isinstance(value, Decimal):
                value = _json_number(value)
            elif isinstance(value, dt.datetime):
                value = (value if timezone.is_aware(value) else timezone.make_aware(value)).isoformat()
            elif isinstance(value, dt.date):
                value = value.isoformat()
            values[field.name] = value
        return values
