"""Trigger inputs checked against a flow's FlowInputs: every problem at once, keyed by input name."""

from __future__ import annotations

import pytest

from flows.inputs import InputValidationError, parse_text_values, validate_inputs
from flows.models import FlowInput

T = FlowInput.Type


def schema(*fields: tuple[str, str] | tuple[str, str, dict]) -> list[FlowInput]:
    """Unsaved FlowInputs: validation needs no database."""
    return [FlowInput(name=f[0], type=f[1], **(f[2] if len(f) > 2 else {})) for f in fields]


def errors_of(fields, values, parse=validate_inputs) -> dict[str, list[str]]:
    with pytest.raises(InputValidationError) as caught:
        parse(fields, values)
    return caught.value.errors


MARKETING = schema(("EmailAddress", T.TEXT), ("IndividualId", T.TEXT, {"required": True}),
                   ("TelephoneNumber", T.TEXT), ("Quantity", T.NUMBER))


def test_valid_inputs_come_back_without_none_values():
    assert validate_inputs(MARKETING, {"IndividualId": "003Ho00002AlRM8IAN", "EmailAddress": None, "Quantity": 2}) == {
        "IndividualId": "003Ho00002AlRM8IAN", "Quantity": 2}


def test_every_problem_is_reported_at_once():
    errors = errors_of(MARKETING, {"Bogus": "x", "Quantity": "two"})

    assert set(errors) == {"Bogus", "IndividualId", "Quantity"}
    assert "EmailAddress, IndividualId, TelephoneNumber, Quantity" in errors["Bogus"][0]
    assert errors["IndividualId"] == ["This input is required."]
    assert errors["Quantity"] == ["Expected a number, got str."]
    assert str(errors_of(MARKETING, {"Bogus": "x"})).count("required") == 1


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_blank_required_input_is_missing(value):
    assert errors_of(MARKETING, {"IndividualId": value}) == {"IndividualId": ["This input is required."]}


def test_inputs_must_be_an_object():
    assert set(errors_of(MARKETING, ["IndividualId"])) == {"inputs"}


@pytest.mark.parametrize("kind, good, bad", [
    (T.TEXT, ["", "Ada", "✓" * 10], [1, True, ["a"], "nul\x00byte", "x" * 131073]),
    (T.NUMBER, [0, -3, 2.5, 10**20], ["1", True, False, float("nan"), float("inf"), [1]]),
    (T.CURRENCY, [19.99, 5], ["19.99", True]),
    (T.BOOLEAN, [True, False], [1, 0, "true", "yes"]),
    (T.DATE, ["2026-11-28", "2024-02-29"], ["2026-13-01", "2025-02-29", "28/11/2026", "20261128", 20261128,
                                              "2026-11-28T09:30:00Z"]),
    (T.DATETIME, ["2026-11-28T09:30:00Z", "2026-11-28T09:30:00+01:00", "2026-11-28T09:30:00.123-05:00"],
     ["2026-11-28T09:30:00", "2026-11-28", "yesterday", 1764322200]),
    (T.RECORD, [{"Name": "Acme"}, {}], [["Name"], "Acme", 1]),
])
def test_each_type(kind, good, bad):
    fields = schema(("Value", kind))
    for value in good:
        assert validate_inputs(fields, {"Value": value}) == {"Value": value}, value
    for value in bad:
        assert set(errors_of(fields, {"Value": value})) == {"Value"}, value


def test_a_datetime_without_timezone_asks_for_one():
    assert "time zone" in errors_of(schema(("At", T.DATETIME)), {"At": "2026-11-28T09:30:00"})["At"][0]


def test_a_week_date_is_not_a_date():
    assert set(errors_of(schema(("Day", T.DATE)), {"Day": "2026-W48-1"})) == {"Day"}


def test_a_blank_string_for_an_optional_non_text_input_means_not_given():
    fields = schema(("Quantity", T.NUMBER), ("Day", T.DATE), ("Note", T.TEXT))

    assert validate_inputs(fields, {"Quantity": "", "Day": "  ", "Note": ""}) == {"Note": ""}


def test_collections_are_lists_checked_item_by_item():
    fields = schema(("Ids", T.TEXT, {"is_collection": True, "required": True}),
                    ("Amounts", T.NUMBER, {"is_collection": True}))

    assert validate_inputs(fields, {"Ids": ["a", "b"], "Amounts": [1, 2.5]}) == {"Ids": ["a", "b"], "Amounts": [1, 2.5]}
    errors = errors_of(fields, {"Ids": "a", "Amounts": [1, "two", 3, True]})
    assert errors == {"Ids": ["Expected a list (this input is a collection)."],
                      "Amounts": ["Item 2: Expected a number, got str.", "Item 4: Expected a number, got bool."]}
    assert errors_of(fields, {"Ids": []}) == {"Ids": ["This input is required."]}


def test_collection_item_errors_are_capped():
    errors = errors_of(schema(("Amounts", T.NUMBER, {"is_collection": True})), {"Amounts": ["x"] * 50})

    assert len(errors["Amounts"]) == 5


# --- parse_text_values: NAME=VALUE strings from the command line ------------------------------------------

TYPED = schema(("Name", T.TEXT, {"required": True}), ("Count", T.NUMBER), ("Price", T.CURRENCY),
               ("Vip", T.BOOLEAN), ("Day", T.DATE), ("Account", T.RECORD),
               ("Tags", T.TEXT, {"is_collection": True}), ("Scores", T.NUMBER, {"is_collection": True}))


def test_text_values_are_converted_by_type():
    parsed = parse_text_values(TYPED, {"Name": "Ada", "Count": "42", "Price": "19.90", "Vip": "yes",
                                       "Day": "2026-11-28", "Account": '{"Name": "Acme"}',
                                       "Tags": "red, green,,blue", "Scores": "[1, 2.5]"})

    assert parsed == {"Name": "Ada", "Count": 42, "Price": 19.9, "Vip": True, "Day": "2026-11-28",
                      "Account": {"Name": "Acme"}, "Tags": ["red", "green", "blue"], "Scores": [1, 2.5]}
    assert type(parsed["Count"]) is int and type(parsed["Price"]) is float


@pytest.mark.parametrize("word, value", [("true", True), ("Y", True), ("on", True), ("1", True),
                                         ("false", False), ("NO", False), ("off", False), ("0", False)])
def test_boolean_words(word, value):
    assert parse_text_values(TYPED, {"Name": "x", "Vip": word})["Vip"] is value


def test_comma_separated_numbers_are_numbers():
    assert parse_text_values(TYPED, {"Name": "x", "Scores": "1, 2.5,3"})["Scores"] == [1, 2.5, 3]


def test_bad_values_are_all_reported_without_a_duplicate_required_message():
    errors = errors_of(TYPED, {"Count": "many", "Vip": "maybe", "Scores": "1,x", "Account": "{not json",
                               "Tags": '["a", 1]', "Bogus": "1"}, parse=parse_text_values)

    assert errors == {
        "Count": ["'many' is not a number."],
        "Vip": ["'maybe' is not true or false."],
        "Scores": ["'x' is not a number."],
        "Account": ['Expected a record as a JSON object, e.g. {"Name": "Acme"}.'],
        "Tags": ["Item 2: Expected text, got int."],
        "Bogus": [errors["Bogus"][0]],
        "Name": ["This input is required."],
    }
    assert errors["Bogus"][0].startswith("Unknown input.")


def test_an_unparsable_required_value_is_not_also_reported_missing():
    fields = schema(("Count", T.NUMBER, {"required": True}))

    assert errors_of(fields, {"Count": "NaN"}, parse=parse_text_values) == {"Count": ["'NaN' is not a number."]}


def test_an_empty_optional_number_is_not_given():
    assert parse_text_values(TYPED, {"Name": "x", "Count": "", "Vip": ""}) == {"Name": "x"}
