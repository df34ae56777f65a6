"""The emulated org's flows: their describe shapes and per-interview input checks."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

COLLECTION_MAX_OCCURS = 2000


@dataclass(frozen=True)
class Variable:
    """A flow input or output variable, described like the Actions REST API does."""

    name: str
    label: str
    type: str = "STRING"
    required: bool = False
    collection: bool = False
    description: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "description": self.description,
            "type": self.type,
            "required": self.required,
            "maxOccurs": COLLECTION_MAX_OCCURS if self.collection else 1,
            "sobjectType": None,
            "byteLength": 0,
            "picklistValues": None,
        }


def _is_empty(value: Any) -> bool:
    return value is None or value == [] or (isinstance(value, str) and not value.strip())


def flow_error(status_code: str, message: str) -> dict[str, Any]:
    return {"statusCode": status_code, "message": message, "fields": []}


@dataclass(frozen=True)
class Flow:
    name: str
    label: str
    description: str
    inputs: tuple[Variable, ...]

    @cached_property
    def _input_names(self) -> frozenset[str]:
        return frozenset(variable.name for variable in self.inputs)

    def action(self, version: str) -> dict[str, Any]:
        """Entry of the `actions/custom/flow` list."""
        return {
            "label": self.label,
            "name": self.name,
            "type": "FLOW",
            "url": f"/services/data/v{version}/actions/custom/flow/{self.name}",
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "description": self.description,
            "type": "FLOW",
            "inputs": [variable.describe() for variable in self.inputs],
            "outputs": [variable.describe() for variable in _OUTPUTS],
        }

    def input_errors(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        """Per-interview errors for one input element (empty when the element is valid)."""
        errors = [
            flow_error("REQUIRED_FIELD_MISSING", f"Missing required input parameter: {variable.name}")
            for variable in self.inputs
            if variable.required and _is_empty(values.get(variable.name))
        ]
        # Salesforce's answer for an undeclared input is undocumented; this code is our choice.
        errors.extend(
            flow_error("INVALID_INPUT", f"Invalid input parameter: {name}")
            for name in values
            if name not in self._input_names
        )
        return errors


_OUTPUTS = (
    Variable("Flow__InterviewGuid", "Flow Interview GUID", description="ID of the flow interview"),
    Variable("Flow__InterviewStatus", "Flow Interview Status", description="Status of the flow interview"),
)

# Marketing Cloud Next On-Demand flows always offer these three inputs.
_ON_DEMAND_INPUTS = (
    Variable("EmailAddress", "Email Address"),
    Variable("IndividualId", "Individual ID", required=True, description="ID of the Individual DMO"),
    Variable("TelephoneNumber", "Telephone Number"),
)

FLOWS: dict[str, Flow] = {
    flow.name: flow
    for flow in (
        Flow(
            name="On_Demand_Flow",
            label="On Demand Flow",
            description="Sends a message to one individual.",
            inputs=_ON_DEMAND_INPUTS,
        ),
        Flow(
            name="Order_Confirmation",
            label="Order Confirmation",
            description="Confirms an order by email and, optionally, SMS.",
            inputs=_ON_DEMAND_INPUTS
            + (
                Variable("OrderNumber", "Order Number", required=True),
                Variable("OrderTotal", "Order Total", type="CURRENCY"),
                Variable("Items", "Items", collection=True),
                Variable("SendSms", "Send SMS", type="BOOLEAN"),
                Variable("OrderDate", "Order Date", type="DATE"),
            ),
        ),
    )
}
