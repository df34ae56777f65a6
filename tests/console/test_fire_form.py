"""The fire form: one typed field per FlowInput; values go to trigger_create as JSON types."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from flows.models import Flow, FlowInput, Trigger

from .conftest import logged_in

T = FlowInput.Type
# name, type, collection, required, description
SCHEMA = [
    ("Quantity", T.NUMBER, False, True, "How many tickets"),
    ("Amount", T.CURRENCY, False, False, "Paid, in EUR"),
    ("Subscribed", T.BOOLEAN, False, True, "Opted in to the newsletter"),
    ("Vip", T.BOOLEAN, False, False, ""),
    ("DeliveryDate", T.DATE, False, False, "When it ships"),
    ("AppointmentAt", T.DATETIME, False, False, "The booked slot"),
    ("Tags", T.TEXT, True, False, "Labels"),
    ("Scores", T.NUMBER, True, False, ""),
    ("Dates", T.DATE, True, False, ""),
    ("Account", T.RECORD, False, False, "The account"),
]
VALID = {
    "EmailAddress": "", "IndividualId": "003Ho00002AlRM8IAN", "TelephoneNumber": "",
    "Quantity": "3", "Amount": "12.50", "Subscribed": "false", "Vip": "true", "DeliveryDate": "2026-12-01",
    "AppointmentAt": "2026-12-01T09:30", "Tags": "gold\r\n silver \r\n\r\n", "Scores": "1\n2.5", "Dates": "",
    "Account": '{"Name": "Acme", "Employees": 12}',
}


@pytest.fixture
def typed_flow(flow) -> Flow:
    FlowInput.objects.filter(flow=flow, name="EmailAddress").update(description="The customer's email address")
    for order, (name, kind, collection, required, description) in enumerate(SCHEMA, start=10):
        FlowInput.objects.create(flow=flow, name=name, type=kind, is_collection=collection, required=required,
                                 description=description, order=order)
    return flow


@pytest.fixture
def berlin(settings):
    settings.TIME_ZONE = "Europe/Berlin"


def fire_url(flow: Flow) -> str:
    return reverse("console:flow_fire", args=[flow.pk])


def widget(html: str, name: str) -> str:
    """The <input>, <select> or <textarea> tag of one field."""
    match = re.search(rf'<(input|select|textarea)\b[^>]*\bname="{name}"[^>]*>', html)
    assert match, f"no field {name}"
    return match.group(0)


def row(html: str, name: str) -> str:
    """The form row of one field: its errors, label, widget and help."""
    match = re.search(rf'<div class="form-row[^"]*">(?:(?!<div class="form-row).)*?id="id_{name}".*?'
                      rf'(?=<div class="form-row|</fieldset>)', html, re.S)
    assert match, f"no row for {name}"
    return match.group(0)


def test_the_form_has_one_typed_field_per_input(as_bob, typed_flow, berlin):
    response = as_bob.get(fire_url(typed_flow))

    assert response.status_code == 200
    html = response.content.decode()
    names = re.findall(r'<(?:input|select|textarea)\b[^>]*\bname="(\w+)"', html[html.index('id="fire-form"'):])
    assert [n for n in names if n != "csrfmiddlewaretoken"] == [
        "EmailAddress", "IndividualId", "TelephoneNumber", *[s[0] for s in SCHEMA]]
    assert 'type="text"' in widget(html, "IndividualId")
    assert 'type="number"' in widget(html, "Quantity")
    assert 'type="number"' in widget(html, "Amount") and 'step="0.01"' in widget(html, "Amount")
    assert 'type="date"' in widget(html, "DeliveryDate")
    assert 'type="datetime-local"' in widget(html, "AppointmentAt")
    assert widget(html, "Tags").startswith("<textarea")
    assert widget(html, "Scores").startswith("<textarea")
    assert widget(html, "Account").startswith("<textarea")
    subscribed = row(html, "Subscribed")
    assert widget(html, "Subscribed").startswith("<select")
    assert re.findall(r'<option value="(\w+)"[^>]*>(\w+)</option>', subscribed) == [("true", "Yes"), ("false", "No")]
    assert widget(html, "Vip").startswith("<select") and ">— not sent</option>" in row(html, "Vip")
    assert ">Unknown</option>" not in row(html, "Vip")  # Salesforce's booleans are true or false


def test_required_fields_are_marked_and_descriptions_are_help(as_bob, typed_flow, berlin):
    html = as_bob.get(fire_url(typed_flow)).content.decode()

    for name in ("IndividualId", "Quantity", "Subscribed"):
        assert f'<label for="id_{name}" class="required">{name} *</label>' in html
        assert "required" in widget(html, name) or name == "Subscribed"
    for name in ("EmailAddress", "Amount", "Tags"):
        assert f'<label for="id_{name}" >{name}</label>' in html
    assert '<div class="help" id="id_EmailAddress_helptext">The customer&#x27;s email address</div>' in row(html, "EmailAddress")
    assert '<div class="help" id="id_Quantity_helptext">How many tickets</div>' in row(html, "Quantity")
    assert "Labels. One text per line." in row(html, "Tags")
    assert "The booked slot. Time zone: Europe/Berlin." in row(html, "AppointmentAt")
    assert "A JSON object of field names to values." in row(html, "Account")


def test_a_valid_post_fires_with_json_typed_inputs(as_bob, bob, typed_flow, berlin, enqueued,
                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = as_bob.post(fire_url(typed_flow), VALID)

    trigger = Trigger.objects.get()
    assert response.status_code == 302, response.content.decode()[:3000]
    assert response.url == reverse("console:trigger", args=[trigger.pk])
    assert (trigger.source, trigger.actor, trigger.status) == (Trigger.Source.CONSOLE, bob, Trigger.Status.QUEUED)
    assert trigger.inputs == {
        "IndividualId": "003Ho00002AlRM8IAN", "Quantity": 3, "Amount": 12.5, "Subscribed": False, "Vip": True,
        "DeliveryDate": "2026-12-01", "AppointmentAt": "2026-12-01T09:30:00+01:00", "Tags": ["gold", "silver"],
        "Scores": [1, 2.5], "Account": {"Name": "Acme", "Employees": 12},
    }
    assert type(trigger.inputs["Quantity"]) is int and type(trigger.inputs["Scores"][0]) is int
    assert enqueued == [((trigger.pk,), None, {"countdown": None})]
    assert f"Trigger {trigger.pk} queued." in as_bob.get(response.url).content.decode()


def test_optional_fields_left_blank_are_not_sent(as_bob, typed_flow):
    as_bob.post(fire_url(typed_flow), {"IndividualId": "ID-1", "Quantity": "0", "Subscribed": "true",
                                       "Vip": "", "Amount": "", "Tags": "", "Account": ""})

    assert Trigger.objects.get().inputs == {"IndividualId": "ID-1", "Quantity": 0, "Subscribed": True}


def test_the_admin_fire_page_fires_with_source_admin(as_alice, alice, typed_flow):
    url = reverse("admin:flows_flow_fire", args=[typed_flow.pk])
    assert as_alice.get(url).status_code == 200

    response = as_alice.post(url, VALID)

    trigger = Trigger.objects.get()
    assert (trigger.source, trigger.actor) == (Trigger.Source.ADMIN, alice)
    assert response.status_code == 302 and response.url == reverse("console:trigger", args=[trigger.pk])


def test_the_flow_page_links_to_its_fire_form(as_bob, flow):
    html = as_bob.get(reverse("admin:flows_flow_change", args=[flow.pk])).content.decode()

    assert reverse("admin:flows_flow_fire", args=[flow.pk]) in html


def test_an_invalid_post_shows_errors_next_to_fields_and_stores_nothing(as_bob, typed_flow, enqueued):
    data = {**VALID, "IndividualId": "", "Quantity": "many", "Account": "{not json", "DeliveryDate": "2026-02-30"}

    response = as_bob.post(fire_url(typed_flow), data)

    assert response.status_code == 200
    html = response.content.decode()
    assert "This field is required." in row(html, "IndividualId")
    assert "Enter a number." in row(html, "Quantity")
    assert "Enter a valid JSON." in row(html, "Account")
    assert "Enter a valid date." in row(html, "DeliveryDate")
    assert "errorlist" not in row(html, "Amount")
    assert 'value="12.50"' in widget(html, "Amount")  # what was typed stays
    assert not Trigger.objects.exists()
    assert enqueued == []


def test_a_bad_collection_item_is_shown_next_to_its_field(as_bob, typed_flow):
    response = as_bob.post(fire_url(typed_flow), {**VALID, "Scores": "1\nmany"})

    assert response.status_code == 200
    assert "&#x27;many&#x27; is not a number." in row(response.content.decode(), "Scores")
    assert not Trigger.objects.exists()


def test_an_error_found_by_trigger_create_is_shown_next_to_its_field(as_bob, typed_flow):
    response = as_bob.post(fire_url(typed_flow), {**VALID, "Dates": "2026-12-01\n2026-13-45"})

    assert response.status_code == 200
    assert "Item 2: &#x27;2026-13-45&#x27; is not a date as YYYY-MM-DD." in row(response.content.decode(), "Dates")
    assert not Trigger.objects.exists()


def test_an_inactive_flow_is_a_form_error(as_bob, typed_flow):
    Flow.objects.filter(pk=typed_flow.pk).update(is_active=False)

    response = as_bob.post(fire_url(typed_flow), VALID)

    assert response.status_code == 200
    assert '<div class="errornote">' in response.content.decode()
    assert "not active" in response.content.decode()
    assert not Trigger.objects.exists()


def test_support_without_the_fire_permission_gets_403(dave, typed_flow):
    dave.user_permissions.add(*Permission.objects.filter(codename__in=["view_flow", "view_trigger", "view_org"]))
    client = logged_in(dave)

    for url in (fire_url(typed_flow), reverse("admin:flows_flow_fire", args=[typed_flow.pk])):
        assert client.get(url).status_code == 403
        assert client.post(url, VALID).status_code == 403
    assert not Trigger.objects.exists()
    flow_page = client.get(reverse("admin:flows_flow_change", args=[typed_flow.pk])).content.decode()
    assert "Fire this flow" not in flow_page


def test_a_missing_flow_is_404(as_bob, db):
    assert as_bob.get(reverse("console:flow_fire", args=[999999])).status_code == 404
