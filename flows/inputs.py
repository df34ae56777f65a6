"""Trigger inputs checked against a flow's FlowInputs: every problem found at once, keyed by input name."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from .models import FlowInput

Type = FlowInput.Type
Format = FlowInput.Format
MAX_TEXT_LENGTH = 131072  # Salesforce's long text limit
TRUE_WORDS = {"true", "1", "yes", "y", "on"}
FALSE_WORDS = {"false", "0", "no", "n", "off"}
# Levels of lists and objects inside one input. Salesforce's Apex-defined types are shallow; a value nested
# about a thousand deep overflows Python's JSON encoder when the trigger is saved (a 500 instead of a 400).
MAX_NESTING = 32
# Python turns at most 4,300 digits into text (sys.int_info); a longer integer could not be saved or sent.
MAX_INTEGER_DIGITS = 4000
_TOO_LARGE = 10**MAX_INTEGER_DIGITS
# The same words from the fire form, the API, the command line and webhook mappings: what to type, with an example.
# The value itself is not repeated: it is personal data, and the caller has it.
FORMAT_MESSAGES = {
    Format.EMAIL: "Enter an e-mail address such as ada@example.com.",
    Format.E164: "Enter a phone number in E.164 form: + then country code and number, without spaces or dashes, "
                 "e.g. +14155550123.",
}
# [0-9], not \d: \d also takes Arabic-Indic and other digits, which no phone network dials.
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_is_email = EmailValidator()


class InputValidationError(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in errors.items()))
        self.errors = errors


def text_problem(text: str) -> str | None:
    """What PostgreSQL cannot store in a text or jsonb column: a NUL, or an unpaired surrogate (which is not
    UTF-8; the command line makes them of undecodable bytes)."""
    if "\x00" in text:
        return "Text must not contain NUL characters."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "Text must not contain unpaired surrogates (\\ud800 to \\udfff)."
    return None


def json_problem(value: Any) -> str | None:
    """None when `value` can be saved as jsonb and sent to Salesforce: JSON types only (Python callers may pass
    anything), text as text_problem wants it, finite numbers of at most MAX_INTEGER_DIGITS digits, and at most
    MAX_NESTING levels deep. Walked without recursion, however deep the value."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        problem = None
        if isinstance(item, str):
            problem = text_problem(item)
        elif item is None or isinstance(item, bool):
            pass
        elif isinstance(item, int):
            if abs(item) >= _TOO_LARGE:
                problem = f"A number has more than {MAX_INTEGER_DIGITS} digits."
        elif isinstance(item, float):
            if not math.isfinite(item):
                problem = "Numbers must be finite (not NaN or Infinity)."
        elif isinstance(item, (list, dict)):
            if depth >= MAX_NESTING:
                return f"Nested deeper than {MAX_NESTING} levels."
            if isinstance(item, dict):
                if not all(isinstance(key, str) for key in item):
                    return "Field names must be text."
                stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
        else:
            problem = f"A {type(item).__name__} is not a JSON value (text, number, true, false, null, list, object)."
        if problem:
            return problem
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN != NaN


def _check_scalar(kind: str, value: Any) -> str | None:
    """None when `value` (already JSON-typed) fits the type, else what is wrong with it."""
    if kind == Type.TEXT:
        if not isinstance(value, str):
            return f"Expected text, got {type(value).__name__}."
        if len(value) > MAX_TEXT_LENGTH:
            return f"Text is longer than {MAX_TEXT_LENGTH} characters."
        return text_problem(value)
    elif kind in (Type.NUMBER, Type.CURRENCY):
        if not _is_number(value) or value in (float("inf"), float("-inf")):
            return f"Expected a number, got {type(value).__name__}."
    elif kind == Type.BOOLEAN:
        if not isinstance(value, bool):
            return f"Expected true or false, got {type(value).__name__}."
    elif kind == Type.DATE:
        if not isinstance(value, str):
            return "Expected a date as YYYY-MM-DD."
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):  # fromisoformat also takes week dates
            return f"{value[:40]!r} is not a date as YYYY-MM-DD."
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return f"{value[:40]!r} is not a date as YYYY-MM-DD."
    elif kind == Type.DATETIME:
        if not isinstance(value, str):
            return "Expected a date and time as ISO 8601, e.g. 2026-11-28T09:30:00Z."
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return f"{value[:40]!r} is not a date and time as ISO 8601, e.g. 2026-11-28T09:30:00Z."
        if parsed.tzinfo is None:
            return "Give the time zone too, e.g. 2026-11-28T09:30:00Z or +01:00."
    elif kind == Type.RECORD:
        if not isinstance(value, dict):
            return "Expected a record as a JSON object of field names to values."
    return None


def format_problem(fmt: str, value: str) -> str | None:
    """None when a text value has its input's format (or the input has none), else what to type instead.

    The value is checked as given, never rewritten: what passes is exactly what Salesforce receives."""
    if fmt == Format.EMAIL:
        try:
            _is_email(value)
        except ValidationError:
            return FORMAT_MESSAGES[Format.EMAIL]
    elif fmt == Format.E164:
        if not E164.fullmatch(value):  # fullmatch: $ would let a trailing newline through
            return FORMAT_MESSAGES[Format.E164]
    return None


def _check_value(field: FlowInput, value: Any) -> str | None:
    """None when one value (or one item of a collection) fits the input's type and, for text, its format."""
    problem = _check_scalar(field.type, value)
    if problem is None and field.type == Type.TEXT and field.format:
        problem = format_problem(field.format, value)
    return problem


def reserved_input_problem(name: str) -> str:
    return (f"{name} is filled by Flowgate with the trigger's key (it is this flow's trigger id input): "
            f"leave it out.")


def validate_inputs(schema: Iterable[FlowInput], values: Any, *, reserved: str = "") -> dict[str, Any]:
    """Returns the inputs to send (None values dropped), or raises InputValidationError naming every problem.

    `reserved` is the flow's trigger id input: Flowgate fills it at each call, so a caller may not."""
    if not isinstance(values, Mapping):
        raise InputValidationError({"inputs": ["Inputs must be an object of input names to values."]})
    fields = {field.name: field for field in schema if not reserved or field.name != reserved}
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        if reserved and name == reserved:
            errors.setdefault(name, []).append(reserved_input_problem(name))
            continue
        field = fields.get(name) if isinstance(name, str) else None
        if field is None:
            known = ", ".join(fields) or "none"
            errors.setdefault(str(name)[:80], []).append(f"Unknown input. This flow's inputs are: {known}.")
            continue
        # Blank means not given, except for a plain text input, where "" is a value. An empty e-mail address or
        # phone number is not one of either format: it is left out (a required one is reported below).
        if value is None or (isinstance(value, str) and not value.strip()
                             and (field.type != Type.TEXT or field.format)):
            continue
        if field.is_collection:
            if not isinstance(value, list):
                errors.setdefault(name, []).append("Expected a list (this input is a collection).")
                continue
            problems = [f"Item {i + 1}: {p}" for i, item in enumerate(value) if (p := _check_value(field, item))]
            if problems:
                errors.setdefault(name, []).extend(problems[:5])
                continue
        elif problem := _check_value(field, value):
            errors.setdefault(name, []).append(problem)
            continue
        if problem := json_problem(value):  # what a record or a number holds must be storable too
            errors.setdefault(name, []).append(problem)
            continue
        cleaned[name] = value
    for name, field in fields.items():
        if field.required and name not in errors and _is_blank(cleaned.get(name)):
            errors.setdefault(name, []).append("This input is required.")
            cleaned.pop(name, None)
    if errors:
        raise InputValidationError(errors)
    return cleaned


def _is_blank(value: Any) -> bool:
    return value is None or value == [] or (isinstance(value, str) and not value.strip())


def parse_text_value(field: FlowInput, raw: str) -> Any:
    """Converts a value typed as text (command line, HTML form) to the JSON type its input expects.

    Raises ValueError with a message for the user. Collections take a JSON array or comma-separated items.
    """
    if field.is_collection:
        raw = raw.strip()
        if raw.startswith("["):
            items = json.loads(raw)
            if not isinstance(items, list):
                raise ValueError("Expected a JSON array.")
            return items
        return [_parse_scalar(field.type, item.strip()) for item in raw.split(",") if item.strip()]
    return _parse_scalar(field.type, raw)


def parse_text_items(field: FlowInput, items: list[str]) -> list[Any]:
    """A collection typed item by item (one per line in a form)."""
    return [_parse_scalar(field.type, item) for item in items]


def _parse_scalar(kind: str, raw: str) -> Any:
    if kind in (Type.NUMBER, Type.CURRENCY):
        try:
            number = Decimal(raw.strip())
        except InvalidOperation:
            raise ValueError(f"{raw[:40]!r} is not a number.") from None
        if not number.is_finite():
            raise ValueError(f"{raw[:40]!r} is not a number.")
        return int(number) if number == number.to_integral_value() and "." not in raw else float(number)
    if kind == Type.BOOLEAN:
        word = raw.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError(f"{raw[:40]!r} is not true or false.")
    if kind == Type.RECORD:
        try:
            return json.loads(raw)
        except ValueError:
            raise ValueError("Expected a record as a JSON object, e.g. {\"Name\": \"Acme\"}.") from None
    return raw


def caller_inputs(flow: Any) -> list[FlowInput]:
    """The flow's inputs a caller may fill: all but its trigger id input, which Flowgate fills."""
    return [field for field in flow.inputs.all() if field.name != flow.trigger_id_input]


def parse_text_values(schema: Iterable[FlowInput], raw: Mapping[str, str], *, reserved: str = "") -> dict[str, Any]:
    """Converts NAME=VALUE strings by their input types, then validates; every problem is reported at once."""
    fields = {field.name: field for field in schema if not reserved or field.name != reserved}
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    for name, text in raw.items():
        field = fields.get(name)
        if field is None:
            values[name] = text  # validate_inputs names it as unknown
            continue
        if (field.type != Type.TEXT or field.format) and not text.strip():
            continue  # blank means not given (HTML forms post every field); a required one is reported below
        try:
            values[name] = parse_text_value(field, text)
        except ValueError as error:
            errors.setdefault(name, []).append(str(error))
    try:
        cleaned = validate_inputs(fields.values(), values, reserved=reserved)
    except InputValidationError as invalid:
        for name, messages in invalid.errors.items():
            errors.setdefault(name, messages)  # an unparsable value is not also reported as missing
    if errors:
        raise InputValidationError(errors)
    return cleaned
