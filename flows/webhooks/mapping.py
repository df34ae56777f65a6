"""Flow inputs taken from a webhook payload.

A mapping gives each input an expression: alternatives separated by `|`, the first with a value wins. An
alternative is a dotted path into the payload (`customer.email`, `line_items.0.sku`) or a literal: text in
double quotes (JSON string syntax), a number, `true` or `false`. Missing keys, nulls and blank text count as
no value, so `email | contact_email | customer.email` falls through to the customer's address, and a payload
without any contact data (Shopify withholds protected customer data from unapproved apps) maps to nothing
rather than failing. The value found is converted to the input's type: Shopify's numeric ids become text for
a text input.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ..models import FlowInput

Type = FlowInput.Type
MAX_EXPRESSION_LENGTH = 500
_PATH = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# One alternative: a double-quoted JSON string (which may hold a |) or anything up to the next |.
_ALTERNATIVE = re.compile(r'\s*("(?:[^"\\]|\\.)*"|[^|]*?)\s*(\||$)')


class MappingError(ValueError):
    """An expression that cannot be read, or a value that does not fit its input."""


@dataclass(frozen=True)
class Alternative:
    path: str | None = None
    literal: Any = None

    def __str__(self) -> str:
        return self.path if self.path is not None else json.dumps(self.literal)


def parse_expression(expression: Any) -> list[Alternative]:
    if not isinstance(expression, str) or not expression.strip():
        raise MappingError("Give a dotted path into the payload, alternatives separated by |, or a literal.")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise MappingError(f"Longer than {MAX_EXPRESSION_LENGTH} characters.")
    alternatives: list[Alternative] = []
    position = 0
    while position < len(expression):
        match = _ALTERNATIVE.match(expression, position)
        token = match.group(1) if match else ""
        if not token:
            raise MappingError(f"An empty alternative at character {position + 1}: remove the extra |.")
        alternatives.append(_parse_alternative(token))
        position = match.end()
        if match.group(2) == "|" and position == len(expression):
            raise MappingError("The expression ends with |: add the alternative or remove the |.")
    return alternatives


def _parse_alternative(token: str) -> Alternative:
    if token.startswith('"'):
        try:
            return Alternative(literal=json.loads(token))
        except ValueError:
            raise MappingError(f"{token[:40]} is not a literal in double quotes.") from None
    if token in ("true", "false"):
        return Alternative(literal=token == "true")
    if _NUMBER.fullmatch(token):
        return Alternative(literal=json.loads(token))
    if _PATH.fullmatch(token):
        return Alternative(path=token)
    raise MappingError(f"{token[:40]!r} is neither a dotted path (letters, digits, _ and - between dots) nor a "
                       f"literal (\"text\", a number, true or false).")


def _has_value(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip()) and value != [] and value != {}


def lookup(payload: Any, path: str) -> Any:
    """The value at a dotted path, or None; numeric parts index lists."""
    value = payload
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def resolve(alternatives: Iterable[Alternative], payload: Any) -> Any:
    """The first alternative with a value, or None."""
    for alternative in alternatives:
        value = lookup(payload, alternative.path) if alternative.path is not None else alternative.literal
        if _has_value(value):
            return value
    return None


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "text"}.get(type(value), "a number")


def convert(field: FlowInput, value: Any) -> Any:
    """The payload's value in the JSON type the input expects; MappingError when it cannot be."""
    if field.is_collection:
        items = value if isinstance(value, list) else [value]
        return [_convert_scalar(field.type, item) for item in items]
    if isinstance(value, list):
        raise MappingError(f"Found a list, but {field.name} takes one value.")
    return _convert_scalar(field.type, value)


def _convert_scalar(kind: str, value: Any) -> Any:
    if kind == Type.TEXT:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float, str)):
            return str(value)  # Shopify's ids are numbers: 115310627314723950 → "115310627314723950"
    elif kind in (Type.NUMBER, Type.CURRENCY):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if isinstance(value, str):  # Shopify sends amounts as text: "414.95"
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                raise MappingError(f"{value[:40]!r} is not a number.") from None
            if number.is_finite():
                return int(number) if number == number.to_integral_value() and "." not in value else float(number)
            raise MappingError(f"{value[:40]!r} is not a number.")
    elif kind == Type.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
    elif kind == Type.DATE:
        if isinstance(value, str):
            try:  # Shopify's timestamps (2021-12-31T19:00:00-05:00) give their local date
                return dt.datetime.fromisoformat(value).date().isoformat() if "T" in value else value
            except ValueError:
                return value  # validate_inputs names the problem
    elif kind == Type.DATETIME:
        if isinstance(value, str):
            return value
    elif kind == Type.RECORD:
        if isinstance(value, dict):
            return value
    raise MappingError(f"Found {_type_name(value)}, which does not fit a {kind} input.")


RESERVED_INPUT = ("Flowgate fills this input itself with the trigger's key (it is the flow's trigger id input): "
                  "remove it from the mapping.")


def validate_mapping(mapping: Any, schema: Iterable[FlowInput], *, reserved: str = "") -> dict[str, list[str]]:
    """Problems with a stored mapping, keyed by input name (empty when it is fine). `schema` is what a caller may
    fill (inputs.caller_inputs); `reserved`, the flow's trigger id input, gets its own message."""
    if not isinstance(mapping, Mapping):
        return {"mapping": ['Write the mapping as a JSON object: {"InputName": "path | path", ...}.']}
    fields = {field.name: field for field in schema if not reserved or field.name != reserved}
    errors: dict[str, list[str]] = {}
    for name, expression in mapping.items():
        if reserved and name == reserved:
            errors.setdefault(name, []).append(RESERVED_INPUT)
            continue
        if name not in fields:
            known = ", ".join(fields) or "none"
            errors.setdefault(name, []).append(f"The flow has no such input. Its inputs: {known}.")
            continue
        try:
            parse_expression(expression)
        except MappingError as error:
            errors.setdefault(name, []).append(str(error))
    for name, field in fields.items():
        if field.required and name not in mapping:
            errors.setdefault(name, []).append("A required input: map it.")
    return errors


def map_payload(mapping: Mapping[str, str], schema: Iterable[FlowInput], payload: Any, *, reserved: str = ""
                ) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The inputs the payload fills, and the problems: required inputs nothing filled, values of a wrong type, the
    flow's trigger id input (`reserved`) mapped.

    An optional input with no value in the payload is left out: the flow runs without it.
    """
    fields = {field.name: field for field in schema if not reserved or field.name != reserved}
    inputs: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    for name, expression in mapping.items():
        if reserved and name == reserved:
            problems.setdefault(name, []).append(RESERVED_INPUT)
            continue
        field = fields.get(name)
        if field is None:
            problems.setdefault(name, []).append("Mapped, but the flow has no such input any more.")
            continue
        try:
            alternatives = parse_expression(expression)
            value = resolve(alternatives, payload)
            if value is None:
                if field.required:
                    tried = " | ".join(str(a) for a in alternatives)
                    problems.setdefault(name, []).append(f"Required, but the payload has no value at {tried}.")
                continue
            inputs[name] = convert(field, value)
        except MappingError as error:
            problems.setdefault(name, []).append(str(error))
    for name, field in fields.items():
        if field.required and name not in mapping:
            problems.setdefault(name, []).append("Required, but the webhook's mapping does not fill it.")
    return inputs, problems
