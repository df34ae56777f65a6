"""Management commands: seed_demo and trigger_flow, as an operator runs them."""

from __future__ import annotations

import json
from io import StringIO

import pytest
import responses
from django.core.management import call_command

from flows.models import ExternalClientApp, Flow, FlowInput, Org, Trigger

DEMO = "https://demo.my.salesforce.com"
TOKEN_URL = f"{DEMO}/services/oauth2/token"
INVOKE_URL = f"{DEMO}/services/data/v65.0/actions/custom/flow/On_Demand_Flow"
OUTPUTS = {"Flow__InterviewStatus": "Finished"}


def seed(password: str = "demo-admin-pw", **options) -> None:
    call_command("seed_demo", salesforce_url=DEMO, admin_password=password, stdout=StringIO(), **options)


def trigger_flow(*args: str) -> tuple[int, dict]:
    """Runs trigger_flow; returns its exit code and the JSON it printed."""
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("trigger_flow", *args, stdout=out, stderr=StringIO())
    return exited.value.code, json.loads(out.getvalue())


@pytest.fixture
def demo(db) -> Flow:
    seed()
    return Flow.objects.get(org__slug="demo")


@pytest.fixture
def sf():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.post(TOKEN_URL, json={"access_token": "00Ddemo!token-value", "instance_url": DEMO})
        yield mock


def test_seed_demo_is_idempotent(db, client):
    seed()
    seed(password="second-run-pw")

    org = Org.objects.get()
    assert (org.slug, org.my_domain_url, org.is_active) == ("demo", DEMO, True)
    app = ExternalClientApp.objects.get()
    assert app.is_active and app.rotated_at is None
    assert app.consumer_key.reveal() == "flowgate-demo-consumer-key"
    flow = Flow.objects.get()
    assert flow.api_name == "On_Demand_Flow"
    inputs = {i.name: (i.type, i.required) for i in flow.inputs.all()}
    assert inputs == {"EmailAddress": ("text", False), "IndividualId": ("text", True),
                      "TelephoneNumber": ("text", False)}
    assert client.login(username="admin", password="second-run-pw")


def test_seed_demo_with_new_credentials_rotates_the_app(demo):
    seed(consumer_secret="another-demo-secret")

    app = ExternalClientApp.objects.get()
    assert app.consumer_secret.reveal() == "another-demo-secret"
    assert app.rotated_at is not None


def test_invalid_inputs_exit_2_naming_every_problem(demo):
    FlowInput.objects.create(flow=demo, name="Quantity", type=FlowInput.Type.NUMBER, order=9)

    code, printed = trigger_flow("demo", "On_Demand_Flow", "Bogus=1", "Quantity=lots", "EmailAddress=ada@example.com")

    assert code == 2
    assert set(printed["errors"]) == {"Bogus", "Quantity", "IndividualId"}
    assert printed["errors"]["IndividualId"] == ["This input is required."]
    assert not Trigger.objects.exists()


def test_a_malformed_item_is_reported_with_the_other_problems(demo):
    code, printed = trigger_flow("demo", "On_Demand_Flow", "EmailAddress", "Bogus=1")

    assert code == 2
    assert set(printed["errors"]) == {"EmailAddress", "Bogus", "IndividualId"}


def test_an_unknown_flow_is_a_command_error(demo):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="No flow 'Nope'"):
        call_command("trigger_flow", "demo", "Nope", stdout=StringIO())


def test_sync_success_exits_0_with_the_trigger_as_json(demo, sf):
    sf.post(INVOKE_URL, json=[{"actionName": "On_Demand_Flow", "errors": None, "isSuccess": True,
                               "outputValues": OUTPUTS}])

    code, printed = trigger_flow("demo", "On_Demand_Flow", "IndividualId=003Ho00002AlRM8IAN",
                                 "EmailAddress=ada@example.com", "--sync")

    assert code == 0
    assert set(printed) == {"id", "status", "attempts", "outputs", "error"}
    trigger = Trigger.objects.get()
    assert printed == {"id": trigger.pk, "status": "succeeded", "attempts": 1, "outputs": OUTPUTS, "error": None}
    assert (trigger.source, trigger.actor_label) == (Trigger.Source.CLI, "command line")
    assert json.loads(sf.calls[1].request.body) == {
        "inputs": [{"IndividualId": "003Ho00002AlRM8IAN", "EmailAddress": "ada@example.com"}]}


def test_sync_per_input_failure_exits_1_with_the_error(demo, sf):
    failure = {"statusCode": "UNKNOWN_EXCEPTION", "message": "An error occurred when executing a flow interview."}
    sf.post(INVOKE_URL, status=400, json=[{"actionName": "On_Demand_Flow", "isSuccess": False, "outputValues": None,
                                           "errors": [failure]}])

    code, printed = trigger_flow("demo", "On_Demand_Flow", "IndividualId=003Ho00002AlRM8IAN", "--sync")

    assert code == 1
    assert printed["status"] == "failed"
    assert printed["error"]["code"] == "UNKNOWN_EXCEPTION"
    assert printed["error"]["message"] == "An error occurred when executing a flow interview."
    assert Trigger.objects.get().status == Trigger.Status.FAILED


def test_sync_retries_a_transient_error_in_process(demo, sf, settings, monkeypatch):
    settings.FLOWGATE_RETRY_DELAYS = [0.01]
    monkeypatch.setattr("flows.tasks.dispatch_trigger.apply_async", lambda *a, **k: None)
    sf.post(INVOKE_URL, status=503)
    sf.post(INVOKE_URL, json=[{"actionName": "On_Demand_Flow", "errors": None, "isSuccess": True,
                               "outputValues": None}])

    code, printed = trigger_flow("demo", "On_Demand_Flow", "IndividualId=003Ho00002AlRM8IAN", "--sync")

    assert (code, printed["status"], printed["attempts"], printed["error"]) == (0, "succeeded", 2, None)


def test_trigger_flow_reports_an_unknown_outcome_and_exits_1(demo, sf):
    """An at-most-once flow whose answer was lost: the JSON says unknown, with what to do, and the exit code is 1."""
    import requests

    demo.delivery = Flow.Delivery.AT_MOST_ONCE
    demo.save()
    sf.post(INVOKE_URL, body=requests.ReadTimeout("Read timed out. (read timeout=30)"))

    code, printed = trigger_flow("demo", "On_Demand_Flow", "IndividualId=003UNKNOWN", "--sync")

    assert code == 1
    assert (printed["status"], printed["error"]["code"]) == ("unknown", "TIMEOUT")
    assert "Mark as delivered" in printed["error"]["hint"]
    assert Trigger.objects.get().status == Trigger.Status.UNKNOWN
