"""Import flows and their inputs from an org's Actions API: list, describe, preview the changes, apply."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.db import transaction

from .models import Flow, FlowInput, Org
from .salesforce import SalesforceClient

Type = FlowInput.Type
Format = FlowInput.Format
# Describe types are upper-case (salesforce-api.md section 3); anything unknown imports as text.
DESCRIBE_TYPES = {
    "STRING": Type.TEXT, "TEXTAREA": Type.TEXT, "PICKLIST": Type.TEXT, "MULTIPICKLIST": Type.TEXT,
    "ID": Type.TEXT, "REFERENCE": Type.TEXT, "EMAIL": Type.TEXT, "PHONE": Type.TEXT, "URL": Type.TEXT,
    "DOUBLE": Type.NUMBER, "INTEGER": Type.NUMBER, "INT": Type.NUMBER, "LONG": Type.NUMBER,
    "NUMBER": Type.NUMBER, "DECIMAL": Type.NUMBER, "PERCENT": Type.NUMBER,
    "CURRENCY": Type.CURRENCY, "BOOLEAN": Type.BOOLEAN, "DATE": Type.DATE, "DATETIME": Type.DATETIME,
    "SOBJECT": Type.RECORD, "APEX": Type.RECORD,
}
# A name that says what its text holds (EmailAddress, ContactEmail, TelephoneNumber, MobilePhone): a format is
# offered on import. Salesforce's own EMAIL type is checked as an address by Salesforce, so it gets one too; its
# PHONE type is free text ("(415) 555-0123"), so only the name decides for phones.
EMAIL_WORDS = ("email",)
PHONE_WORDS = ("phone", "telephone", "mobile")
# ...unless a word of the name says it is about the address, not the address (EmailSubject, PhoneOptIn, MobileId):
# a wrong format would refuse every trigger carrying such a value. Whole words, so AccountEmail is an address.
NOT_A_VALUE_WORDS = {"subject", "body", "template", "opt", "consent", "status", "type", "count", "verified",
                     "bounce", "bounced", "message", "id"}
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str
    is_collection: bool
    required: bool
    description: str
    # Offered for a new input; an input imported before keeps the format it has (the admin may have changed it).
    format: str = Format.NONE

    @property
    def format_label(self) -> str:
        return dict(Format.choices)[self.format] if self.format else ""

    def differs_from(self, existing: FlowInput) -> list[str]:
        changes = []
        if existing.type != self.type:
            changes.append(f"type {existing.type} → {self.type}")
            if existing.format and self.type != Type.TEXT:
                changes.append(f"format {existing.get_format_display()} dropped (text only)")
        if existing.required != self.required:
            changes.append("now required" if self.required else "now optional")
        if existing.is_collection != self.is_collection:
            changes.append("now a collection" if self.is_collection else "no longer a collection")
        return changes


@dataclass
class ImportPreview:
    org: Org
    api_name: str
    label: str
    description: str
    inputs: list[InputSpec]
    flow: Flow | None = None
    added: list[InputSpec] = field(default_factory=list)
    removed: list[FlowInput] = field(default_factory=list)
    changed: list[tuple[InputSpec, list[str]]] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return self.flow is None or bool(self.added or self.removed or self.changed)

    @cached_property
    def rows(self) -> list[tuple[InputSpec, str, str]]:
        """Each input with the label of the format it will have once saved, and of a format offered but not set
        (an existing input keeps its own; the admin sets it on the flow's page)."""
        existing = {i.name: i for i in self.flow.inputs.all()} if self.flow else {}
        labels = dict(Format.choices)
        rows = []
        for spec in self.inputs:
            saved = import_format(spec, existing.get(spec.name))
            offered = spec.format if spec.format != saved else ""
            rows.append((spec, labels[saved] if saved else "", labels[offered] if offered else ""))
        return rows


def flow_list_remote(*, org: Org) -> list[dict[str, Any]]:
    """The org's flows as Salesforce lists them, each marked with the local Flow when imported already."""
    local = {flow.api_name: flow for flow in Flow.objects.filter(org=org)}
    return [
        {"name": action.get("name", ""), "label": action.get("label", ""), "flow": local.get(action.get("name"))}
        for action in SalesforceClient(org).list_flows()
        if action.get("name")
    ]


def suggested_format(name: str, kind: str, describe_type: str = "") -> str:
    """The format offered for an input: e-mail for an EMAIL or an e-mail-like name, E.164 for a phone-like name;
    none for any other, and for anything but text."""
    if kind != Type.TEXT:
        return Format.NONE
    lowered = name.lower()
    if NOT_A_VALUE_WORDS.intersection(word.lower() for word in _WORDS.findall(name)):
        return Format.NONE
    if describe_type == "EMAIL" or any(word in lowered for word in EMAIL_WORDS):
        return Format.EMAIL
    if any(word in lowered for word in PHONE_WORDS):
        return Format.E164
    return Format.NONE


def import_format(spec: InputSpec, existing: FlowInput | None) -> str:
    """The format an input has after the import: the one offered when it is new, its own when it exists (dropped
    when it is no longer text: only text takes a format)."""
    if spec.type != Type.TEXT:
        return Format.NONE
    return spec.format if existing is None else existing.format


def _spec(item: dict[str, Any]) -> InputSpec:
    max_occurs = item.get("maxOccurs") or 1
    name = str(item.get("name", ""))
    describe_type = str(item.get("type", "")).upper()
    kind = DESCRIBE_TYPES.get(describe_type, Type.TEXT)
    return InputSpec(
        name=name,
        type=kind,
        is_collection=isinstance(max_occurs, int) and max_occurs > 1,
        required=bool(item.get("required")),
        description=str(item.get("description") or item.get("label") or ""),
        format=suggested_format(name, kind, describe_type),
    )


def flow_import_preview(*, org: Org, api_name: str) -> ImportPreview:
    describe = SalesforceClient(org).describe_flow(api_name) or {}
    specs = [_spec(item) for item in describe.get("inputs") or [] if isinstance(item, dict) and item.get("name")]
    preview = ImportPreview(
        org=org, api_name=api_name, label=str(describe.get("label") or api_name),
        description=str(describe.get("description") or ""), inputs=specs,
        flow=Flow.objects.filter(org=org, api_name=api_name).first(),
    )
    existing = {i.name: i for i in preview.flow.inputs.all()} if preview.flow else {}
    for spec in specs:
        if spec.name not in existing:
            preview.added.append(spec)
        elif changes := spec.differs_from(existing[spec.name]):
            preview.changed.append((spec, changes))
    names = {spec.name for spec in specs}
    preview.removed = [i for name, i in existing.items() if name not in names]
    return preview


@transaction.atomic
def flow_import_apply(*, preview: ImportPreview) -> Flow:
    flow, _ = Flow.objects.update_or_create(
        org=preview.org, api_name=preview.api_name,
        defaults={"label": preview.label, "description": preview.description},
    )
    FlowInput.objects.filter(flow=flow).exclude(name__in=[s.name for s in preview.inputs]).delete()
    for order, spec in enumerate(preview.inputs):
        defaults = {"type": spec.type, "is_collection": spec.is_collection, "required": spec.required,
                    "description": spec.description, "order": order}
        if spec.type != Type.TEXT:
            defaults["format"] = Format.NONE  # only text takes a format (FlowInput.clean)
        FlowInput.objects.update_or_create(
            flow=flow, name=spec.name, defaults=defaults,
            create_defaults={**defaults, "format": import_format(spec, None)},
        )
    names = {spec.name for spec in preview.inputs}
    if flow.trigger_id_input and flow.trigger_id_input not in names:
        flow.trigger_id_input = ""  # the flow lost the input: sending it would make Salesforce refuse every call
        flow.save(update_fields=["trigger_id_input", "updated_at"])
    elif not flow.trigger_id_input and (found := trigger_id_input_candidate(preview.inputs)):
        flow.trigger_id_input = found  # the README's convention: a flow built to check Flowgate's key
        flow.save(update_fields=["trigger_id_input", "updated_at"])
    return flow


TRIGGER_ID_INPUT_NAMES = {"flowgatetriggerid", "flowgate_trigger_id"}


def trigger_id_input_candidate(specs: list[InputSpec]) -> str:
    """The flow's input named as the README suggests for Flowgate's trigger key (FlowgateTriggerId), if it is a
    single text input."""
    for spec in specs:
        if spec.name.lower() in TRIGGER_ID_INPUT_NAMES and spec.type == Type.TEXT and not spec.is_collection:
            return spec.name
    return ""
