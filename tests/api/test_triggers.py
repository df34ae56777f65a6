"""The JSON API as a developer's system calls it: codes and bodies exactly as issue 4's contract says."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from flows.api.services import api_key_create, api_key_revoke
from flows.models import Trigger

from .conftest import BATCH, TRIGGERS, VALID_INPUTS, Api

pytestmark = pytest.mark.django_db


def only_trigger() -> Trigger:
    return Trigger.objects.get()


# --- POST .../triggers --------------------------------------------------------------------------------


def test_a_valid_request_is_queued_and_answered_202(api, django_capture_on_commit_callbacks):
    with mock.patch("flows.services._enqueue") as enqueue, django_capture_on_commit_callbacks(execute=True):
        response = api.post(TRIGGERS, {"inputs": VALID_INPUTS})

    trigger = only_trigger()
    assert response.status_code == 202
    assert response.json() == {"id": trigger.pk, "status": "queued", "url": f"/api/v1/triggers/{trigger.pk}"}
    assert response["Location"] == f"/api/v1/triggers/{trigger.pk}"
    assert (trigger.source, trigger.actor_label, trigger.actor) == ("api", "ERP sync", None)
    assert trigger.inputs == VALID_INPUTS
    assert trigger.attempts == 0  # never waited for Salesforce
    enqueue.assert_called_once_with(trigger.pk)  # after commit, by the service


def test_the_same_idempotency_key_and_inputs_replay_the_trigger(api):
    first = api.post(TRIGGERS, {"inputs": VALID_INPUTS}, headers={"Idempotency-Key": "order-1234"})
    with mock.patch("flows.services._enqueue") as enqueue:
        again = api.post(TRIGGERS, {"inputs": VALID_INPUTS}, headers={"Idempotency-Key": "order-1234"})

    trigger = only_trigger()
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json() == {"id": trigger.pk, "status": "queued",
                                            "url": f"/api/v1/triggers/{trigger.pk}"}
    assert trigger.idempotency_key == "order-1234"
    enqueue.assert_not_called()  # nothing sent again


def test_the_same_idempotency_key_with_other_inputs_is_409(api):
    first = api.post(TRIGGERS, {"inputs": VALID_INPUTS}, headers={"Idempotency-Key": "order-1234"}).json()

    response = api.post(TRIGGERS, {"inputs": {**VALID_INPUTS, "EmailAddress": "eve@example.com"}},
                        headers={"Idempotency-Key": "order-1234"})

    assert response.status_code == 409
    assert response.json() == {
        "error": f"This Idempotency-Key was used with other inputs, for trigger {first['id']}.",
        "id": first["id"], "url": first["url"],
    }
    assert Trigger.objects.count() == 1


def test_invalid_inputs_are_400_naming_every_problem_and_nothing_is_stored(api):
    response = api.post(TRIGGERS, {"inputs": {"EmailAddress": 42, "Colour": "red"}})

    assert response.status_code == 400
    assert response.json() == {"errors": {
        "EmailAddress": ["Expected text, got int."],
        "Colour": ["Unknown input. This flow's inputs are: EmailAddress, IndividualId, TelephoneNumber."],
        "IndividualId": ["This input is required."],
    }}
    assert not Trigger.objects.exists()


def test_inputs_that_are_not_an_object_are_an_input_error(api):
    response = api.post(TRIGGERS, {"inputs": ["003A"]})

    assert response.status_code == 400
    assert response.json() == {"errors": {"inputs": ["Inputs must be an object of input names to values."]}}


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic YWxpY2U6cHc="},
])
def test_no_key_is_401(anonymous, flow, headers):
    response = anonymous.post(TRIGGERS, {"inputs": VALID_INPUTS}, headers=headers)

    assert response.status_code == 401
    assert response.json() == {"error": "Send an API key: Authorization: Bearer KEY."}
    assert response["WWW-Authenticate"] == 'Bearer realm="flowgate"'
    assert not Trigger.objects.exists()


def test_a_wrong_key_is_401(client, scoped_key):
    api_key, raw = scoped_key
    for wrong in (raw[:-1] + ("A" if raw[-1] != "A" else "B"), "fg_00000000_" + "x" * 43, "not-a-key"):
        response = Api(client, wrong).post(TRIGGERS, {"inputs": VALID_INPUTS})
        assert response.status_code == 401, wrong
        assert response.json() == {"error": "The API key is invalid or revoked."}
    assert not Trigger.objects.exists()


def test_a_revoked_key_is_401(api, scoped_key):
    api_key_revoke(api_keys=[scoped_key[0]])

    response = api.post(TRIGGERS, {"inputs": VALID_INPUTS})

    assert response.status_code == 401
    assert response.json() == {"error": "The API key is invalid or revoked."}


def test_a_key_for_another_flow_gets_the_same_404_as_a_flow_that_does_not_exist(api, other_flow):
    """A scoped key learns nothing about flows it may not use: same status, same body as a missing flow."""
    response = api.post("/api/v1/flows/acme/Other_Flow/triggers", {"inputs": VALID_INPUTS})
    other_flow.delete()
    missing = api.post("/api/v1/flows/acme/Other_Flow/triggers", {"inputs": VALID_INPUTS})

    assert (response.status_code, response.json()) == (404, {"error": "No flow 'Other_Flow' in org 'acme'."})
    assert (missing.status_code, missing.content) == (response.status_code, response.content)
    assert not Trigger.objects.exists()


def test_a_key_for_all_flows_may_fire_any(client, flow, other_flow):
    _, raw = api_key_create(name="Everything")

    response = Api(client, raw).post("/api/v1/flows/acme/Other_Flow/triggers", {"inputs": VALID_INPUTS})

    assert response.status_code == 202
    assert only_trigger().flow == other_flow


@pytest.mark.parametrize("path, message", [
    ("/api/v1/flows/nope/On_Demand_Flow/triggers", "No flow 'On_Demand_Flow' in org 'nope'."),
    ("/api/v1/flows/acme/No_Such_Flow/triggers", "No flow 'No_Such_Flow' in org 'acme'."),
])
def test_an_unknown_org_or_flow_is_404(api, path, message):
    response = api.post(path, {"inputs": VALID_INPUTS})

    assert response.status_code == 404
    assert response.json() == {"error": message}


@pytest.mark.parametrize("raw, message", [
    (b"{not json", "The body is not valid JSON: Expecting property name enclosed in double quotes: line 1 "
                   "column 2 (char 1)"),
    (b" ", "The body is not valid JSON: Expecting value: line 1 column 2 (char 1)"),
    (b'["inputs"]', 'The body must be a JSON object: {"inputs": ...}.'),
    (b'"text"', 'The body must be a JSON object: {"inputs": ...}.'),
    (b"{}", 'The body must be {"inputs": ...}.'),
    (b'{"inputs": {}, "input": {}}', 'The body must be {"inputs": ...}; unknown: \'input\'.'),
])
def test_a_body_that_is_not_a_json_object_with_inputs_is_400(api, raw, message):
    response = api.post(TRIGGERS, raw=raw)

    assert response.status_code == 400
    assert response.json() == {"error": message}
    assert not Trigger.objects.exists()


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "",
                                          "application/json; charset=latin-1"])
def test_another_content_type_is_415(api, content_type):
    response = api.post(TRIGGERS, raw=b'{"inputs": {"IndividualId": "003A"}}', content_type=content_type)

    assert response.status_code == 415
    assert response.json()["error"].startswith("Send the body as")
    assert not Trigger.objects.exists()


def test_a_body_over_256_kib_is_413_before_it_is_parsed(api):
    body = b'{"inputs": {"IndividualId": "' + b"x" * (256 * 1024) + b'"}}'

    with mock.patch("flows.api.views.parse_json") as parse:
        response = api.post(TRIGGERS, raw=body)

    assert response.status_code == 413
    assert response.json() == {"error": "The body is larger than 256 KiB."}
    parse.assert_not_called()


def test_a_body_just_under_the_limit_is_read(api):
    padding = 256 * 1024 - len(b'{"inputs": {"IndividualId": "003A"}}')
    body = b'{"inputs": {"IndividualId": "003A"}' + b" " * padding + b"}"
    assert len(body) == 256 * 1024

    assert api.post(TRIGGERS, raw=body).status_code == 202


def test_an_invalid_idempotency_key_is_400(api):
    response = api.post(TRIGGERS, {"inputs": VALID_INPUTS}, headers={"Idempotency-Key": "x" * 256})

    assert response.status_code == 400
    assert response.json() == {"error": "Idempotency-Key: An idempotency key is 1 to 255 printable ASCII "
                                        "characters, without spaces at either end."}


def test_get_is_405_with_allow(api):
    response = api.get(TRIGGERS)

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json() == {"error": "Use POST."}


def test_last_used_is_noted(api, scoped_key):
    api_key = scoped_key[0]
    assert api_key.last_used_at is None

    api.post(TRIGGERS, {"inputs": VALID_INPUTS})

    api_key.refresh_from_db()
    assert api_key.last_used_at is not None
    assert (timezone.now() - api_key.last_used_at).total_seconds() < 5


# --- POST .../triggers/batch ------------------------------------------------------------------------------


def test_a_batch_answers_one_result_per_item_in_order(api):
    existing = api.post(TRIGGERS, {"inputs": VALID_INPUTS}, headers={"Idempotency-Key": "k-old"}).json()

    response = api.post(BATCH, {"items": [
        {"inputs": {"IndividualId": "003A"}},
        {"inputs": {"EmailAddress": "no-id@example.com"}},
        {"inputs": VALID_INPUTS, "idempotency_key": "k-old"},
        {"inputs": {"IndividualId": "003B"}, "idempotency_key": "k-old"},
        {"inputs": {"IndividualId": "003C"}, "idempotency_key": "k-new"},
        "not an object",
        {"inputs": {"IndividualId": "003D"}, "idempotency_key": ""},
    ]})

    assert response.status_code == 207
    a, c = Trigger.objects.get(inputs={"IndividualId": "003A"}), Trigger.objects.get(idempotency_key="k-new")
    assert response.json() == {"results": [
        {"index": 0, "result": "created", "id": a.pk, "status": "queued", "url": f"/api/v1/triggers/{a.pk}"},
        {"index": 1, "result": "invalid", "errors": {"IndividualId": ["This input is required."]}},
        {"index": 2, "result": "existing", **existing},
        {"index": 3, "result": "conflict", "errors": {"idempotency_key": [
            f"Used before with other inputs, for trigger {existing['id']}."]}},
        {"index": 4, "result": "created", "id": c.pk, "status": "queued", "url": f"/api/v1/triggers/{c.pk}"},
        {"index": 5, "result": "invalid", "errors": {"item": [
            'Each item is an object {"inputs": {...}} with an optional "idempotency_key", nothing else.']}},
        {"index": 6, "result": "invalid", "errors": {"idempotency_key": [
            "An idempotency key is 1 to 255 printable ASCII characters, without spaces at either end."]}},
    ]}
    assert Trigger.objects.count() == 3
    assert set(Trigger.objects.values_list("source", "actor_label")) == {("api", "ERP sync")}


def test_a_batch_of_1000_is_accepted_and_1001_is_refused(api):
    items = [{"inputs": {"IndividualId": f"003{i:05d}"}} for i in range(1001)]

    too_many = api.post(BATCH, {"items": items})
    assert too_many.status_code == 400
    assert too_many.json() == {"error": '"items" must be a list of 1 to 1000 items.'}
    assert not Trigger.objects.exists()

    with CaptureQueriesContext(connection) as queries:
        response = api.post(BATCH, {"items": items[:1000]})
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert statements.count("INSERT") == 1000  # one insert per item...
    assert statements.count("SELECT") < 10  # ...and the key, the flow and its inputs read once
    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(1000))
    assert {r["result"] for r in results} == {"created"}
    assert Trigger.objects.count() == 1000


@pytest.mark.parametrize("body, message", [
    ({"items": []}, '"items" must be a list of 1 to 1000 items.'),
    ({"items": {"inputs": {}}}, '"items" must be a list of 1 to 1000 items.'),
    ({"inputs": {}}, 'The body must be {"items": ...}; unknown: \'inputs\'.'),
])
def test_a_batch_body_of_the_wrong_shape_is_400(api, body, message):
    response = api.post(BATCH, body)

    assert response.status_code == 400
    assert response.json() == {"error": message}


def test_a_batch_needs_a_key_scoped_to_the_flow(api, other_flow):
    response = api.post("/api/v1/flows/acme/Other_Flow/triggers/batch", {"items": [{"inputs": VALID_INPUTS}]})

    assert (response.status_code, response.json()) == (404, {"error": "No flow 'Other_Flow' in org 'acme'."})
    assert not Trigger.objects.exists()


# --- GET /api/v1/triggers/{id} -----------------------------------------------------------------------------


def test_a_trigger_reads_back_with_outputs_times_and_resends(api, flow):
    created = api.post(TRIGGERS, {"inputs": VALID_INPUTS}).json()
    trigger = Trigger.objects.get(pk=created["id"])
    finished = timezone.now()
    Trigger.objects.filter(pk=trigger.pk).update(
        status="failed", attempts=2, error_code="INVALID_INPUT", error_message="Bad id", hint="Check the id.",
        finished_at=finished)
    resend = Trigger.objects.create(flow=flow, inputs=VALID_INPUTS, source="resend", resend_of=trigger)

    response = api.get(created["url"])

    assert response.status_code == 200
    trigger.refresh_from_db()
    assert response.json() == {
        "id": trigger.pk, "key": str(trigger.key), "status": "failed", "attempts": 2, "outputs": None,
        "error": {"code": "INVALID_INPUT", "message": "Bad id", "hint": "Check the id."},
        "url": f"/api/v1/triggers/{trigger.pk}",
        "created_at": trigger.created_at.isoformat(), "finished_at": finished.isoformat(),
        "resends": [{"id": resend.pk, "url": f"/api/v1/triggers/{resend.pk}"}],
    }


def test_an_unknown_outcome_reads_back_as_unknown(api):
    created = api.post(TRIGGERS, {"inputs": VALID_INPUTS}).json()
    Trigger.objects.filter(pk=created["id"]).update(status="unknown", attempts=1, error_code="TIMEOUT",
                                                    error_message="No answer in time.", hint="Decide.")

    body = api.get(created["url"]).json()

    assert (body["status"], body["error"]["code"]) == ("unknown", "TIMEOUT")


def test_a_succeeded_trigger_shows_its_outputs(api):
    created = api.post(TRIGGERS, {"inputs": VALID_INPUTS}).json()
    Trigger.objects.filter(pk=created["id"]).update(status="succeeded", attempts=1,
                                                    outputs={"Flow__InterviewStatus": "Finished"})

    body = api.get(created["url"]).json()

    assert (body["status"], body["outputs"], body["error"]) == ("succeeded", {"Flow__InterviewStatus": "Finished"},
                                                                None)


def test_only_keys_scoped_to_the_triggers_flow_may_read_it(client, api, other_flow):
    _, other_raw = api_key_create(name="Other", flows=[other_flow])
    created = api.post(TRIGGERS, {"inputs": VALID_INPUTS}).json()

    response = Api(client, other_raw).get(created["url"])
    Trigger.objects.filter(pk=created["id"]).delete()
    missing = api.get(created["url"])

    assert (response.status_code, response.json()) == (404, {"error": f"No trigger '{created['id']}'."})
    assert (missing.status_code, missing.content) == (response.status_code, response.content)
    assert Api(client, None).get(created["url"]).status_code == 401


@pytest.mark.parametrize("trigger_id", ["999999", "0", "abc", "99999999999999999999999", "-1", "١٢"])
def test_an_unknown_trigger_is_404(api, trigger_id):
    response = api.get(f"/api/v1/triggers/{trigger_id}")

    assert response.status_code == 404
    assert response.json() == {"error": f"No trigger {trigger_id!r}."}


def test_any_other_api_path_is_a_json_404(anonymous, db):
    response = anonymous.get("/api/v1/flows/acme")

    assert response.status_code == 404
    assert response.json() == {"error": "No such API endpoint: see /api/v1/openapi.json."}
