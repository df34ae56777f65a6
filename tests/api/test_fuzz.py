"""Hostile and broken requests get a 4xx, never a 500: huge bodies, invalid UTF-8, NUL bytes, unpaired
surrogates, non-finite numbers, deep nesting, wrong types, odd headers and paths. Hand-picked cases, no
hypothesis: the schemathesis run (test_openapi.py) does the generated ones."""

from __future__ import annotations

import json

import pytest

from flows.api.services import api_key_create
from flows.models import Flow, FlowInput, Trigger
from flows.webhooks.models import WebhookDelivery
from tests.webhooks.conftest import URL as HOOK_URL
from tests.webhooks.conftest import fixture_body, shopify_headers

from .conftest import BATCH, TRIGGERS, Api

pytestmark = pytest.mark.django_db

TYPED = "/api/v1/flows/acme/Typed_Flow/triggers"


@pytest.fixture
def typed_flow(org) -> Flow:
    flow = Flow.objects.create(org=org, api_name="Typed_Flow")
    for order, kind in enumerate(FlowInput.Type.values):
        FlowInput.objects.create(flow=flow, name=f"A_{kind}", type=kind, order=order)
        FlowInput.objects.create(flow=flow, name=f"Many_{kind}", type=kind, is_collection=True, order=order)
    return flow


@pytest.fixture
def fuzz_api(client, flow, typed_flow) -> Api:
    return Api(client, api_key_create(name="Fuzz")[1])


def assert_4xx(response, *allowed: int) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    if allowed:
        assert response.status_code in allowed, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    assert isinstance(response.json(), dict)


BAD_BODIES = [
    b"\xff\xfe\xfd",  # not UTF-8
    b'{"inputs": {"A_text": "\xc3\x28"}}',  # an invalid UTF-8 sequence inside a string
    b'\xef\xbb\xbf{"inputs": {}}',  # a byte order mark
    b'{"inputs": {"A_text": "a\x00b"}}',  # a raw NUL byte
    b'{"inputs": {"A_text": "a\\u0000b"}}',  # an escaped NUL
    b'{"inputs": {"A_record": {"k": "\\u0000"}}}',  # ...inside a record, which validate_inputs lets through
    b'{"inputs": {"A_record": {"\\u0000": 1}}}',  # ...in a key
    b'{"inputs": {"A_text": "\\ud800"}}',  # an unpaired surrogate
    b'{"inputs": {"A_record": {"k": ["\\udfff"]}}}',
    b'{"inputs": {"A_number": NaN}}',
    b'{"inputs": {"A_record": {"k": Infinity}}}',
    b'{"inputs": {"A_record": {"k": -Infinity}}}',
    b'{"inputs": {"A_record": {"k": 1e999}}}',
    b'{"inputs": {"A_number": ' + b"9" * 5000 + b"}}",  # more digits than Python converts
    b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # nested too deeply
    b'{"inputs": {"A_text": "x"}',  # truncated
    b'{"inputs": {"A_text": "x"}} trailing',
    b"null", b"true", b"0", b"[]", b'"inputs"',
    b'{"inputs": null}', b'{"inputs": 1}', b'{"inputs": "x"}', b'{"inputs": []}', b'{"inputs": true}',
    b'{"inputs": {"A_text": 1, "A_number": "1", "A_boolean": "yes", "A_date": "31/12/2021", '
    b'"A_datetime": "2021-12-31T19:00:00", "A_record": [], "Many_text": "x", "Many_number": [true]}}',
    b'{"inputs": {"A_date": "2021-W52-5", "A_currency": 1e308, "A_datetime": 5, "Many_record": [1]}}',
    b'{"inputs": {"' + b"K" * 10_000 + b'": 1}}',
    b'{"inputs": {"A_text": "' + b"x" * 200_000 + b'"}}',  # over Salesforce's text limit
    b'{"inputs": {}, "inputs": 3}',  # a duplicate key: the last one wins, and it is no object
]


@pytest.mark.parametrize("raw", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_bad_bodies_are_4xx_and_store_nothing(fuzz_api, raw):
    assert_4xx(fuzz_api.post(TYPED, raw=raw), 400)
    assert not Trigger.objects.exists()


@pytest.mark.parametrize("raw", BAD_BODIES[:16], ids=range(16))
def test_bad_batch_bodies_are_4xx(fuzz_api, raw):
    batch = raw.replace(b'{"inputs": ', b'{"items": [{"inputs": ', 1)
    batch = batch[:-1] + b"]}" if batch.endswith(b"}") else batch
    response = fuzz_api.post(TYPED + "/batch", raw=batch)
    if response.status_code == 207:  # the body parsed: the one item is refused on its own
        assert response.json()["results"][0]["result"] == "invalid"
    else:
        assert_4xx(response, 400)
    assert not Trigger.objects.exists()


@pytest.mark.parametrize("items", [
    [None], [1], ["x"], [[]], [{"inputs": {}, "extra": 1}], [{"idempotency_key": "k"}],
    [{"inputs": {"IndividualId": "003A"}, "idempotency_key": 5}],
    [{"inputs": {"IndividualId": "003A"}, "idempotency_key": ["k"]}],
    [{"inputs": {"IndividualId": "003A"}, "idempotency_key": "é"}],
    [{"inputs": {"IndividualId": "003A"}, "idempotency_key": " k"}],
])
def test_wrong_item_types_are_reported_per_item(fuzz_api, items):
    response = fuzz_api.post(BATCH, {"items": items})

    assert response.status_code == 207
    assert response.json()["results"][0]["result"] == "invalid"
    assert not Trigger.objects.exists()


def test_a_huge_body_is_413_for_every_endpoint(fuzz_api, client, shopify_webhook):
    huge = b'{"inputs": {"A_text": "' + b"x" * (3 * 1024 * 1024) + b'"}}'  # over Django's own 2.5 MB limit too

    assert_4xx(fuzz_api.post(TYPED, raw=huge), 413)
    assert_4xx(fuzz_api.post(TYPED + "/batch", raw=huge), 413)
    response = client.post(HOOK_URL, data=huge, content_type="application/json", headers=shopify_headers(huge))
    assert_4xx(response, 413)
    assert not Trigger.objects.exists() and not WebhookDelivery.objects.exists()


@pytest.mark.parametrize("length", ["abc", "-1", "99999999999999999999999"])
def test_an_odd_content_length_is_4xx(fuzz_api, length):
    response = fuzz_api.client.generic("POST", TYPED, b'{"inputs": {}}', content_type="application/json",
                                       CONTENT_LENGTH=length, HTTP_AUTHORIZATION=f"Bearer {fuzz_api.key}")
    assert_4xx(response)


@pytest.mark.parametrize("authorization", [
    "Bearer " + "x" * 10_000, "Bearer fg_0000000é_" + "x" * 42, "bearer\tfg_", "Bearer \x00", "Bearer ",
    "Token abc", "Bearer fg_00000000_" + "x" * 43 + " extra",
])
def test_odd_authorization_headers_are_401(client, flow, authorization):
    response = client.post(TRIGGERS, data=b"{}", content_type="application/json",
                           headers={"Authorization": authorization})
    assert_4xx(response, 401)


@pytest.mark.parametrize("content_type", [
    "application/json; charset=\"", "application/json; charset=nonsense", "application/json;;;",
    "application/JSON", "multipart/form-data; boundary=x", "application/json-seq", "*/*",
])
def test_odd_content_types_are_4xx(fuzz_api, content_type):
    response = fuzz_api.client.generic("POST", TYPED, b'{"inputs": {"A_text": "x"}}', content_type=content_type,
                                       HTTP_AUTHORIZATION=f"Bearer {fuzz_api.key}")
    if response.status_code == 202:  # the same media type, written another way
        assert content_type in ("application/JSON", "application/json;;;")
    else:
        assert_4xx(response, 400, 415)


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "tab\there", "é", "a\x00b"])
def test_odd_idempotency_keys_are_400(fuzz_api, key):
    response = fuzz_api.post(TYPED, {"inputs": {"A_text": "x"}}, headers={"Idempotency-Key": key})
    assert_4xx(response, 400)


@pytest.mark.parametrize("path", [
    "/api/v1/flows/%00/x/triggers", "/api/v1/flows/acme/%C3%28/triggers", "/api/v1/flows/" + "a" * 5000 + "/x/triggers",
    "/api/v1/triggers/%00", "/api/v1/triggers/" + "9" * 400, "/api/v1/triggers/1.5", "/api/v1/triggers/%F0%9F%92%A9",
    "/api/v1/triggers/", "/api/v1/", "/api/v1/flows/acme/On_Demand_Flow/triggers/", "/api/v1/openapi.json/x",
])
def test_odd_paths_are_json_4xx(fuzz_api, path):
    assert_4xx(fuzz_api.get(path))
    assert_4xx(fuzz_api.post(path, {"inputs": {}}))


@pytest.mark.parametrize("path", ["/hooks/shopify/%00", "/hooks/shopify/" + "a" * 5000, "/hooks/shopify/%C3%28",
                                  "/hooks/shopify/acme-store/"])
def test_odd_webhook_paths_are_404(client, shopify_webhook, path):
    body = fixture_body()
    response = client.post(path, data=body, content_type="application/json", headers=shopify_headers(body))
    assert response.status_code == 404
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize("body", [
    b"\xff\xfe\x00\x01", b'{"email": "a\\u0000b", "customer": {"id": "\\u0000"}}',
    b'{"customer": {"id": "\\ud800"}}', b'{"customer": {"id": NaN}}', b"[" * 50_000 + b"]" * 50_000,
    b'{"customer": {"id": 1e999}}', b'{"customer": {"id": {"x": 1}}, "order_number": [1], "name": {"x": 1}}',
    b'{"email": ["a"], "contact_email": 5, "customer": {"email": {"x": 1}, "id": [1, 2]}}', b"",
])
def test_signed_garbage_is_recorded_never_a_500(client, shopify_webhook, body):
    response = client.post(HOOK_URL, data=body, content_type="application/json", headers=shopify_headers(body))

    assert response.status_code == 200, response.content[:300]
    assert response.json()["outcome"] == "unmappable"
    delivery = WebhookDelivery.objects.get()
    assert "\x00" not in delivery.body
    assert not Trigger.objects.exists()


@pytest.mark.parametrize("name, value", [
    ("X-Shopify-Topic", "orders/create\x00"), ("X-Shopify-Webhook-Id", "\x00" * 3),
    ("X-Shopify-Webhook-Id", "w" * 5000),
    ("X-Shopify-Shop-Domain", "JSMITH.MYSHOPIFY.COM"), ("X-Shopify-Event-Id", "e" * 5000),
    ("X-Shopify-Triggered-At", "\ud800"), ("X-Anything", "v" * 100_000),
])
def test_odd_webhook_headers_never_cause_a_500(client, shopify_webhook, name, value):
    body = fixture_body()
    headers = {**shopify_headers(body), name: value}

    response = client.post(HOOK_URL, data=body, content_type="application/json", headers=headers)

    assert response.status_code in (200, 400, 403), response.content[:300]
    for delivery in WebhookDelivery.objects.all():
        assert "\x00" not in json.dumps(delivery.headers) + delivery.shopify_webhook_id + delivery.topic


@pytest.mark.parametrize("signature", ["\x00", "é" * 44, "=" * 5000, "vcc3Hq80cIL2UWAVNXW45YkFqqbVAcQ9/WliIrnRdTI"])
def test_odd_signatures_are_401(client, shopify_webhook, signature):
    body = fixture_body()
    headers = {**shopify_headers(body), "X-Shopify-Hmac-Sha256": signature}

    response = client.post(HOOK_URL, data=body, content_type="application/json", headers=headers)

    assert_4xx(response, 401)
    assert not WebhookDelivery.objects.exists()
