"""A flow's delivery guarantee and trigger id input, as alice sets them in the admin or an import picks them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from flows.flow_import import ImportPreview, InputSpec, flow_import_apply
from flows.models import Flow, FlowInput


@pytest.fixture
def as_alice(client, alice):
    client.force_login(alice)
    return client


def flow_form(flow: Flow, *, rows: list[dict] | None = None, **changes) -> dict:
    """The flow's change form as the browser posts it: its fields, and one inline row per input (changed by
    `rows`, or new ones appended)."""
    inputs = list(flow.inputs.all())
    data = {"org": flow.org_id, "api_name": flow.api_name, "label": flow.label, "description": flow.description,
            "is_active": "on", "batch_window_ms": "200", "batch_max_inputs": "200", "delivery": flow.delivery,
            "trigger_id_input": flow.trigger_id_input, "inputs-INITIAL_FORMS": str(len(inputs)),
            "inputs-MIN_NUM_FORMS": "0", "inputs-MAX_NUM_FORMS": "1000"}
    all_rows = [{"id": str(i.pk), "flow": str(flow.pk), "order": str(i.order), "name": i.name, "type": i.type,
                 **({"required": "on"} if i.required else {})} for i in inputs] + (rows or [])
    for index, row in enumerate(all_rows):
        data.update({f"inputs-{index}-{name}": value for name, value in row.items()})
    data["inputs-TOTAL_FORMS"] = str(len(all_rows))
    return {**data, **changes}


def save(as_alice, flow: Flow, **form):
    return as_alice.post(reverse("admin:flows_flow_change", args=[flow.pk]), flow_form(flow, **form))


def test_alice_sets_the_delivery_to_at_most_once(as_alice, flow):
    response = save(as_alice, flow, delivery="at_most_once")

    assert response.status_code == 302
    assert Flow.objects.get(pk=flow.pk).delivery == Flow.Delivery.AT_MOST_ONCE


def test_the_trigger_id_input_can_be_added_with_its_input_in_one_save(as_alice, flow):
    new_row = {"flow": str(flow.pk), "order": "9", "name": "FlowgateTriggerId", "type": "text"}

    response = save(as_alice, flow, rows=[new_row], trigger_id_input="FlowgateTriggerId")

    assert response.status_code == 302
    assert Flow.objects.get(pk=flow.pk).trigger_id_input == "FlowgateTriggerId"
    assert flow.inputs.filter(name="FlowgateTriggerId").exists()


@pytest.mark.parametrize("name, rows, problem", [
    ("Nope", [], "This flow has no input named 'Nope'"),
    ("Count", [{"order": "9", "name": "Count", "type": "number"}], "must be a single text input"),
    ("Many", [{"order": "9", "name": "Many", "type": "text", "is_collection": "on"}], "must be a single text input"),
])
def test_the_trigger_id_input_must_be_one_of_the_flows_text_inputs(as_alice, flow, name, rows, problem):
    rows = [{"flow": str(flow.pk), **row} for row in rows]

    response = save(as_alice, flow, rows=rows, trigger_id_input=name)

    assert response.status_code == 200
    assert problem in response.content.decode().replace("&#x27;", "'")
    assert Flow.objects.get(pk=flow.pk).trigger_id_input == ""


def test_deleting_the_input_named_as_trigger_id_input_is_refused(as_alice, flow):
    key_input = FlowInput.objects.create(flow=flow, name="FlowgateTriggerId", order=9)
    Flow.objects.filter(pk=flow.pk).update(trigger_id_input="FlowgateTriggerId")
    flow.refresh_from_db()
    form = flow_form(flow)
    index = next(i for i in range(4) if form.get(f"inputs-{i}-id") == str(key_input.pk))
    form[f"inputs-{index}-DELETE"] = "on"

    response = as_alice.post(reverse("admin:flows_flow_change", args=[flow.pk]), form)

    assert response.status_code == 200
    assert "no input named" in response.content.decode()
    assert flow.inputs.filter(name="FlowgateTriggerId").exists()


def spec(name: str, type: str = "text", collection: bool = False) -> InputSpec:
    return InputSpec(name=name, type=type, is_collection=collection, required=False, description="")


def test_an_import_picks_an_input_named_flowgate_trigger_id(flow):
    preview = ImportPreview(org=flow.org, api_name=flow.api_name, label="x", description="",
                            inputs=[spec("IndividualId"), spec("FlowgateTriggerId")])

    assert flow_import_apply(preview=preview).trigger_id_input == "FlowgateTriggerId"


def test_an_import_that_drops_the_trigger_id_input_clears_it(flow):
    Flow.objects.filter(pk=flow.pk).update(trigger_id_input="FlowgateTriggerId")
    preview = ImportPreview(org=flow.org, api_name=flow.api_name, label="x", description="",
                            inputs=[spec("IndividualId")])

    assert flow_import_apply(preview=preview).trigger_id_input == ""


def test_an_import_leaves_a_chosen_trigger_id_input_and_ignores_a_non_text_one(flow):
    preview = ImportPreview(org=flow.org, api_name=flow.api_name, label="x", description="",
                            inputs=[spec("IndividualId"), spec("FlowgateTriggerId", type="number")])

    assert flow_import_apply(preview=preview).trigger_id_input == ""
