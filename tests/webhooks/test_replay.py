"""Held deliveries and replay: a delivery that cannot fire now is kept whole and replayed later through the live
path, from the console, the admin, the command line, or the sweep once an org's pause ends."""

from __future__ import annotations

import datetime as dt
import json
import threading
from io import StringIO
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from flows import tasks
from flows.models import Flow, FlowInput, Org, Trigger
from flows.webhooks import services
from flows.webhooks.models import ShopifyTopic, ShopifyWebhook, WebhookDelivery
from flows.webhooks.services import deliveries_replay, deliveries_resume_paused, delivery_replay

from ..conftest import admin_user, make_flow, support_user
from .conftest import DEMO_MAPPING, fixture_body, fixture_payload, shopify_headers

pytestmark = pytest.mark.django_db

INACTIVE_FLOW = ("The flow acme/On_Demand_Flow is inactive: activate it, then replay this delivery from the console "
                 "or with replay_deliveries.")
FIELDS = ["outcome", "reason", "held_for", "trigger_id", "replayed_at", "replayed_by", "body"]


def row(delivery: WebhookDelivery) -> dict:
    delivery.refresh_from_db()
    return {name: getattr(delivery, name) for name in FIELDS}


def bare_body() -> bytes:
    """The sample order without contact data: nothing fills the required IndividualId."""
    return json.dumps({k: v for k, v in fixture_payload().items() if k != "customer"}).encode()


def set_active(model, pk: int, active: bool) -> None:
    model.objects.filter(pk=pk).update(is_active=active)


@pytest.fixture
def held(deliver, flow) -> WebhookDelivery:
    """The sample order, delivered while the flow was inactive; the flow is active again."""
    set_active(Flow, flow.pk, False)
    deliver()
    set_active(Flow, flow.pk, True)
    return WebhookDelivery.objects.get()


def run_command(*args: str) -> str:
    out = StringIO()
    call_command("replay_deliveries", *args, stdout=out)
    return out.getvalue()


# --- held when received ---------------------------------------------------------------------------------


def test_a_delivery_for_an_inactive_flow_is_held_whole_and_answered_200(deliver, flow, settings):
    settings.FLOWGATE_DELIVERY_BODY_LIMIT = 100
    set_active(Flow, flow.pk, False)

    response = deliver()

    delivery = WebhookDelivery.objects.get()
    assert response.status_code == 200
    assert response.json() == {"delivery": delivery.pk, "outcome": "held", "trigger": None}
    assert (delivery.outcome, delivery.held_for, delivery.reason) == ("held", "inactive", INACTIVE_FLOW)
    assert delivery.body == fixture_body().decode()  # whole, above FLOWGATE_DELIVERY_BODY_LIMIT
    assert not delivery.body_truncated
    assert delivery.trigger is None
    assert not Trigger.objects.exists()


@pytest.mark.parametrize("flow_active, org_active, reason", [
    (True, False, "The org acme is inactive: activate it, then replay this delivery from the console or with "
                  "replay_deliveries."),
    (False, False, "The flow acme/On_Demand_Flow and its org acme are inactive: activate them, then replay this "
                   "delivery from the console or with replay_deliveries."),
])
def test_a_delivery_for_an_inactive_org_is_held(deliver, flow, org, flow_active, org_active, reason):
    set_active(Flow, flow.pk, flow_active)
    set_active(Org, org.pk, org_active)

    response = deliver()

    assert response.json()["outcome"] == "held"
    assert WebhookDelivery.objects.values_list("held_for", "reason").get() == ("inactive", reason)
    assert not Trigger.objects.exists()


def test_a_delivery_for_a_paused_org_is_held_until_the_pause_ends(deliver, org, settings):
    settings.FLOWGATE_DELIVERY_BODY_LIMIT = 100
    until = timezone.now() + dt.timedelta(minutes=10)
    Org.objects.filter(pk=org.pk).update(paused_until=until)

    response = deliver()

    delivery = WebhookDelivery.objects.get()
    utc, today = until.astimezone(dt.timezone.utc), timezone.now().astimezone(dt.timezone.utc).date()
    when = f"{utc:%H:%M}" if utc.date() == today else f"{utc:%Y-%m-%d %H:%M}"  # the date only near midnight
    assert response.status_code == 200
    assert response.json() == {"delivery": delivery.pk, "outcome": "held", "trigger": None}
    assert (delivery.held_for, delivery.reason) == ("paused", (
        f"The org acme is paused until {when} UTC after Salesforce's daily API limit; it is replayed automatically "
        f"when the pause ends."))
    assert delivery.body == fixture_body().decode()
    assert not Trigger.objects.exists()


def test_an_org_paused_in_the_past_is_not_held(deliver, org):
    Org.objects.filter(pk=org.pk).update(paused_until=timezone.now() - dt.timedelta(seconds=1))

    assert deliver().json()["outcome"] == "triggered"


def test_an_unmappable_delivery_keeps_its_whole_body_and_others_are_cut(deliver, settings):
    settings.FLOWGATE_DELIVERY_BODY_LIMIT = 100

    deliver(bare_body(), webhook_id="w-bare")
    deliver(webhook_id="w-ok")

    bare, ok = (WebhookDelivery.objects.get(shopify_webhook_id=w) for w in ("w-bare", "w-ok"))
    assert (bare.outcome, bare.body, bare.body_truncated) == ("unmappable", bare_body().decode(), False)
    assert (ok.outcome, ok.body_truncated) == ("triggered", True)
    assert len(ok.body) < len(fixture_body())


def test_a_body_that_is_not_utf8_is_not_kept_whole(deliver):
    body = b'{"customer": {"id": "\xff"}}'

    deliver(body)

    delivery = WebhookDelivery.objects.get()
    assert (delivery.outcome, delivery.body_truncated) == ("unmappable", True)


def test_shopifys_retry_of_a_held_delivery_is_a_duplicate(deliver, flow):
    set_active(Flow, flow.pk, False)
    first = deliver()
    set_active(Flow, flow.pk, True)

    again = deliver()

    assert again.json() == {"delivery": first.json()["delivery"], "outcome": "duplicate", "trigger": None}
    assert WebhookDelivery.objects.get().outcome == "held"
    assert not Trigger.objects.exists()


# --- replay ---------------------------------------------------------------------------------------------


def test_a_held_delivery_replayed_after_the_flow_is_activated_fires(held, flow, django_capture_on_commit_callbacks):
    with mock.patch("flows.services._enqueue") as enqueue, django_capture_on_commit_callbacks(execute=True):
        result = delivery_replay(delivery=held, actor_label="bob")

    trigger = Trigger.objects.get()
    assert (result.result, result.trigger_id) == ("triggered", trigger.pk)
    enqueue.assert_called_once_with(trigger.pk)
    assert (trigger.flow, trigger.source, trigger.actor_label) == (flow, "webhook", "Acme store")
    assert trigger.inputs["IndividualId"] == str(fixture_payload()["customer"]["id"])
    assert trigger.idempotency_key == "shopify:jsmith.myshopify.com:orders/create:" + held.event_id
    after = row(held)
    assert (after["outcome"], after["reason"], after["held_for"], after["trigger_id"], after["replayed_by"]) == (
        "triggered", "", "", trigger.pk, "bob")
    assert after["replayed_at"] is not None


def test_a_replay_while_the_flow_is_still_inactive_is_skipped_and_stays_held(held, flow):
    set_active(Flow, flow.pk, False)

    result = delivery_replay(delivery=held, actor_label="bob")

    assert (result.result, result.reason) == ("skipped", INACTIVE_FLOW)
    after = row(held)
    assert (after["outcome"], after["held_for"], after["trigger_id"], after["replayed_by"]) == (
        "held", "inactive", None, "bob")
    assert not Trigger.objects.exists()


def test_an_unmappable_delivery_replayed_after_the_mapping_is_fixed_fires(deliver, shopify_webhook):
    deliver(bare_body())
    delivery = WebhookDelivery.objects.get()

    still = delivery_replay(delivery=delivery, actor_label="bob")
    assert (still.result, still.reason) == ("still_unmappable",
                                            "IndividualId: Required, but the payload has no value at customer.id.")
    assert row(delivery)["outcome"] == "unmappable"

    ShopifyTopic.objects.filter(webhook=shopify_webhook).update(
        mapping={**DEMO_MAPPING, "IndividualId": "customer.id | id"})
    fixed = delivery_replay(delivery=delivery, actor_label="bob")

    trigger = Trigger.objects.get()
    assert (fixed.result, fixed.trigger_id) == ("triggered", trigger.pk)
    assert trigger.inputs["IndividualId"] == str(fixture_payload()["id"])
    assert (row(delivery)["outcome"], row(delivery)["reason"]) == ("triggered", "")


def test_a_delivery_whose_event_already_fired_never_fires_twice(deliver, flow):
    set_active(Flow, flow.pk, False)
    deliver(webhook_id="w-1", **{"X-Shopify-Event-Id": "event-42"})
    set_active(Flow, flow.pk, True)
    fired = deliver(webhook_id="w-2", **{"X-Shopify-Event-Id": "event-42"}).json()["trigger"]
    delivery = WebhookDelivery.objects.get(shopify_webhook_id="w-1")

    result = delivery_replay(delivery=delivery, actor_label="bob")

    assert Trigger.objects.count() == 1
    assert (result.result, result.trigger_id) == ("skipped", fired)
    after = row(delivery)
    assert (after["outcome"], after["trigger_id"]) == ("replayed", fired)
    assert after["reason"] == (f"Event event-42 already fired trigger {fired} (another delivery of the same event); "
                               f"nothing was sent again.")


def test_a_second_replay_of_the_same_delivery_fires_nothing(held):
    first = delivery_replay(delivery=held, actor_label="bob")
    second = delivery_replay(delivery=held, actor_label="alice")

    assert (first.result, second.result) == ("triggered", "skipped")
    assert second.reason == "Its outcome is 'Triggered': only held and unmappable deliveries are replayed."
    assert Trigger.objects.count() == 1
    assert row(held)["replayed_by"] == "bob"


@pytest.mark.django_db(transaction=True)
def test_two_replays_at_once_fire_one_trigger(deliver, flow, enqueued):
    """The second replay starts while the first holds its claim, for a delivery without an event id (so no
    idempotency key helps): it waits for the claim, then finds the delivery triggered."""
    headers = shopify_headers(fixture_body())
    del headers["X-Shopify-Event-Id"]
    set_active(Flow, flow.pk, False)
    deliver(headers=headers)
    set_active(Flow, flow.pk, True)
    delivery = WebhookDelivery.objects.get()
    real_create = services.trigger_create
    second: dict = {}

    def replay_in_another_connection() -> None:
        try:
            second["result"] = delivery_replay(delivery=delivery, actor_label="alice")
        finally:
            connection.close()

    def create_while_a_second_replay_starts(**kwargs):
        if "thread" not in second:
            second["thread"] = threading.Thread(target=replay_in_another_connection)
            second["thread"].start()
            second["thread"].join(timeout=1.5)
            second["done_during_the_claim"] = not second["thread"].is_alive()
        return real_create(**kwargs)

    with mock.patch.object(services, "trigger_create", side_effect=create_while_a_second_replay_starts):
        first = delivery_replay(delivery=delivery, actor_label="bob")
    second["thread"].join(timeout=10)

    assert second["done_during_the_claim"] is False
    assert (first.result, second["result"].result) == ("triggered", "skipped")
    assert Trigger.objects.count() == 1
    assert row(delivery)["replayed_by"] == "bob"


def test_deliveries_not_held_or_unmappable_are_skipped_unchanged(deliver):
    deliver(webhook_id="w-ok")
    deliver(webhook_id="w-paid", topic="orders/paid")
    before = {d.pk: row(d) for d in WebhookDelivery.objects.all()}

    counts = deliveries_replay(deliveries=WebhookDelivery.objects.all(), actor_label="bob")

    assert counts.as_dict() == {"replayed": 2, "triggered": 0, "still_unmappable": 0, "skipped": 2}
    assert {d.pk: row(d) for d in WebhookDelivery.objects.all()} == before
    assert Trigger.objects.count() == 1


def test_a_body_not_kept_whole_is_skipped_with_the_reason(deliver):
    deliver(bare_body())
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(body_truncated=True)  # as migration 0008 marks old rows

    result = delivery_replay(delivery=delivery, actor_label="bob")

    assert (result.result, result.reason) == ("skipped", (
        f"Its body ({len(bare_body())} bytes) was not kept whole, so it cannot be replayed: fire the flow from the "
        f"console with the order's data instead."))
    assert row(delivery)["replayed_at"] is None


def test_a_held_delivery_whose_topic_is_no_longer_mapped_is_skipped(held, shopify_webhook):
    ShopifyTopic.objects.filter(webhook=shopify_webhook).delete()

    result = delivery_replay(delivery=held, actor_label="bob")

    assert result.result == "skipped"
    assert result.reason == ("No flow is mapped to the topic 'orders/create' now: map it in the webhook's settings, "
                             "then replay.")
    assert row(held)["outcome"] == "held"


def test_a_dry_run_says_what_would_happen_and_writes_nothing(held, django_capture_on_commit_callbacks):
    before = row(held)

    with mock.patch("flows.services._enqueue") as enqueue, django_capture_on_commit_callbacks(execute=True):
        result = delivery_replay(delivery=held, actor_label="bob", dry_run=True)

    assert (result.result, result.trigger_id) == ("triggered", None)
    assert not Trigger.objects.exists()
    assert row(held) == before
    enqueue.assert_not_called()


# --- the command ----------------------------------------------------------------------------------------


@pytest.fixture
def mixed(deliver, flow, shopify_webhook) -> dict[str, WebhookDelivery]:
    """Held (flow inactive then), unmappable, triggered, and one held for another webhook."""
    set_active(Flow, flow.pk, False)
    deliver(webhook_id="w-held")
    set_active(Flow, flow.pk, True)
    deliver(bare_body(), webhook_id="w-bare")
    deliver(webhook_id="w-ok", **{"X-Shopify-Event-Id": "event-ok"})
    other = ShopifyWebhook.objects.create(name="Other store", slug="other-store", shop_domains="*", secret="s2")
    ShopifyTopic.objects.create(webhook=other, topic="orders/create", flow=flow, mapping=DEMO_MAPPING)
    set_active(Flow, flow.pk, False)
    deliver(url="/hooks/shopify/other-store", secret="s2", webhook_id="w-other", **{"X-Shopify-Event-Id": "event-o"})
    set_active(Flow, flow.pk, True)
    return {d.shopify_webhook_id: d for d in WebhookDelivery.objects.all()}


def test_the_command_replays_held_and_unmappable_and_prints_one_json_object(mixed):
    out = run_command()

    assert out == '{"replayed": 3, "triggered": 2, "still_unmappable": 1, "skipped": 0}\n'
    assert {w: row(d)["outcome"] for w, d in mixed.items()} == {
        "w-held": "triggered", "w-bare": "unmappable", "w-ok": "triggered", "w-other": "triggered"}
    assert row(mixed["w-held"])["replayed_by"] == "replay_deliveries (command line)"
    assert Trigger.objects.count() == 3


def test_the_command_filters_by_webhook_and_outcome(mixed):
    assert json.loads(run_command("--webhook", "other-store")) == {
        "replayed": 1, "triggered": 1, "still_unmappable": 0, "skipped": 0}
    assert json.loads(run_command("--outcome", "unmappable")) == {
        "replayed": 1, "triggered": 0, "still_unmappable": 1, "skipped": 0}
    assert row(mixed["w-held"])["outcome"] == "held"

    assert json.loads(run_command("--outcome", "held", "--webhook", "acme-store")) == {
        "replayed": 1, "triggered": 1, "still_unmappable": 0, "skipped": 0}


def test_the_command_dry_run_writes_nothing(mixed):
    before = {w: row(d) for w, d in mixed.items()}
    triggers = Trigger.objects.count()

    out = run_command("--dry-run")

    assert out == '{"replayed": 3, "triggered": 2, "still_unmappable": 1, "skipped": 0}\n'
    assert {w: row(d) for w, d in mixed.items()} == before
    assert Trigger.objects.count() == triggers


def test_the_command_works_in_batches(deliver, flow, monkeypatch):
    monkeypatch.setattr(services, "REPLAY_BATCH", 2)
    set_active(Flow, flow.pk, False)
    for n in range(5):
        deliver(webhook_id=f"w-{n}")
    set_active(Flow, flow.pk, True)

    assert json.loads(run_command()) == {"replayed": 5, "triggered": 5, "still_unmappable": 0, "skipped": 0}
    assert Trigger.objects.count() == 5


def test_an_unknown_webhook_is_an_error_naming_the_webhooks(mixed):
    with pytest.raises(CommandError, match=r"No Shopify webhook 'nope'\. The webhooks: acme-store, other-store\."):
        run_command("--webhook", "nope")


# --- automatic replay after a pause ---------------------------------------------------------------------


def test_deliveries_held_for_a_pause_are_replayed_when_it_ends_and_only_those(deliver, flow, org, shopify_webhook,
                                                                             enqueued):
    other_flow = make_flow(org, "Other_Flow")
    ShopifyTopic.objects.create(webhook=shopify_webhook, topic="orders/paid", flow=other_flow, mapping=DEMO_MAPPING)
    Org.objects.filter(pk=org.pk).update(paused_until=timezone.now() + dt.timedelta(minutes=5))
    deliver(webhook_id="w-paused")
    set_active(Flow, other_flow.pk, False)
    deliver(webhook_id="w-inactive", topic="orders/paid")
    paused, inactive = (WebhookDelivery.objects.get(shopify_webhook_id=w) for w in ("w-paused", "w-inactive"))
    assert (paused.held_for, inactive.held_for) == ("paused", "inactive")

    assert deliveries_resume_paused() == 0  # still paused
    assert row(paused)["outcome"] == "held"

    Org.objects.filter(pk=org.pk).update(paused_until=timezone.now() - dt.timedelta(seconds=1))
    set_active(Flow, other_flow.pk, True)  # fixable now, but a person deactivated it: a person replays it
    result = tasks.sweep_triggers()

    assert result["deliveries_resumed"] == 1
    assert (row(paused)["outcome"], row(paused)["replayed_by"]) == ("triggered", "Flowgate (the org's pause ended)")
    assert row(inactive)["outcome"] == "held"
    assert Trigger.objects.get().flow == flow
    assert deliveries_resume_paused() == 0


def test_one_resume_at_a_time(deliver, org, enqueued):
    Org.objects.filter(pk=org.pk).update(paused_until=timezone.now() + dt.timedelta(minutes=5))
    deliver()
    Org.objects.filter(pk=org.pk).update(paused_until=None)
    cache.add(services.RESUME_LOCK, 1)  # an overlapping sweep is resuming

    assert deliveries_resume_paused() == 0
    assert WebhookDelivery.objects.get().outcome == "held"

    cache.delete(services.RESUME_LOCK)
    assert deliveries_resume_paused() == 1
    assert WebhookDelivery.objects.get().outcome == "triggered"


# --- the console ----------------------------------------------------------------------------------------


@pytest.fixture
def dave(db):
    """Staff who may view deliveries but not replay them."""
    user = get_user_model().objects.create_user("dave", "dave@example.com", "dave-password-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_webhookdelivery"))
    return user


def notes(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_bob_from_support_replays_a_held_delivery_from_its_page(client, held):
    client.force_login(support_user())
    page = client.get(f"/console/deliveries/{held.pk}/").content.decode()
    assert f'action="/console/deliveries/{held.pk}/replay/"' in page
    assert "csrfmiddlewaretoken" in page

    response = client.post(f"/console/deliveries/{held.pk}/replay/")

    trigger = Trigger.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/console/deliveries/{held.pk}/"
    assert notes(response) == [f'Replayed 1 delivery: 1 triggered (trigger <a href="/console/triggers/{trigger.pk}/">'
                               f'#{trigger.pk}</a>), 0 still unmappable, 0 skipped.']
    assert (row(held)["outcome"], row(held)["replayed_by"]) == ("triggered", "bob")
    page = client.get(f"/console/deliveries/{held.pk}/").content.decode()
    assert f'<a href="/console/triggers/{trigger.pk}/">' in page  # the message's link, not escaped
    assert "Replayed</dt>" in page
    assert f'action="/console/deliveries/{held.pk}/replay/"' not in page  # triggered: nothing to replay


def test_staff_who_may_only_view_deliveries_get_403_and_nothing_changes(client, dave, held):
    client.force_login(dave)
    before = row(held)

    page = client.get(f"/console/deliveries/{held.pk}/").content.decode()
    listing = client.get("/console/deliveries/", {"webhook": held.webhook_id}).content.decode()
    answers = [client.post(f"/console/deliveries/{held.pk}/replay/").status_code,
               client.post("/console/deliveries/replay/", {"ids": [held.pk]}).status_code,
               client.get("/console/deliveries/replay-held/", {"webhook": held.webhook_id}).status_code,
               client.post("/console/deliveries/replay-held/", {"webhook": held.webhook_id}).status_code]

    assert answers == [403, 403, 403, 403]
    assert "/replay/" not in page
    assert "Replay selected" not in listing and "replay-held" not in listing and 'name="ids"' not in listing
    assert row(held) == before
    assert not Trigger.objects.exists()


def test_replay_needs_a_post(client, held):
    client.force_login(support_user())

    assert client.get(f"/console/deliveries/{held.pk}/replay/").status_code == 405
    assert row(held)["outcome"] == "held"


def test_the_console_replays_selected_deliveries(client, mixed):
    client.force_login(support_user())
    listing = client.get("/console/deliveries/").content.decode()
    for w in ("w-held", "w-bare"):
        assert f'name="ids" value="{mixed[w].pk}"' in listing
    assert f'name="ids" value="{mixed["w-ok"].pk}"' not in listing  # triggered: not replayable
    assert '<option value="held"' in listing

    response = client.post("/console/deliveries/replay/", {
        "ids": [mixed[w].pk for w in ("w-held", "w-bare", "w-ok")], "next": "/console/deliveries/?outcome=held"})

    assert response["Location"] == "/console/deliveries/?outcome=held"
    triggered = row(mixed["w-held"])["trigger_id"]
    assert notes(response)[0] == (f'Replayed 3 deliveries: 1 triggered (trigger <a href="/console/triggers/'
                                  f'{triggered}/">#{triggered}</a>), 1 still unmappable, 1 skipped.')
    assert notes(response)[1] == (f"Delivery {mixed['w-ok'].pk} skipped: Its outcome is 'Triggered': only held and "
                                  f"unmappable deliveries are replayed.")
    assert row(mixed["w-other"])["outcome"] == "held"  # not selected


def test_at_most_200_deliveries_are_replayed_per_request(client, held):
    client.force_login(support_user())

    response = client.post("/console/deliveries/replay/", {"ids": [held.pk] + list(range(10**6, 10**6 + 200))})

    assert notes(response) == ["Select at most 200 deliveries at a time (201 were selected), or replay them with "
                               "python manage.py replay_deliveries."]
    assert row(held)["outcome"] == "held"


def test_the_console_replays_all_held_for_a_webhook_after_a_confirmation(client, mixed, shopify_webhook):
    client.force_login(admin_user())
    listing = client.get("/console/deliveries/", {"webhook": shopify_webhook.pk}).content.decode()
    assert f'href="/console/deliveries/replay-held/?webhook={shopify_webhook.pk}"' in listing
    assert "replay-held" not in client.get("/console/deliveries/").content.decode()  # no webhook chosen

    confirm = client.get("/console/deliveries/replay-held/", {"webhook": shopify_webhook.pk})

    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert "<strong>1</strong> delivery is held for <code>/hooks/shopify/acme-store</code>" in html
    assert "csrfmiddlewaretoken" in html
    assert row(mixed["w-held"])["outcome"] == "held"  # nothing yet

    response = client.post("/console/deliveries/replay-held/", {"webhook": shopify_webhook.pk})

    assert response["Location"] == f"/console/deliveries/?outcome=held&webhook={shopify_webhook.pk}"
    assert (row(mixed["w-held"])["outcome"], row(mixed["w-held"])["replayed_by"]) == ("triggered", "alice")
    assert row(mixed["w-bare"])["outcome"] == "unmappable"  # only held ones
    assert row(mixed["w-other"])["outcome"] == "held"  # another webhook


def test_replay_all_held_without_a_webhook_says_to_choose_one(client, held):
    client.force_login(support_user())

    response = client.get("/console/deliveries/replay-held/")

    assert response["Location"] == "/console/deliveries/"
    assert notes(response) == ["Choose a webhook in the filter first, then replay its held deliveries."]


def test_the_list_filters_held_deliveries(client, mixed):
    client.force_login(support_user())

    response = client.get("/console/deliveries/", {"outcome": "held"})

    assert [d.shopify_webhook_id for d in response.context["rows"]] == ["w-other", "w-held"]


# --- the admin ------------------------------------------------------------------------------------------


def test_alice_replays_the_selected_deliveries_in_the_admin(client, mixed):
    client.force_login(admin_user())
    assert "replay_action" in client.get("/admin/flows/webhookdelivery/").content.decode()

    response = client.post("/admin/flows/webhookdelivery/", {
        "action": "replay_action", "_selected_action": [mixed[w].pk for w in ("w-held", "w-bare")]})

    assert response.status_code == 302
    assert notes(response) == ["Replayed 2: 1 triggered, 1 still unmappable, 0 skipped."]
    assert (row(mixed["w-held"])["outcome"], row(mixed["w-held"])["replayed_by"]) == ("triggered", "alice")


def test_the_admin_action_needs_the_replay_permission(client, dave, held):
    client.force_login(dave)
    assert client.get("/admin/flows/webhookdelivery/").status_code == 200
    assert "replay_action" not in client.get("/admin/flows/webhookdelivery/").content.decode()

    client.post("/admin/flows/webhookdelivery/", {"action": "replay_action", "_selected_action": [held.pk]})

    assert row(held)["outcome"] == "held"
    assert not Trigger.objects.exists()


def test_a_mapping_that_fills_the_trigger_id_input_is_a_form_error(client, flow):
    Flow.objects.filter(pk=flow.pk).update(trigger_id_input="FlowgateTriggerId")
    FlowInput.objects.create(flow=flow, name="FlowgateTriggerId", order=9)
    client.force_login(admin_user())

    response = client.post("/admin/flows/shopifywebhook/add/", {
        "name": "Acme store", "slug": "acme-store", "shop_domains": "acme.myshopify.com", "is_active": "on",
        "new_secret": "s", "topics-TOTAL_FORMS": "1", "topics-INITIAL_FORMS": "0",
        "topics-0-topic": "orders/create", "topics-0-flow": str(flow.pk),
        "topics-0-mapping": json.dumps({**DEMO_MAPPING, "FlowgateTriggerId": "id"})})

    assert response.status_code == 200
    assert ("FlowgateTriggerId: Flowgate fills this input itself with the trigger&#x27;s key (it is the flow&#x27;s "
            "trigger id input): remove it from the mapping.") in response.content.decode()
    assert not ShopifyWebhook.objects.exists()


def test_a_delivery_mapped_to_the_trigger_id_input_is_unmappable(deliver, flow, shopify_webhook):
    Flow.objects.filter(pk=flow.pk).update(trigger_id_input="FlowgateTriggerId")
    FlowInput.objects.create(flow=flow, name="FlowgateTriggerId", order=9)
    ShopifyTopic.objects.filter(webhook=shopify_webhook).update(mapping={**DEMO_MAPPING, "FlowgateTriggerId": "id"})

    assert deliver().json()["outcome"] == "unmappable"
    assert WebhookDelivery.objects.get().reason.startswith("FlowgateTriggerId: Flowgate fills this input itself")


# --- as a user would ------------------------------------------------------------------------------------


def test_a_delivery_held_while_the_flow_is_inactive_is_replayed_once_it_is_active_again(client, deliver, flow,
                                                                                       enqueued):
    """Shopify delivers while the flow is off; bob sees the held delivery and why, tries to replay too early, an
    admin activates the flow, bob replays, and a Shopify retry afterwards creates nothing."""
    set_active(Flow, flow.pk, False)
    assert deliver().json()["outcome"] == "held"
    bob = support_user()
    client.force_login(bob)

    listing = client.get("/console/deliveries/", {"outcome": "held"})
    delivery = listing.context["rows"][0]
    page = client.get(f"/console/deliveries/{delivery.pk}/").content.decode()
    assert INACTIVE_FLOW in page

    too_early = client.post(f"/console/deliveries/{delivery.pk}/replay/")
    assert notes(too_early) == ["Replayed 1 delivery: 0 triggered, 0 still unmappable, 1 skipped.",
                                f"Delivery {delivery.pk} skipped: {INACTIVE_FLOW}"]
    assert row(delivery)["outcome"] == "held"

    flow.refresh_from_db()  # alice ticks "active" on the flow (the admin's form is covered elsewhere)
    flow.is_active = True
    flow.save()
    client.post(f"/console/deliveries/{delivery.pk}/replay/")

    trigger = Trigger.objects.get()
    assert (row(delivery)["outcome"], row(delivery)["trigger_id"]) == ("triggered", trigger.pk)
    assert trigger.inputs["EmailAddress"] == "jon@example.com"
    assert deliver().json() == {"delivery": delivery.pk, "outcome": "duplicate", "trigger": trigger.pk}
    assert json.loads(run_command()) == {"replayed": 0, "triggered": 0, "still_unmappable": 0, "skipped": 0}
    assert Trigger.objects.count() == 1
