"""Generated hostile input (hypothesis) for trigger inputs, API bodies and webhook bodies: huge, deeply nested,
invalid UTF-8, NUL bytes, wrong types, surrogates, right-to-left and combining marks, emoji, NaN, infinities,
giant numbers. Always a 4xx with a message (or, for a signed webhook, the documented 200 with the outcome),
never a 500, and nothing stored when invalid (rows counted before and after each example).

tests/api/test_fuzz.py holds the hand-picked cases; these find the ones nobody thought of. Each test is bounded
(max_examples, no deadline) so the file runs in well under a minute.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flows import services
from flows.api.services import api_key_create
from flows.inputs import InputValidationError, validate_inputs
from flows.models import Flow, FlowInput, Trigger
from flows.webhooks.models import WebhookDelivery
from tests.webhooks.conftest import URL as HOOK_URL
from tests.webhooks.conftest import shopify_headers

from .conftest import logged_in

pytestmark = pytest.mark.django_db

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])
TYPED = "/api/v1/flows/acme/Typed_Flow/triggers"
MAX_MESSAGE = 400  # an error message names the problem; it never echoes a huge input back

# --- strategies ------------------------------------------------------------------------------------------

TRICKY_CHARACTERS = [
    "\x00", "\ud800", "\udfff", "\udcff",  # NUL, unpaired surrogates (what surrogateescape makes of bad bytes)
    "\u202e", "\u200f", "\u061c",  # right-to-left override and marks
    "e\u0301", "\u0301", "Z\u0351\u0360\u0361",  # combining marks, alone and stacked
    "🙂", "👩‍👩‍👧", "🇫🇷",  # emoji, a ZWJ sequence, a flag
    "\ufeff", "\ufffe", "\uffff", "\U0010ffff", "\u2028", "\x7f", "\x1b[31m", "\r\n",
]
pieces = st.one_of(st.characters(exclude_categories=()), st.sampled_from(TRICKY_CHARACTERS))


def short_text(max_size: int) -> st.SearchStrategy[str]:
    return st.lists(pieces, max_size=max_size).map("".join)


texts = st.one_of(
    short_text(40),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "🙂", "\x00"]),
              st.sampled_from([131072, 131073, 300_000])),  # around Salesforce's long-text limit, and over
    st.sampled_from(["2021-12-31", "2021-02-30", "2021-W52-5", "2026-11-28T09:30:00Z", "2026-11-28T09:30:00",
                     "+002021-01-01", "true", "NaN", "1e999", " ", ""]),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=10**300, max_value=10**4000),  # giant, up to Python's str conversion limit
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]),
)
# What the storage and the encoder choke on, often enough to be found in a bounded run.
hostile_scalars = st.sampled_from([math.nan, math.inf, -math.inf, "\x00", "a\x00b", "\ud800", "x\udcff",
                                   10**4001, -(10**4001)])
scalars = st.one_of(st.none(), st.booleans(), numbers, texts, hostile_scalars)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(short_text(10), children, max_size=4)),
    max_leaves=12,
)
# Values no JSON body can carry, for Python callers of the services.
python_oddities = st.sampled_from([b"bytes", {1, 2}, (1, 2), decimal.Decimal("1.5"), dt.date(2021, 1, 1),
                                   object(), {(1, 2): "tuple key"}, {1: "int key"}, [b"\x00"], 10**5000])
values = st.one_of(json_values, python_oddities, st.lists(python_oddities, max_size=2),
                   st.dictionaries(st.text(max_size=3), python_oddities, max_size=2))


def nested(depth: int, leaf: Any, kind: str) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


# Around the depth limit, and around the depth where Python's JSON parser gives up (just under a thousand):
# what parses may still overflow the encoder when it is saved.
depths = st.one_of(st.integers(1, 3000), st.sampled_from([32, 33, 900, 930, 960, 990, 1000, 1100]))
deep_values = st.builds(nested, depths, scalars, st.sampled_from(["list", "dict"]))


def value_for(field: FlowInput, anything: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly the shape the input's type takes, with hostile contents; sometimes `anything` at all."""
    Type = FlowInput.Type
    record = st.dictionaries(short_text(8), anything, min_size=1, max_size=3)
    dates = st.one_of(st.dates().map(dt.date.isoformat), texts)
    datetimes = st.one_of(st.datetimes(timezones=st.just(dt.timezone.utc)).map(dt.datetime.isoformat), texts)
    shaped = {Type.TEXT: texts, Type.NUMBER: numbers, Type.CURRENCY: numbers, Type.BOOLEAN: st.booleans(),
              Type.DATE: dates, Type.DATETIME: datetimes, Type.RECORD: record}[field.type]
    if field.is_collection:
        shaped = st.lists(shaped, max_size=3)
    return st.one_of(*[shaped] * 4, anything)


def inputs_for(flow_inputs: list[FlowInput], anything: st.SearchStrategy = None) -> st.SearchStrategy[dict]:
    """A valid IndividualId (mostly) and one or two other inputs of the flow, hostile but mostly of the right
    shape, sometimes an unknown name: a dict full of random keys is refused for its first unknown name and
    never reaches the type checks."""
    anything = st.one_of(json_values, deep_values) if anything is None else anything
    # Records take any JSON at all, so they get picked more often than their share.
    records = [field for field in flow_inputs if field.type == FlowInput.Type.RECORD]
    field_choice = st.one_of(st.sampled_from(flow_inputs), st.sampled_from(records))
    chosen = st.lists(field_choice, min_size=1, max_size=2, unique_by=lambda field: field.name)
    others = chosen.flatmap(lambda fields: st.fixed_dictionaries({f.name: value_for(f, anything) for f in fields}))
    unknown = st.one_of(*[st.just({})] * 4, st.dictionaries(short_text(12), anything, max_size=1))
    individual_id = st.one_of(*[st.just("003Ho00002AlRM8IAN")] * 4, texts)
    return st.builds(lambda first, known, extra: {**extra, **known, "IndividualId": first}, individual_id, others,
                     unknown)


class _Raw(str):
    """Text written as is (punctuation), not encoded as a JSON value."""


def encode(value: Any, ensure_ascii: bool) -> bytes:
    """JSON as a careless or hostile client writes it: NaN and Infinity as bare words, surrogates raw (invalid
    UTF-8) or escaped, nesting as deep as it comes (written without recursion, unlike json.dumps)."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            out.append(item)
        elif isinstance(item, (list, dict)):
            pairs = list(item.items()) if isinstance(item, dict) else [(None, child) for child in item]
            stack.append(_Raw("}" if isinstance(item, dict) else "]"))
            for position, (key, child) in reversed(list(enumerate(pairs))):
                stack.append(child)
                if key is not None:
                    stack.append(_Raw(json.dumps(str(key), ensure_ascii=ensure_ascii) + ":"))
                if position:
                    stack.append(_Raw(","))
            stack.append(_Raw("{" if isinstance(item, dict) else "["))
        else:
            out.append(json.dumps(item, allow_nan=True, ensure_ascii=ensure_ascii))
    return "".join(out).encode("utf-8", "surrogatepass")


def mutate(body: bytes, data: st.DataObject) -> bytes:
    """Flips, cuts or inserts bytes (invalid UTF-8, NUL, stray quotes) somewhere in a body."""
    if not body:
        return body
    position = data.draw(st.integers(0, len(body) - 1), label="position")
    how = data.draw(st.sampled_from(["flip", "cut", "insert"]), label="how")
    if how == "cut":
        return body[:position]
    noise = data.draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\x00", b"\xed\xa0\x80", b'"', b"\\", b"{", b"\x80"]))
    if how == "insert":
        return body[:position] + noise + body[position:]
    return body[:position] + noise + body[position + 1:]


# --- fixtures --------------------------------------------------------------------------------------------


def typed_inputs() -> list[FlowInput]:
    """One input of every type, single and collection, the IndividualId required."""
    fields = [FlowInput(name="IndividualId", type=FlowInput.Type.TEXT, required=True, order=0)]
    for order, kind in enumerate(FlowInput.Type.values, start=1):
        fields.append(FlowInput(name=f"A_{kind}", type=kind, order=order))
        fields.append(FlowInput(name=f"Many_{kind}", type=kind, is_collection=True, order=order))
    return fields


SCHEMA = typed_inputs()


@pytest.fixture
def typed_flow(org) -> Flow:
    flow = Flow.objects.create(org=org, api_name="Typed_Flow")
    for field in typed_inputs():
        field.flow = flow
        field.save()
    return flow


@pytest.fixture
def api_client(client, flow, typed_flow, enqueued):
    raw_key = api_key_create(name="Fuzz")[1]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw_key}"
    return client


@contextmanager
def rolled_back() -> Iterator[None]:
    """Each example starts from the same rows: whatever it wrote is rolled back."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def counts() -> tuple[int, int]:
    return Trigger.objects.count(), WebhookDelivery.objects.count()


def storable(value: Any) -> bool:
    """What PostgreSQL's jsonb and Salesforce take: JSON types only, finite numbers, text without NUL or unpaired
    surrogates."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or any(0xD800 <= ord(c) <= 0xDFFF for c in item):
                return False
        elif isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return False
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif item is not None and not isinstance(item, (bool, int)):
            return False
    return True


def assert_clear_errors(errors: Any) -> None:
    assert isinstance(errors, dict) and errors, errors
    for name, messages in errors.items():
        assert isinstance(name, str) and len(name) <= 80
        assert isinstance(messages, list) and messages
        for message in messages:
            assert isinstance(message, str) and message.strip() and len(message) <= MAX_MESSAGE, message


def assert_json_4xx(response, *allowed: int) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    if allowed:
        assert response.status_code in allowed, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    body = response.json()
    if "errors" in body:
        assert_clear_errors(body["errors"])
    else:
        assert isinstance(body["error"], str) and body["error"].strip() and len(body["error"]) <= MAX_MESSAGE
    return body


# --- validate_inputs and trigger_create -------------------------------------------------------------------


@settings(parent=FUZZ, max_examples=200)  # no database: cheap
@given(raw=st.one_of(*[inputs_for(SCHEMA, st.one_of(values, deep_values))] * 4, values))
def test_validate_inputs_returns_storable_inputs_or_names_every_problem(raw):
    try:
        cleaned = validate_inputs(SCHEMA, raw)
    except InputValidationError as invalid:
        assert_clear_errors(invalid.errors)
        return
    assert isinstance(cleaned, dict)
    assert set(cleaned) <= {field.name for field in SCHEMA}
    assert storable(cleaned), cleaned  # what jsonb and Salesforce take
    assert cleaned.get("IndividualId", "").strip()


@FUZZ
@given(raw=inputs_for(SCHEMA, st.one_of(values, deep_values)))
def test_trigger_create_stores_one_trigger_or_nothing(typed_flow, enqueued, raw):
    with rolled_back():
        before = Trigger.objects.count()
        try:
            trigger = services.trigger_create(flow=typed_flow, inputs=raw, source=Trigger.Source.API)
        except InputValidationError as invalid:
            assert_clear_errors(invalid.errors)
            assert Trigger.objects.count() == before
            return
        assert Trigger.objects.count() == before + 1
        # Read back as saved (jsonb may write a float as an integer, so compare names, not numbers).
        assert set(Trigger.objects.get(pk=trigger.pk).inputs) == set(trigger.inputs)


# --- the JSON API ----------------------------------------------------------------------------------------


@st.composite
def api_bodies(draw, field: str) -> bytes:
    inputs = draw(st.one_of(inputs_for(SCHEMA), json_values, deep_values), label="inputs")
    if field == "items":
        items = draw(st.lists(st.one_of(st.fixed_dictionaries({"inputs": st.just(inputs)}),
                                        st.fixed_dictionaries({"inputs": inputs_for(SCHEMA)},
                                                              optional={"idempotency_key": texts}),
                                        json_values), min_size=1, max_size=5), label="items")
        document: Any = {"items": items}
    else:
        document = {"inputs": inputs}
    document = draw(st.one_of(st.just(document), json_values), label="document") if draw(
        st.integers(0, 9)) == 0 else document
    body = encode(document, draw(st.booleans(), label="ensure_ascii"))
    if draw(st.integers(0, 4), label="mutate?") == 0:
        body = mutate(body, draw(st.data()))
    return body


@FUZZ
@given(body=api_bodies("inputs"))
def test_the_trigger_endpoint_answers_4xx_or_202_never_500(api_client, body):
    with rolled_back():
        before = counts()
        response = api_client.post(TYPED, data=body, content_type="application/json")
        if response.status_code == 202:
            assert counts() == (before[0] + 1, before[1])
            return
        assert_json_4xx(response, 400, 413, *[415] * (not body))  # no body: no Content-Type either
        assert counts() == before


@FUZZ
@given(body=api_bodies("items"))
def test_the_batch_endpoint_answers_per_item_or_4xx_never_500(api_client, body):
    with rolled_back():
        before = counts()
        response = api_client.post(f"{TYPED}/batch", data=body, content_type="application/json")
        if response.status_code != 207:
            assert_json_4xx(response, 400, 413, *[415] * (not body))
            assert counts() == before
            return
        results = response.json()["results"]
        assert [r["index"] for r in results] == list(range(len(json.loads(body)["items"])))
        for result in results:
            if result["result"] in ("invalid", "conflict"):
                assert_clear_errors(result["errors"])
        created = sum(result["result"] == "created" for result in results)
        assert counts() == (before[0] + created, before[1])


@settings(parent=FUZZ, max_examples=60)
@given(raw=st.binary(max_size=2000), content_type=st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/json; charset=latin-1", "text/plain",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=\"",
]))
def test_arbitrary_bytes_are_4xx(api_client, raw, content_type):
    with rolled_back():
        before = counts()
        response = api_client.generic("POST", TYPED, raw, content_type=content_type)
        if response.status_code != 202:  # random bytes that happen to be a valid body are accepted
            assert_json_4xx(response, 400, 413, 415)
            assert counts() == before


# --- Shopify webhooks --------------------------------------------------------------------------------------

order_like = st.fixed_dictionaries({}, optional={
    "email": json_values, "contact_email": json_values, "phone": json_values, "order_number": json_values,
    "name": json_values, "customer": st.one_of(json_values, st.fixed_dictionaries({}, optional={
        "id": json_values, "email": json_values, "phone": json_values})),
    "billing_address": st.one_of(json_values, st.fixed_dictionaries({}, optional={"phone": json_values})),
})
header_text = st.text(st.characters(max_codepoint=0xFF), max_size=300)  # what WSGI hands over: latin-1


@st.composite
def webhook_bodies(draw) -> bytes:
    payload = draw(st.one_of(order_like, json_values, deep_values), label="payload")
    body = encode(payload, draw(st.booleans(), label="ensure_ascii"))
    if draw(st.integers(0, 4), label="mutate?") == 0:
        body = mutate(body, draw(st.data()))
    return body


class Deliveries:
    """A unique X-Shopify-Webhook-Id per example, so no example is answered as another's duplicate."""

    def __init__(self) -> None:
        self.sent = 0

    def next_id(self) -> str:
        self.sent += 1
        return f"fuzz-{self.sent}"


@pytest.fixture
def deliveries(shopify_webhook, enqueued) -> Deliveries:
    return Deliveries()


@FUZZ
@given(body=webhook_bodies())
def test_a_signed_delivery_is_recorded_with_its_outcome_never_a_500(client, deliveries, body):
    with rolled_back():
        before = counts()
        response = client.post(HOOK_URL, data=body, content_type="application/json",
                               headers=shopify_headers(body, webhook_id=deliveries.next_id()))
        if response.status_code == 413:
            assert_json_4xx(response)
            assert counts() == before
            return
        assert response.status_code == 200, response.content[:300]
        answer = response.json()
        assert answer["outcome"] in ("triggered", "unmappable")
        delivery = WebhookDelivery.objects.get(pk=answer["delivery"])
        assert "\x00" not in delivery.body
        if answer["outcome"] == "unmappable":
            assert delivery.reason.strip() and answer["trigger"] is None
        assert counts() == (before[0] + (answer["outcome"] == "triggered"), before[1] + 1)


@settings(parent=FUZZ, max_examples=60)
@given(body=webhook_bodies(), signature=st.one_of(st.none(), header_text))
def test_an_unsigned_or_missigned_delivery_is_401_and_stores_nothing(client, deliveries, body, signature):
    headers = shopify_headers(body, webhook_id=deliveries.next_id())
    if signature is None:
        del headers["X-Shopify-Hmac-Sha256"]
    else:
        assume(signature.strip() != headers["X-Shopify-Hmac-Sha256"])
        headers["X-Shopify-Hmac-Sha256"] = signature
    with rolled_back():
        before = counts()
        response = client.post(HOOK_URL, data=body, content_type="application/json", headers=headers)
        assert_json_4xx(response, 401, 413)
        assert counts() == before


@settings(parent=FUZZ, max_examples=60)
@given(topic=header_text, shop=header_text, webhook_id=header_text, event_id=header_text,
       extra=st.dictionaries(st.sampled_from(["X-Shopify-Api-Version", "X-Shopify-Triggered-At", "X-Anything",
                                              "Cookie", "Authorization"]), header_text, max_size=3))
def test_signed_deliveries_with_odd_headers_never_cause_a_500(client, deliveries, topic, shop, webhook_id,
                                                                event_id, extra):
    body = b'{"customer": {"id": 1}}'
    headers = {**shopify_headers(body), "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": shop,
               "X-Shopify-Webhook-Id": webhook_id, "X-Shopify-Event-Id": event_id, **extra}
    with rolled_back():
        before = counts()
        response = client.post(HOOK_URL, data=body, content_type="application/json", headers=headers)
        assert response.status_code in (200, 400, 403), response.content[:300]
        if response.status_code == 400:  # no topic or webhook id: nothing recorded
            assert_json_4xx(response)
            assert counts() == before
        for delivery in WebhookDelivery.objects.all():
            assert "\x00" not in json.dumps(delivery.headers) + delivery.topic + delivery.shop_domain


# --- what the fuzzing found: each was a 500 (or a crash) before flows/inputs.json_problem ------------------


def record_body(depth: int, field: str = "A_record") -> bytes:
    return b'{"inputs": {"IndividualId": "003A", "' + field.encode() + b'": ' + b'{"a":' * depth + b"1" \
        + b"}" * depth + b"}}"


@pytest.mark.parametrize("depth", [33, 900])  # 900: parsed fine, then overflowed the encoder when saved
def test_a_record_nested_too_deep_is_a_400_naming_the_input(api_client, depth):
    response = api_client.post(TYPED, data=record_body(depth), content_type="application/json")

    assert response.status_code == 400, response.content[:200]
    assert response.json() == {"errors": {"A_record": ["Nested deeper than 32 levels."]}}
    assert not Trigger.objects.exists()


def test_a_record_at_the_depth_limit_is_accepted(api_client):
    assert api_client.post(TYPED, data=record_body(31), content_type="application/json").status_code == 202


def test_a_batch_item_nested_too_deep_is_invalid_on_its_own(api_client):
    deep = json.loads(record_body(900).decode().replace('"IndividualId": "003A", ', '"IndividualId": "003B", '))
    body = json.dumps({"items": [{"inputs": {"IndividualId": "003A"}}, deep]}).encode()

    results = api_client.post(f"{TYPED}/batch", data=body, content_type="application/json").json()["results"]

    assert [r["result"] for r in results] == ["created", "invalid"]
    assert results[1]["errors"] == {"A_record": ["Nested deeper than 32 levels."]}
    assert Trigger.objects.count() == 1


UNSTORABLE = {
    "NUL in a record": ("A_record", {"note": "a\x00b"}, "NUL"),
    "NUL in a record's field name": ("A_record", {"\x00": 1}, "NUL"),
    "NaN in a record": ("A_record", {"n": math.nan}, "finite"),
    "Infinity in a list of records": ("Many_record", [{"n": [math.inf]}], "finite"),
    "a surrogate in a record": ("A_record", {"s": "\ud800"}, "surrogates"),
    "a surrogate in text (the command line's undecodable bytes)": ("A_text", "caf\udce9", "surrogates"),
    "bytes in a record": ("A_record", {"b": b"x"}, "bytes"),
    "a set in a record": ("A_record", {"s": {1, 2}}, "set"),
    "a date object in a record": ("A_record", {"d": dt.date(2021, 1, 1)}, "date"),
    "a number key in a record": ("A_record", {1: "x"}, "Field names"),
    "a record 2,000 deep": ("A_record", nested(2000, 1, "dict"), "deeper"),
    "a number of 5,000 digits": ("A_number", 10**5000, "digits"),
}


@pytest.mark.parametrize("name, value, phrase", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_python_callers_get_a_clear_error_for_what_cannot_be_stored(typed_flow, name, value, phrase):
    with pytest.raises(InputValidationError) as invalid:
        services.trigger_create(flow=typed_flow, inputs={"IndividualId": "003A", name: value},
                                source=Trigger.Source.CLI)

    assert list(invalid.value.errors) == [name]
    assert phrase in invalid.value.errors[name][0]
    assert not Trigger.objects.exists()


def test_the_command_line_refuses_undecodable_bytes_with_exit_code_2(flow, capsys):
    # `trigger_flow acme On_Demand_Flow IndividualId=$'caf\xe9'` in a UTF-8 shell: Python hands the command
    # "caf\udce9" (surrogateescape), which PostgreSQL cannot store.
    with pytest.raises(SystemExit) as exit_:
        call_command("trigger_flow", "acme", "On_Demand_Flow", "IndividualId=caf\udce9")

    assert exit_.value.code == 2
    assert "surrogates" in capsys.readouterr().out
    assert not Trigger.objects.exists()


def test_the_fire_form_refuses_a_record_holding_a_nul(alice, typed_flow, enqueued):
    page = logged_in(alice).post(f"/console/flows/{typed_flow.pk}/fire/",
                                 {"IndividualId": "003A", "A_record": '{"note": "a\\u0000b"}'})

    assert page.status_code == 200
    assert "Text must not contain NUL characters." in page.content.decode()
    assert not Trigger.objects.exists()
