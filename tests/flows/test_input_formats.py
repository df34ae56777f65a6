"""Text inputs with a format (issue 12): an e-mail address or an E.164 phone number, checked with the same words
by the fire form, the API, the command line and webhook mappings; offered on import, set by the demo seed."""

from __future__ import annotations

import json
from io import StringIO

import pytest
import responses
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from flows.flow_import import flow_import_apply, flow_import_preview
from flows.inputs import InputValidationError, parse_text_values, validate_inputs
from flows.models import Flow, FlowInput, Trigger
from flows.webhooks.models import WebhookDelivery
from tests.api.conftest import TRIGGERS, Api
from tests.conftest import MY_DOMAIN, make_flow, support_user
from tests.webhooks.conftest import (  # noqa: F401  (deliver and shopify_webhook are fixtures)
    deliver, fixture_body, fixture_payload, shopify_headers, shopify_webhook)

T = FlowInput.Type
F = FlowInput.Format
# Written out, not imported: a change of wording is a change callers see, and should fail here first.
EMAIL = "Enter an e-mail address such as ada@example.com."
PHONE = ("Enter a phone number in E.164 form: + then country code and number, without spaces or dashes, "
         "e.g. +14155550123.")


def schema(*fields: tuple[str, str, str] | tuple[str, str, str, dict]) -> list[FlowInput]:
    """Unsaved FlowInputs (name, type, format): validation needs no database."""
    return [FlowInput(name=f[0], type=f[1], format=f[2], **(f[3] if len(f) > 3 else {})) for f in fields]


def errors_of(fields, values, parse=validate_inputs) -> dict[str, list[str]]:
    with pytest.raises(InputValidationError) as caught:
        parse(fields, values)
    return caught.value.errors


CONTACT = schema(("EmailAddress", T.TEXT, F.EMAIL), ("TelephoneNumber", T.TEXT, F.E164),
                 ("Note", T.TEXT, F.NONE))


@pytest.fixture
def formatted(flow) -> Flow:
    """The acme flow with EmailAddress as an e-mail address and TelephoneNumber as an E.164 phone number."""
    FlowInput.objects.filter(flow=flow, name="EmailAddress").update(format=F.EMAIL)
    FlowInput.objects.filter(flow=flow, name="TelephoneNumber").update(format=F.E164)
    return flow


# --- the check (flows/inputs.py): what every entry point calls --------------------------------------------


@pytest.mark.parametrize("email", ["ada@example.com", "ada.lovelace+orders@mail.example.co.uk", "ada@xn--bcher-kva.ch"])
@pytest.mark.parametrize("phone", ["+14155550123", "+442071838750", "+12", "+123456789012345"])
def test_good_values_pass_exactly_as_given(email, phone):
    values = {"EmailAddress": email, "TelephoneNumber": phone, "Note": "any text at all"}

    assert validate_inputs(CONTACT, values) == values  # never rewritten: what passes is what is sent


@pytest.mark.parametrize("email", ["not-an-email", "ada@", "@example.com", "ada@example", "ada example@example.com",
                                   " ada@example.com", "ada@example.com\n", "ada@@example.com"])
def test_a_bad_email_address_says_what_to_type(email):
    assert errors_of(CONTACT, {"EmailAddress": email}) == {"EmailAddress": [EMAIL]}


@pytest.mark.parametrize("phone", [
    "14155550123",        # no +
    "+1 415 555 0123",    # spaces
    "+1-415-555-0123",    # dashes
    "+(415)5550123",
    "+04155550123",       # country codes do not start with 0
    "+1",                 # too short
    "+1234567890123456",  # 16 digits: E.164 has at most 15
    "+14155550123\n",     # a trailing newline ($ would let it through)
    "+1٤١٥٥٥٥٠١٢٣",       # Arabic-Indic digits after the 1 (\d would let them through)
    "555-555-SHIP",       # Shopify's sample address phone
])
def test_a_bad_phone_number_says_what_to_type(phone):
    assert errors_of(CONTACT, {"TelephoneNumber": phone}) == {"TelephoneNumber": [PHONE]}


def test_every_bad_value_is_named_at_once():
    assert errors_of(CONTACT, {"EmailAddress": "nope", "TelephoneNumber": "nope", "Note": "nope"}) == {
        "EmailAddress": [EMAIL], "TelephoneNumber": [PHONE]}


def test_the_type_is_checked_before_the_format():
    assert errors_of(CONTACT, {"EmailAddress": 42}) == {"EmailAddress": ["Expected text, got int."]}


def test_a_blank_formatted_value_is_not_given_and_a_required_one_is_missing():
    fields = schema(("EmailAddress", T.TEXT, F.EMAIL), ("Mobile", T.TEXT, F.E164, {"required": True}),
                    ("Note", T.TEXT, F.NONE))

    assert errors_of(fields, {"EmailAddress": "", "Mobile": "  ", "Note": ""}) == {
        "Mobile": ["This input is required."]}
    assert validate_inputs(fields, {"EmailAddress": " ", "Mobile": "+14155550123", "Note": ""}) == {
        "Mobile": "+14155550123", "Note": ""}  # plain text keeps "" as a value


def test_each_item_of_a_text_collection_is_checked():
    fields = schema(("Emails", T.TEXT, F.EMAIL, {"is_collection": True}),
                    ("Phones", T.TEXT, F.E164, {"is_collection": True}))

    assert validate_inputs(fields, {"Emails": ["ada@example.com", "bob@example.com"], "Phones": ["+14155550123"]}) == {
        "Emails": ["ada@example.com", "bob@example.com"], "Phones": ["+14155550123"]}
    assert errors_of(fields, {"Emails": ["ada@example.com", "not-an-email", "x"], "Phones": ["+1 415"]}) == {
        "Emails": [f"Item 2: {EMAIL}", f"Item 3: {EMAIL}"], "Phones": [f"Item 1: {PHONE}"]}


def test_name_value_strings_are_checked_the_same_way():
    fields = schema(("EmailAddress", T.TEXT, F.EMAIL), ("Phones", T.TEXT, F.E164, {"is_collection": True}))

    assert errors_of(fields, {"EmailAddress": "not-an-email", "Phones": "+14155550123, 0800 123"},
                     parse=parse_text_values) == {"EmailAddress": [EMAIL], "Phones": [f"Item 2: {PHONE}"]}
    assert parse_text_values(fields, {"EmailAddress": "", "Phones": "+14155550123,+442071838750"}) == {
        "Phones": ["+14155550123", "+442071838750"]}


def test_a_format_left_on_a_non_text_input_checks_nothing():
    """Refused by FlowInput.clean; a row written around it must still not make numbers fail as e-mail addresses."""
    assert validate_inputs(schema(("Count", T.NUMBER, F.EMAIL)), {"Count": 3}) == {"Count": 3}


# --- the model -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [T.NUMBER, T.CURRENCY, T.BOOLEAN, T.DATE, T.DATETIME, T.RECORD])
def test_the_model_refuses_a_format_on_a_non_text_input(flow, kind):
    field = FlowInput(flow=flow, name="Count", type=kind, format=F.EMAIL)

    with pytest.raises(ValidationError) as refused:
        field.full_clean()

    label = T(kind).label
    assert refused.value.message_dict == {"format": [
        f"Only text inputs take a format (this one is {label}): set Format to None, or Type to Text."]}


def test_the_model_takes_a_format_on_text_inputs_and_collections(flow):
    FlowInput(flow=flow, name="Email", type=T.TEXT, format=F.EMAIL).full_clean()
    FlowInput(flow=flow, name="Phones", type=T.TEXT, format=F.E164, is_collection=True).full_clean()
    FlowInput(flow=flow, name="Count", type=T.NUMBER, format=F.NONE).full_clean()


def test_alice_sets_a_format_in_the_flows_inputs_and_is_refused_one_on_a_number(client, alice, flow):
    from tests.flows.test_flow_settings import flow_form

    client.force_login(alice)
    url = reverse("admin:flows_flow_change", args=[flow.pk])
    page = client.get(url).content.decode()
    assert 'name="inputs-0-format"' in page and "Phone (E.164)" in page

    refused = client.post(url, flow_form(flow, rows=[
        {"flow": str(flow.pk), "order": "9", "name": "Count", "type": "number", "format": "email"}]))

    assert refused.status_code == 200
    assert "Only text inputs take a format (this one is Number)" in refused.content.decode()
    assert not flow.inputs.filter(name="Count").exists()

    saved = client.post(url, flow_form(flow, rows=[
        {"flow": str(flow.pk), "order": "9", "name": "Mobile", "type": "text", "format": "e164"}]))

    assert saved.status_code == 302
    assert flow.inputs.get(name="Mobile").format == F.E164


# --- the same message from every entry point, and nothing stored --------------------------------------------


def test_the_fire_form_shows_the_message_next_to_the_field_and_stores_nothing(client, formatted, enqueued):
    client.force_login(support_user())  # bob from support
    url = reverse("console:flow_fire", args=[formatted.pk])

    response = client.post(url, {"IndividualId": "003Ho00002AlRM8IAN", "EmailAddress": "not-an-email",
                                 "TelephoneNumber": "+1 415 555 0123"})

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert (errors["EmailAddress"], errors["TelephoneNumber"]) == ([EMAIL], [PHONE])
    html = response.content.decode()
    assert 'value="not-an-email"' in html  # what bob typed stays, to be corrected
    assert not Trigger.objects.exists() and enqueued == []


def test_the_fire_form_fires_good_values_and_leaves_blank_ones_out(client, formatted, enqueued):
    client.force_login(support_user())

    response = client.post(reverse("console:flow_fire", args=[formatted.pk]), {
        "IndividualId": "003Ho00002AlRM8IAN", "EmailAddress": "ada@example.com", "TelephoneNumber": ""})

    assert response.status_code == 302
    assert Trigger.objects.get().inputs == {"IndividualId": "003Ho00002AlRM8IAN", "EmailAddress": "ada@example.com"}


def test_the_fire_form_offers_the_right_keyboard_and_a_hint(client, formatted):
    FlowInput.objects.create(flow=formatted, name="Emails", format=F.EMAIL, is_collection=True, order=5,
                             description="Copies")
    client.force_login(support_user())

    form = client.get(reverse("console:flow_fire", args=[formatted.pk])).context["form"]

    html = str(form)
    assert 'type="email" name="EmailAddress"' in html
    assert 'type="tel" name="TelephoneNumber"' in html and 'placeholder="+14155550123"' in html
    assert 'type="text" name="IndividualId"' in html
    assert (form["EmailAddress"].help_text, form["TelephoneNumber"].help_text, form["Emails"].help_text) == (
        "E-mail address.", "Phone, E.164: +14155550123.", "Copies. One e-mail address per line.")


def test_the_api_answers_400_with_the_message_and_stores_nothing(client, formatted):
    from flows.api.services import api_key_create

    api = Api(client, api_key_create(name="ERP sync", flows=[formatted])[1])

    response = api.post(TRIGGERS, {"inputs": {"IndividualId": "003Ho00002AlRM8IAN", "EmailAddress": "not-an-email",
                                              "TelephoneNumber": "4155550123"}})

    assert response.status_code == 400
    assert response.json() == {"errors": {"EmailAddress": [EMAIL], "TelephoneNumber": [PHONE]}}
    assert not Trigger.objects.exists()

    batch = api.post(f"{TRIGGERS}/batch", {"items": [
        {"inputs": {"IndividualId": "A", "EmailAddress": "ada@example.com"}},
        {"inputs": {"IndividualId": "B", "EmailAddress": "ada@"}}]})

    assert [r["result"] for r in batch.json()["results"]] == ["created", "invalid"]
    assert batch.json()["results"][1]["errors"] == {"EmailAddress": [EMAIL]}
    assert list(Trigger.objects.values_list("inputs", flat=True)) == [{"IndividualId": "A",
                                                                      "EmailAddress": "ada@example.com"}]


def test_trigger_flow_exits_2_with_the_message_as_json_and_stores_nothing(formatted):
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("trigger_flow", "acme", "On_Demand_Flow", "IndividualId=003Ho00002AlRM8IAN",
                     "EmailAddress=not-an-email", "TelephoneNumber=+1 415 555 0123", stdout=out, stderr=err)

    assert exited.value.code == 2
    assert json.loads(out.getvalue()) == {"errors": {"EmailAddress": [EMAIL], "TelephoneNumber": [PHONE]}}
    assert f"EmailAddress: {EMAIL}" in err.getvalue()
    assert not Trigger.objects.exists()


def test_a_webhook_mapping_a_bad_email_is_unmappable_with_the_message(deliver, formatted):
    payload = {**fixture_payload(), "email": "not-an-email"}
    body = json.dumps(payload).encode()

    response = deliver(body)

    delivery = WebhookDelivery.objects.get()
    assert response.status_code == 200  # Shopify's retry could not fix it
    assert response.json() == {"delivery": delivery.pk, "outcome": "unmappable", "trigger": None}
    # The address phone of Shopify's sample is no E.164 number either: both are named, in the same words.
    assert delivery.reason == f"EmailAddress: {EMAIL}; TelephoneNumber: {PHONE}"
    assert delivery.body == body.decode()  # kept whole, to replay once the mapping or the format is fixed
    assert delivery.email == "not-an-email"  # searchable in the console as it came
    assert not Trigger.objects.exists()


def test_a_webhook_mapping_good_values_fires(deliver, formatted):
    payload = {**fixture_payload(), "billing_address": {"phone": "+14155550123"}}

    response = deliver(json.dumps(payload).encode())

    assert response.json()["outcome"] == "triggered"
    inputs = Trigger.objects.get().inputs
    assert (inputs["EmailAddress"], inputs["TelephoneNumber"]) == ("jon@example.com", "+14155550123")


# --- import and the demo seed -------------------------------------------------------------------------------


TOKEN_URL = f"{MY_DOMAIN}/services/oauth2/token"
DESCRIBE_URL = "https://acme-api.my.salesforce.com/services/data/v65.0/actions/custom/flow/Welcome_Member"


def describe_input(name: str, kind: str = "STRING", max_occurs: int = 1) -> dict:
    return {"name": name, "label": name, "description": "", "type": kind, "required": False,
            "maxOccurs": max_occurs, "sobjectType": None, "byteLength": 0, "picklistValues": None}


DESCRIBED = [
    ("EmailAddress", "STRING", 1, F.EMAIL),
    ("ContactEmail", "STRING", 1, F.EMAIL),
    ("AccountEmail", "STRING", 1, F.EMAIL),
    ("Recipient", "EMAIL", 1, F.EMAIL),        # Salesforce's own e-mail type
    ("CcEmails", "STRING", 5, F.EMAIL),        # a text collection
    ("TelephoneNumber", "STRING", 1, F.E164),
    ("MobilePhone", "PHONE", 1, F.E164),
    ("Mobile", "STRING", 1, F.E164),
    ("Fax", "PHONE", 1, F.NONE),               # PHONE alone is free text in Salesforce
    ("EmailSubject", "STRING", 1, F.NONE),     # about the e-mail, not an address
    ("EmailOptIn", "BOOLEAN", 1, F.NONE),
    ("PhoneType", "STRING", 1, F.NONE),
    ("EmailCount", "DOUBLE", 1, F.NONE),       # not text
    ("IndividualId", "STRING", 1, F.NONE),
]


@pytest.fixture
def describe(org):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as sf:
        sf.post(TOKEN_URL, json={"access_token": "00Dacme!token", "instance_url": "https://acme-api.my.salesforce.com",
                                 "token_type": "Bearer", "issued_at": "1678833535086"})
        sf.get(DESCRIBE_URL, json={"name": "Welcome_Member", "label": "Welcome member", "inputs": [
            describe_input(name, kind, occurs) for name, kind, occurs, _ in DESCRIBED]})
        yield sf


def test_an_import_offers_formats_by_name_and_saves_them(describe, org):
    preview = flow_import_preview(org=org, api_name="Welcome_Member")

    assert [(s.name, s.format) for s in preview.inputs] == [(name, fmt) for name, _, _, fmt in DESCRIBED]

    flow = flow_import_apply(preview=preview)

    assert {i.name: i.format for i in flow.inputs.all()} == {name: fmt for name, _, _, fmt in DESCRIBED}
    for field in flow.inputs.all():
        field.full_clean()  # no format lands on a non-text input


def test_the_import_preview_shows_the_formats(describe, org, alice, client):
    client.force_login(alice)

    html = client.get(reverse("admin:flows_org_import_preview", args=[org.pk, "Welcome_Member"])).content.decode()

    table = html[html.index('id="import-inputs"'):html.index("</table>", html.index('id="import-inputs"'))]
    assert "<th>Format</th>" in table
    assert '<td><code>EmailAddress</code></td><td>text</td><td class="input-format">E-mail address</td>' in table
    assert '<td><code>TelephoneNumber</code></td><td>text</td><td class="input-format">Phone (E.164)</td>' in table
    assert '<td><code>EmailSubject</code></td><td>text</td><td class="input-format"></td>' in table


def test_a_reimport_keeps_the_admins_formats_and_shows_what_it_would_offer(describe, org, alice, client):
    flow = make_flow(org, "Welcome_Member")  # EmailAddress, IndividualId, TelephoneNumber: no format yet
    FlowInput.objects.create(flow=flow, name="EmailCount", type=T.TEXT, format=F.EMAIL, order=7)
    client.force_login(alice)
    url = reverse("admin:flows_org_import_preview", args=[org.pk, "Welcome_Member"])

    html = client.get(url).content.decode()

    assert "none <span class=\"help\">(E-mail address suggested: set it on the flow's page)</span>" in html
    assert "<code>EmailCount</code>: type text → number, format E-mail address dropped (text only)" in html
    assert "added <code>ContactEmail</code> (text, format E-mail address)" in html

    client.post(url)

    formats = {i.name: i.format for i in flow.inputs.all()}
    assert (formats["EmailAddress"], formats["TelephoneNumber"]) == (F.NONE, F.NONE)  # kept as the admin left them
    assert (formats["ContactEmail"], formats["EmailCount"]) == (F.EMAIL, F.NONE)  # new: offered; number: dropped


def test_seed_demo_gives_the_demo_flow_its_formats_on_create_and_update(db):
    seed = lambda: call_command("seed_demo", salesforce_url="https://demo.my.salesforce.com",  # noqa: E731
                                stdout=StringIO())
    seed()
    flow = Flow.objects.get(org__slug="demo")
    expected = {"EmailAddress": F.EMAIL, "IndividualId": F.NONE, "TelephoneNumber": F.E164}
    assert {i.name: i.format for i in flow.inputs.all()} == expected

    FlowInput.objects.filter(flow=flow).update(format=F.NONE)  # a demo seeded before formats existed
    seed()

    assert {i.name: i.format for i in flow.inputs.all()} == expected


def test_the_demo_webhook_still_fires_for_shopifys_sample_order(client, db):
    """The sample's address phone (555-555-SHIP) is no E.164 number: the demo maps only the phones Shopify keeps
    in E.164, so Shopify's test notification still sends the confirmation."""
    call_command("seed_demo", salesforce_url="https://demo.my.salesforce.com", shopify_secret="s3cret",
                 stdout=StringIO())
    body = fixture_body()

    response = client.post("/hooks/shopify/demo", data=body, content_type="application/json",
                           headers=shopify_headers(body, secret="s3cret"))

    assert response.json()["outcome"] == "triggered", WebhookDelivery.objects.get().reason
    assert Trigger.objects.get().inputs == {"EmailAddress": "jon@example.com",
                                            "IndividualId": str(fixture_payload()["customer"]["id"])}
