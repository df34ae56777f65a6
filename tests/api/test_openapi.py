"""The OpenAPI document against the API's behaviour: schemathesis generates requests (valid and invalid ones)
from /api/v1/openapi.json and runs them in-process through the WSGI application. Every answer must be a
documented status with a body that fits its schema, and never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from flows.api.services import api_key_create
from flows.models import Flow, Trigger
from portal.wsgi import application
from tests.conftest import make_flow, make_org

MAX_EXAMPLES = 100  # per operation: both runs together take about 15 s



def load_schema(**parameters: str) -> schemathesis.BaseSchema:
    """Loaded once at collection, in-process: the document needs no database."""
    loaded = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES, deterministic=True,
        database="none",
    )
    # The document cannot know each flow's inputs: a well-formed body may still name inputs the flow lacks,
    # which is the documented 400 with {"errors": ...}, not a valid request refused.
    loaded.config.checks.positive_data_acceptance.expected_statuses = ["2xx", "400", "401", "404", "409"]
    if parameters:
        loaded.config.update(parameters=parameters)
    return loaded


schema = load_schema()
# The same, every request aimed at the demo flow: past the 404 of a random org, into body validation.
demo_schema = load_schema(**{"path.org_slug": "demo", "path.flow_api_name": "On_Demand_Flow"})


@pytest.fixture
def bearer(db) -> Iterator[dict[str, str]]:
    # The document's examples name org demo and On_Demand_Flow: the explicit examples fire it for real.
    make_flow(make_org(slug="demo"))
    _, raw_key = api_key_create(name="schemathesis")
    # As Django's test client does: the WSGI handler would close the test's connection (and its transaction)
    # at the end of each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield {"Authorization": f"Bearer {raw_key}"}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)  # one key for the run
def test_the_api_behaves_as_its_openapi_document_says(case, bearer):
    case.call_and_validate(headers=bearer)


@demo_schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
def test_the_demo_flow_behaves_as_the_openapi_document_says(case, bearer):
    case.call_and_validate(headers=bearer)


def test_a_trigger_with_outputs_errors_and_resends_fits_the_document(bearer):
    flow = Flow.objects.get(org__slug="demo")
    done = Trigger.objects.create(flow=flow, inputs={"IndividualId": "003A"}, source="api", status="succeeded",
                                  attempts=1, outputs={"Flow__InterviewStatus": "Finished"}, finished_at=timezone.now())
    failed = Trigger.objects.create(flow=flow, inputs={"IndividualId": "FAIL"}, source="api", status="failed",
                                    attempts=3, error_code="INVALID_INPUT", error_message="No", hint="",
                                    finished_at=timezone.now())
    Trigger.objects.create(flow=flow, inputs={"IndividualId": "FAIL"}, source="resend", resend_of=failed)
    operation = schema["/triggers/{id}"]["GET"]

    for trigger in (done, failed):
        response = operation.Case(path_parameters={"id": trigger.pk}).call_and_validate(headers=bearer)
        assert response.status_code == 200


def test_the_document_is_served_and_lists_the_contract_paths(client, db):
    response = client.get("/api/v1/openapi.json")

    document = response.json()
    assert response.status_code == 200
    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": "/api/v1"}]
    assert {path: sorted(k for k in ops if k != "parameters") for path, ops in document["paths"].items()} == {
        "/flows/{org_slug}/{flow_api_name}/triggers": ["post"],
        "/flows/{org_slug}/{flow_api_name}/triggers/batch": ["post"],
        "/triggers/{id}": ["get"],
    }
    created = document["paths"]["/flows/{org_slug}/{flow_api_name}/triggers"]["post"]["responses"]
    assert sorted(created) == ["200", "202", "400", "401", "404", "405", "409", "413", "415"]
