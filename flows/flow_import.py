"""Import flows and their inputs from an org's Actions API: list, describe, preview the changes, apply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from .models import Flow, FlowInput, Org
from .salesforce import SalesforceClient

Type = FlowInput.Type
# Describe types are upper-case (salesforce-api.md section 3); anything unknown imports as text.
DESCRIBE_TYPES = {
    "STRING": Type.TEXT, "TEXTAREA": Type.TEXT, "PICKLIST": Type.TEXT, "MULTIPICKLIST": Type.TEXT,
    "ID": Type.TEXT, "REFERENCE": Type.TEXT, "EMAIL": Type.TEXT, "PHONE": Type.TEXT, "URL": Type.TEXT,
    "DOUBLE": Type.NUMBER, "INTEGER": Type.NUMBER, "INT": Type.NUMBER, "LONG": Type.NUMBER,
    "NUMBER": Type.NUMBER, "DECIMAL": Type.NUMBER, "PERCENT": Type.NUMBER,
    "CURRENCY": Type.CURRENCY, "BOOLEAN": Type.BOOLEAN, "DATE": Type.DATE, "DATETIME": Type.DATETIME,
    "SOBJECT": Type.RECORD, "APEX": Type.RECORD,
}


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str
    is_collection: bool
    required: bool
    description: str

    def differs_from(self, existing: FlowInput) -> list[str]:
        changes = []
        if existing.type != self.type:
            changes.append(f"type {existing.type} → {self.type}")
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


def flow_list_remote(*, org: Org) -> list[dict[str, Any]]:
    """The org's flows as Salesforce lists them, each marked with the local Flow when imported already."""
    local = {flow.api_name: flow for flow in Flow.objects.filter(org=org)}
    return [
        {"name": action.get("name", ""), "label": action.get("label", ""), "flow": local.get(action.get("name"))}
        for action in SalesforceClient(org).list_flows()
        if action.get("name")
    ]


def _spec(item: dict[str, Any]) -> InputSpec:
    max_occurs = item.get("maxOccurs") or 1
    return InputSpec(
        name=str(item.get("name", "")),
        type=DESCRIBE_TYPES.get(str(item.get("type", "")).upper(), Type.TEXT),
        is_collection=isinstance(max_occurs, int) and max_occurs > 1,
        required=bool(item.get("required")),
        description=str(item.get("description") or item.get("label") or ""),
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
        FlowInput.objects.update_or_create(
            flow=flow, name=spec.name,
            defaults={"type": spec.type, "is_collection": spec.is_collection, "required": spec.required,
                      "description": spec.description, "order": order},
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
