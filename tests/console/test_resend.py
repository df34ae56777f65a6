"""Re-sending from the console: one trigger, a selection, asking again before a second successful re-send."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from flows.models import FlowInput, Trigger
from tests.conftest import make_flow

from .conftest import logged_in, make_trigger

S = Trigger.Status
LIST = reverse("console:triggers")
SELECTED = reverse("console:triggers_resend")


def resend_url(trigger: Trigger) -> str:
    return reverse("console:trigger_resend", args=[trigger.pk])


def successful_resend(original: Trigger, actor=None) -> Trigger:
    return make_trigger(original.flow, status=S.SUCCEEDED, source=Trigger.Source.RESEND, resend_of=original,
                        inputs=original.inputs, actor=actor)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- one trigger ------------------------------------------------------------------------------------


def test_resend_creates_a_linked_trigger_and_opens_its_page(as_bob, bob, flow, enqueued,
                                                            django_capture_on_commit_callbacks):
    original = make_trigger(flow)

    with django_capture_on_commit_callbacks(execute=True):
        response = as_bob.post(resend_url(original))

    resend = Trigger.objects.exclude(pk=original.pk).get()
    assert (resend.source, resend.resend_of, resend.actor, resend.status) == (
        Trigger.Source.RESEND, original, bob, S.QUEUED)
    assert resend.inputs == original.inputs
    assert response.status_code == 302 and response.url == reverse("console:trigger", args=[resend.pk])
    assert enqueued == [((resend.pk,), None, {"countdown": None})]
    original.refresh_from_db()
    assert original.status == S.FAILED  # the original stays as it was

    page = as_bob.get(response.url)
    html = page.content.decode()
    assert f"Trigger {original.pk} re-sent as trigger {resend.pk}." in html
    assert f'href="{reverse("console:trigger", args=[original.pk])}"' in html  # "Re-send of #original"
    assert "bob" in html
    original_page = as_bob.get(reverse("console:trigger", args=[original.pk])).content.decode()
    assert f'href="{reverse("console:trigger", args=[resend.pk])}">#{resend.pk}</a>' in original_page


def test_a_failed_earlier_resend_does_not_ask_again(as_bob, flow):
    original = make_trigger(flow)
    make_trigger(flow, source=Trigger.Source.RESEND, resend_of=original)  # failed too

    response = as_bob.post(resend_url(original))

    assert response.status_code == 302
    assert original.resends.count() == 2


def test_a_trigger_with_a_successful_resend_asks_first(as_bob, flow):
    original = make_trigger(flow)
    earlier = successful_resend(original)

    response = as_bob.post(resend_url(original), {"next": LIST})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Re-send trigger" in html and "again?" in html
    assert f">#{earlier.pk}</a>" in html
    assert 'name="confirm" value="yes"' in html
    assert original.resends.count() == 1  # nothing created yet

    for not_yes in ("", "no", "all"):
        assert as_bob.post(resend_url(original), {"confirm": not_yes}).status_code == 200
    assert original.resends.count() == 1

    confirmed = as_bob.post(resend_url(original), {"confirm": "yes"})

    assert confirmed.status_code == 302
    assert original.resends.count() == 2
    assert confirmed.url == reverse("console:trigger", args=[original.resends.latest("id").pk])


def test_the_trigger_page_warns_before_a_second_resend(as_bob, flow):
    original = make_trigger(flow)
    successful_resend(original)

    html = as_bob.get(reverse("console:trigger", args=[original.pk])).content.decode()

    assert "already has a successful re-send" in html


def test_a_trigger_whose_inputs_no_longer_fit_is_not_resent(as_bob, flow):
    original = make_trigger(flow, inputs={"IndividualId": "003Ho00002AlRM8IAN", "TelephoneNumber": "+4915112345"})
    FlowInput.objects.filter(flow=flow, name="TelephoneNumber").delete()  # the flow changed since

    response = as_bob.post(resend_url(original))

    assert response.status_code == 302 and response.url == reverse("console:trigger", args=[original.pk])
    assert Trigger.objects.count() == 1
    page = as_bob.get(response.url).content.decode()
    assert f"Trigger {original.pk} cannot be re-sent" in page
    assert "TelephoneNumber" in page


def test_resend_of_a_missing_trigger_is_404(as_bob, db):
    assert as_bob.post(reverse("console:trigger_resend", args=[999999])).status_code == 404


# --- a selection ------------------------------------------------------------------------------------


@pytest.fixture
def three(flow) -> list[Trigger]:
    """Three failed triggers; the middle one already has a successful re-send."""
    triggers = [make_trigger(flow, inputs={"IndividualId": f"ID-{n}"}) for n in range(3)]
    successful_resend(triggers[1])
    return triggers


def new_resends() -> list[int]:
    """The originals re-sent by the request under test (the pre-existing successful re-send excluded)."""
    return sorted(Trigger.objects.filter(source=Trigger.Source.RESEND, status=S.QUEUED)
                  .values_list("resend_of_id", flat=True))


def test_a_selection_with_an_already_resent_trigger_asks_first(as_bob, three):
    response = as_bob.post(SELECTED, {"ids": [t.pk for t in three], "next": LIST})

    assert response.status_code == 200
    html = response.content.decode()
    assert "1 of the 3 selected triggers already have a successful re-send" in html
    assert "Re-send only the 2 not re-sent yet" in html and "Re-send all 3" in html
    assert f'href="{reverse("console:trigger", args=[three[1].pk])}"' in html
    for trigger in three:
        assert f'name="ids" value="{trigger.pk}"' in html
    assert new_resends() == []


@pytest.mark.parametrize("confirm, resent", [("skip", [0, 2]), ("all", [0, 1, 2])])
def test_a_confirmed_selection_resends(as_bob, bob, three, confirm, resent):
    response = as_bob.post(SELECTED, {"ids": [t.pk for t in three], "next": LIST, "confirm": confirm})

    assert response.status_code == 302 and response.url == LIST
    assert new_resends() == sorted(three[i].pk for i in resent)
    assert set(Trigger.objects.filter(status=S.QUEUED).values_list("actor", flat=True)) == {bob.pk}
    html = as_bob.get(LIST).content.decode()
    assert f"Re-sent {len(resent)} triggers" in html
    if confirm == "skip":
        assert "skipped 1" in html and "already re-sent successfully" in html


def test_a_selection_without_earlier_resends_goes_straight_through(as_bob, flow):
    triggers = [make_trigger(flow) for _ in range(2)]

    response = as_bob.post(SELECTED, {"ids": [t.pk for t in triggers]})

    assert response.status_code == 302
    assert new_resends() == sorted(t.pk for t in triggers)


def test_an_empty_selection_warns(as_bob, db):
    response = as_bob.post(SELECTED, {"next": LIST}, follow=True)

    assert "Select the triggers to re-send first." in response.content.decode()
    assert not Trigger.objects.exists()


def test_a_trigger_whose_inputs_no_longer_fit_is_skipped_with_a_message(as_bob, flow):
    fits = make_trigger(flow, inputs={"IndividualId": "ID-FITS"})
    stale = make_trigger(flow, inputs={"IndividualId": "ID-STALE", "TelephoneNumber": "+4915112345"})
    FlowInput.objects.filter(flow=flow, name="TelephoneNumber").delete()

    response = as_bob.post(SELECTED, {"ids": [fits.pk, stale.pk], "next": LIST}, follow=True)

    assert new_resends() == [fits.pk]
    assert not Trigger.objects.filter(resend_of=stale).exists()  # nothing half-written
    html = response.content.decode()
    assert "Re-sent 1 trigger; skipped 1." in html
    assert f"Trigger {stale.pk} skipped:" in html and "TelephoneNumber" in html


@pytest.mark.parametrize("next_url", [
    "https://evil.example.com/phish",
    "//evil.example.com/phish",
    "http://testserver.evil.example.com/",
    "javascript:alert(1)",
])
def test_an_external_next_is_not_followed(as_bob, flow, next_url):
    trigger = make_trigger(flow)

    response = as_bob.post(SELECTED, {"ids": [trigger.pk], "next": next_url})

    assert response.status_code == 302
    assert response.url == LIST
    assert new_resends() == [trigger.pk]


def test_a_local_next_is_followed(as_bob, flow):
    trigger = make_trigger(flow)
    back = f"{LIST}?status=&q=ID"

    response = as_bob.post(SELECTED, {"ids": [trigger.pk], "next": back})

    assert response.url == back


def test_the_confirmation_keeps_only_a_safe_next(as_bob, three):
    response = as_bob.post(SELECTED, {"ids": [t.pk for t in three], "next": "https://evil.example.com/"})

    html = response.content.decode()
    assert "evil.example.com" not in html
    assert f'value="{LIST}"' in html


def test_ids_beyond_the_selection_limit_are_ignored(as_bob, flow, monkeypatch):
    from flows.console import views

    monkeypatch.setattr(views, "MAX_SELECTED", 2)
    triggers = [make_trigger(flow) for _ in range(3)]

    as_bob.post(SELECTED, {"ids": [t.pk for t in triggers]})

    assert len(new_resends()) == 2


def test_a_non_ascii_digit_id_is_no_server_error(bob, flow):
    trigger = make_trigger(flow)
    client = Client(raise_request_exception=False)
    client.force_login(bob)

    response = client.post(SELECTED, {"ids": [str(trigger.pk), "²"]})

    assert response.status_code == 302
    assert new_resends() == [trigger.pk]


# --- the admin's action -----------------------------------------------------------------------------


def test_the_admin_action_resends_and_skips_already_resent(as_alice, alice, three):
    response = as_alice.post(reverse("admin:flows_trigger_changelist"), {
        "action": "resend_action", "_selected_action": [t.pk for t in three]}, follow=True)

    assert response.status_code == 200
    assert new_resends() == sorted([three[0].pk, three[2].pk])
    assert "Re-sent 2; skipped 1" in response.content.decode()
    assert set(Trigger.objects.filter(status=S.QUEUED).values_list("actor", flat=True)) == {alice.pk}


def test_support_may_use_the_admin_action(as_bob, flow):
    trigger = make_trigger(flow)

    as_bob.post(reverse("admin:flows_trigger_changelist"), {
        "action": "resend_action", "_selected_action": [trigger.pk]})

    assert new_resends() == [trigger.pk]


def test_staff_without_the_permission_has_no_admin_action(dave, flow):
    from django.contrib.auth.models import Permission

    dave.user_permissions.add(Permission.objects.get(codename="view_trigger"))
    trigger = make_trigger(flow)

    logged_in(dave).post(reverse("admin:flows_trigger_changelist"), {
        "action": "resend_action", "_selected_action": [trigger.pk]})

    assert new_resends() == []


def test_the_resend_targets_the_flow_of_the_original(as_bob, org):
    other = make_flow(org, "Other_Flow")
    trigger = make_trigger(other)

    as_bob.post(resend_url(trigger))

    assert Trigger.objects.get(resend_of=trigger).flow == other


def test_a_trigger_of_a_deactivated_flow_is_not_resent(as_bob, flow):
    trigger = make_trigger(flow)
    flow.is_active = False
    flow.save()

    response = as_bob.post(resend_url(trigger), follow=True)

    assert f"Trigger {trigger.pk} cannot be re-sent" in response.content.decode()
    assert "not active" in response.content.decode()
    assert Trigger.objects.count() == 1
