"""Mapping expressions: paths with fallbacks and literals, converted to the inputs' types."""

from __future__ import annotations

import pytest

from flows.models import FlowInput
from flows.webhooks.mapping import (
    Alternative,
    MappingError,
    convert,
    map_payload,
    parse_expression,
    resolve,
    validate_mapping,
)

from .conftest import DEMO_MAPPING, fixture_payload


def field(name: str = "X", type: str = "text", required: bool = False, collection: bool = False) -> FlowInput:
    return FlowInput(name=name, type=type, required=required, is_collection=collection)


SCHEMA = [field("EmailAddress"), field("IndividualId", required=True), field("TelephoneNumber")]


def test_an_expression_is_alternatives_of_paths_and_literals():
    assert parse_expression(' email | customer.email|"a | b" | 42 | -1.5 | true ') == [
        Alternative(path="email"), Alternative(path="customer.email"), Alternative(literal="a | b"),
        Alternative(literal=42), Alternative(literal=-1.5), Alternative(literal=True),
    ]


@pytest.mark.parametrize("expression, message", [
    ("", "Give a dotted path into the payload, alternatives separated by |, or a literal."),
    (None, "Give a dotted path into the payload, alternatives separated by |, or a literal."),
    ("email |", "The expression ends with |: add the alternative or remove the |."),
    ("| email", "An empty alternative at character 1: remove the extra |."),
    ("email || phone", "An empty alternative at character 8: remove the extra |."),
    ('"unclosed', '"unclosed is not a literal in double quotes.'),
    ("customer email", "'customer email' is neither a dotted path (letters, digits, _ and - between dots) nor a "
                       "literal (\"text\", a number, true or false)."),
    ("x" * 501, "Longer than 500 characters."),
])
def test_a_bad_expression_says_what_is_wrong(expression, message):
    with pytest.raises(MappingError) as error:
        parse_expression(expression)
    assert str(error.value) == message


def test_the_first_alternative_with_a_value_wins():
    payload = {"phone": None, "contact": {"phone": "  "}, "billing_address": {"phone": "555-0100"},
               "customer": {"phone": "555-0199"}, "lines": [{"sku": "A"}, {"sku": "B"}]}

    assert resolve(parse_expression("phone | contact.phone | billing_address.phone | customer.phone"),
                   payload) == "555-0100"
    assert resolve(parse_expression("lines.1.sku"), payload) == "B"
    assert resolve(parse_expression("lines.9.sku | nothing.here | \"fallback\""), payload) == "fallback"
    assert resolve(parse_expression("phone | lines.sku | customer.phone.deeper"), payload) is None


@pytest.mark.parametrize("kind, value, expected", [
    ("text", 115310627314723950, "115310627314723950"),  # Shopify's numeric ids become text
    ("text", 4.5, "4.5"),
    ("text", True, "true"),
    ("number", "414.95", 414.95),
    ("number", "12", 12),
    ("currency", 3, 3),
    ("boolean", "TRUE", True),
    ("boolean", False, False),
    ("date", "2021-12-31T19:00:00-05:00", "2021-12-31"),
    ("date", "2021-12-31", "2021-12-31"),
    ("datetime", "2021-12-31T19:00:00-05:00", "2021-12-31T19:00:00-05:00"),
    ("record", {"a": 1}, {"a": 1}),
])
def test_values_are_converted_to_the_inputs_type(kind, value, expected):
    assert convert(field(type=kind), value) == expected


@pytest.mark.parametrize("kind, value, message", [
    ("text", {"id": 1}, "Found an object, which does not fit a text input."),
    ("text", [1, 2], "Found a list, but X takes one value."),
    ("number", "abc", "'abc' is not a number."),
    ("number", "NaN", "'NaN' is not a number."),
    ("boolean", "maybe", "Found text, which does not fit a boolean input."),
    ("record", "x", "Found text, which does not fit a record input."),
])
def test_values_that_do_not_fit_are_mapping_errors(kind, value, message):
    with pytest.raises(MappingError) as error:
        convert(field(type=kind), value)
    assert str(error.value) == message


def test_a_collection_takes_a_list_or_wraps_one_value():
    tags = field(collection=True)
    assert convert(tags, ["a", 1]) == ["a", "1"]
    assert convert(tags, 7) == ["7"]


def test_the_sample_order_maps_to_the_demo_inputs():
    payload = fixture_payload()

    inputs, problems = map_payload(DEMO_MAPPING, SCHEMA, payload)

    assert problems == {}
    assert inputs == {
        "EmailAddress": "jon@example.com",  # the order's email, not the customer's john@example.com
        "IndividualId": str(payload["customer"]["id"]),
        "TelephoneNumber": "555-555-SHIP",  # phone and customer.phone are null: the billing address's
    }
    assert inputs["IndividualId"].isdigit()


def test_a_payload_without_contact_data_maps_to_a_reason_not_an_error():
    payload = fixture_payload()
    for key in ("email", "contact_email", "phone", "customer", "billing_address", "shipping_address"):
        payload.pop(key)

    inputs, problems = map_payload(DEMO_MAPPING, SCHEMA, payload)

    assert inputs == {}
    assert problems == {"IndividualId": ["Required, but the payload has no value at customer.id."]}


def test_a_mapping_is_checked_against_the_flows_inputs():
    assert validate_mapping(DEMO_MAPPING, SCHEMA) == {}
    assert validate_mapping({"Colour": "x", "EmailAddress": "a b"}, SCHEMA) == {
        "Colour": ["The flow has no such input. Its inputs: EmailAddress, IndividualId, TelephoneNumber."],
        "EmailAddress": ["'a b' is neither a dotted path (letters, digits, _ and - between dots) nor a literal "
                         "(\"text\", a number, true or false)."],
        "IndividualId": ["A required input: map it."],
    }
    assert validate_mapping(["email"], SCHEMA) == {
        "mapping": ['Write the mapping as a JSON object: {"InputName": "path | path", ...}.']}


def test_the_trigger_id_input_cannot_be_mapped():
    """Flowgate fills it with the trigger's key: a mapping that fills it says so, when saved and when a payload
    is mapped."""
    schema = [*SCHEMA, FlowInput(name="FlowgateTriggerId", type=FlowInput.Type.TEXT)]
    mapping = {**DEMO_MAPPING, "FlowgateTriggerId": "id"}
    reserved = ("Flowgate fills this input itself with the trigger's key (it is the flow's trigger id input): "
                "remove it from the mapping.")

    assert validate_mapping(mapping, schema, reserved="FlowgateTriggerId") == {"FlowgateTriggerId": [reserved]}
    inputs, problems = map_payload(mapping, schema, fixture_payload(), reserved="FlowgateTriggerId")
    assert problems == {"FlowgateTriggerId": [reserved]}
    assert "FlowgateTriggerId" not in inputs
