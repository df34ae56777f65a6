"""Re-sending from the console, one trigger or a selection, under the chain rule: a trigger and its re-sends are a
chain; one re-send makes at most one new trigger per chain, from the original's inputs; a chain that reached the
customer (succeeded or unknown) asks first; a chain with a trigger on its way is never re-sent."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from flows.models import FlowInput, Trigger
from tests.conftest import make_flow

from .conftest import INPUTS, make_trigger

S = Trigger.Status
LIST = reverse("console:triggers")
SELECTED = reverse("console:triggers_resend")


def resend_url(trigger: Trigger) -> str:
    return reverse("console:trigger_resend", args=[trigger.pk])


def resend_in_chain(original: Trigger, status: str = S.FAILED, **fields) -> Trigger:
    """An earlier re-send of `original`, as trigger_resend leaves it (its chain's origin set)."""
    return make_trigger(original.flow, status=status, source=Trigger.Source.RESEND, resend_of=original,
                        origin=original, inputs=fields.pop("inputs", original.inputs), **fields)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def count(html: str, name: str) -> str:
    """A count a confirmation page shows (<strong id="count-NAME">)."""
    return re.search(rf'id="count-{name}">([^<]*)<', html).group(1)


def created_since(before: int) -> list[Trigger]:
    return list(Trigger.objects.filter(pk__gt=before).order_by("pk"))


# --- one trigger ------------------------------------------------------------------------------------


def test_resend_creates_a_linked_trigger_and_opens_its_page(as_bob, bob, flow, enqueued,
                                                            django_capture_on_commit_callbacks):
    original = make_trigger(flow)

    with django_capture_on_commit_callbacks(execute=True):
        response = as_bob.post(resend_url(original))

    resend = Trigger.objects.exclude(pk=original.pk).get()
    assert (resend.source, resend.resend_of, resend.origin, resend.actor, resend.status) == (
        Trigger.Source.RESEND, original, original, bob, S.QUEUED)
    assert resend.inputs == original.inputs
    assert resend.key != original.key  # a person's re-send is a new trigger for the flow
    assert response.status_code == 302 and response.url == reverse("console:trigger", args=[resend.pk])
    assert enqueued == [((resend.pk,), None, {"countdown": None})]
    original.refresh_from_db()
    assert original.status == S.FAILED  # the original stays as it was

    page = as_bob.get(response.url)
    html = page.content.decode()
    assert f"Trigger {original.pk} re-sent as trigger {resend.pk}." in html
    assert f'href="{reverse("console:trigger", args=[original.pk])}"' in html  # "Re-send of #original"
    assert "Key (trigger id for the flow)" in html and str(resend.key) in html
    original_page = as_bob.get(reverse("console:trigger", args=[original.pk])).content.decode()
    assert f'href="{reverse("console:trigger", args=[resend.pk])}">#{resend.pk}</a>' in original_page


def test_resending_a_failed_resend_resends_the_chains_original(as_bob, flow):
    original = make_trigger(flow, inputs={"IndividualId": "ID-ORIGINAL"})
    # A re-send whose stored inputs differ (an older Flowgate, a hand edit): the chain's original inputs win.
    earlier = resend_in_chain(original, inputs={"IndividualId": "ID-DRIFTED"})
    before = earlier.pk

    response = as_bob.post(resend_url(earlier))

    [new] = created_since(before)
    assert (new.resend_of_id, new.origin_id, new.inputs) == (original.pk, original.pk, {"IndividualId": "ID-ORIGINAL"})
    assert response.url == reverse("console:trigger", args=[new.pk])
    assert f"from its original, trigger {original.pk}" in " ".join(messages_of(as_bob.get(response.url)))


def test_a_failed_earlier_resend_does_not_ask_again(as_bob, flow):
    original = make_trigger(flow)
    resend_in_chain(original)  # failed too: the customer has nothing yet

    response = as_bob.post(resend_url(original))

    assert response.status_code == 302
    assert original.resends.count() == 2


@pytest.mark.parametrize("which, says", [
    ("the trigger itself", "This trigger succeeded"),
    ("a succeeded re-send", "succeeded"),
    ("an unknown re-send", "Salesforce may have run the flow, so it may already have reached the customer"),
])
def test_a_delivered_chain_asks_first_then_resends_once(as_bob, flow, which, says):
    original = make_trigger(flow, status=S.SUCCEEDED if which == "the trigger itself" else S.FAILED)
    delivered = (original if which == "the trigger itself" else
                 resend_in_chain(original, status=S.SUCCEEDED if "succeeded" in which else S.UNKNOWN))
    before = Trigger.objects.latest("pk").pk

    response = as_bob.post(resend_url(original), {"next": LIST})

    assert response.status_code == 200
    html = response.content.decode()
    assert f"Re-send trigger #{original.pk} again?" in html
    assert says in html
    if delivered != original:
        assert f'<a href="{reverse("console:trigger", args=[delivered.pk])}">#{delivered.pk}</a>' in html
    assert 'name="confirm" value="yes"' in html
    assert created_since(before) == []  # nothing created yet

    for not_yes in ("", "no", "all"):
        assert as_bob.post(resend_url(original), {"confirm": not_yes}).status_code == 200
    assert created_since(before) == []

    confirmed = as_bob.post(resend_url(original), {"confirm": "yes"})

    [new] = created_since(before)
    assert confirmed.status_code == 302 and confirmed.url == reverse("console:trigger", args=[new.pk])
    assert new.origin_id == original.pk


def test_a_succeeded_trigger_always_asks_first_even_with_no_resend(as_bob, flow):
    succeeded = make_trigger(flow, status=S.SUCCEEDED)

    response = as_bob.post(resend_url(succeeded))

    assert response.status_code == 200
    assert "This trigger succeeded" in response.content.decode()
    assert Trigger.objects.count() == 1


@pytest.mark.parametrize("status", [S.QUEUED, S.SENDING, S.RETRYING])
def test_a_chain_with_a_trigger_on_its_way_is_not_resent(as_bob, flow, status):
    original = make_trigger(flow)
    on_its_way = resend_in_chain(original, status=status)

    for confirm in ("", "yes"):  # not even when confirmed: that one may still reach the customer
        response = as_bob.post(resend_url(original), {"confirm": confirm}, follow=True)

        assert Trigger.objects.count() == 2
        html = response.content.decode()
        assert f"Trigger {original.pk} was not re-sent" in html
        assert f"trigger {on_its_way.pk}</a> of its chain is still on its way ({status})" in html


def test_the_trigger_page_shows_the_chain_and_warns(as_bob, flow):
    original = make_trigger(flow)
    failed_resend = resend_in_chain(original)
    succeeded = resend_in_chain(original, status=S.SUCCEEDED)

    html = as_bob.get(reverse("console:trigger", args=[failed_resend.pk])).content.decode()

    chain = html[html.index('id="chain"'):]
    chain = chain[:chain.index("</dd>")]
    assert chain.index(f"#{original.pk}") < chain.index(f"#{failed_resend.pk}") < chain.index(f"#{succeeded.pk}")
    assert f"This chain already reached the customer (trigger #{succeeded.pk} succeeded)" in html


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


# --- a selection ------------------------------------------------------------------------------------


@pytest.fixture
def three(flow) -> list[Trigger]:
    """Three failed originals; the middle one's chain already has a successful re-send."""
    triggers = [make_trigger(flow, inputs={"IndividualId": f"ID-{n}"}) for n in range(3)]
    resend_in_chain(triggers[1], status=S.SUCCEEDED)
    return triggers


def new_resends() -> list[int]:
    """The chains re-sent by the request under test (earlier re-sends, made by make_trigger, are never queued)."""
    return sorted(Trigger.objects.filter(source=Trigger.Source.RESEND, status=S.QUEUED)
                  .values_list("origin_id", flat=True))


def test_a_selection_with_a_delivered_chain_asks_first(as_bob, three):
    response = as_bob.post(SELECTED, {"ids": [t.pk for t in three], "next": LIST})

    assert response.status_code == 200
    html = response.content.decode()
    assert (count(html, "chains"), count(html, "delivered")) == ("3", "1")
    assert "Skip those: re-send 2 chains" in html and "Including already delivered: re-send 3 chains" in html
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
    assert f"Re-sent {len(resent)} chains (one new trigger each): " in html
    for new in Trigger.objects.filter(status=S.QUEUED):
        assert f'<a href="{reverse("console:trigger", args=[new.pk])}">#{new.pk}</a>' in html
    if confirm == "skip":
        assert "skipped 1 trigger." in html
        assert f"Trigger {three[1].pk} skipped: its chain was already delivered" in html


def test_a_selection_of_one_chain_several_times_resends_it_once(as_bob, flow):
    """A customer's original and two failed re-sends, all ticked: one new trigger, from the original's inputs."""
    original = make_trigger(flow, inputs={"IndividualId": "ID-ADA", "EmailAddress": "x@example.com"})
    resends = [resend_in_chain(original) for _ in range(2)]

    response = as_bob.post(SELECTED, {"ids": [original.pk, *(r.pk for r in resends)], "next": LIST}, follow=True)

    [new] = Trigger.objects.filter(status=S.QUEUED)
    assert (new.origin_id, new.resend_of_id, new.inputs) == (original.pk, original.pk, original.inputs)
    html = response.content.decode()
    assert "Re-sent 1 chain (one new trigger each)" in html and "skipped 2 triggers." in html
    assert f"Trigger {resends[0].pk} skipped: its chain was re-sent as trigger {new.pk}" in html


def test_a_selection_skips_a_chain_on_its_way_and_says_why(as_bob, flow):
    waiting = make_trigger(flow, inputs={"IndividualId": "ID-WAIT"})
    on_its_way = resend_in_chain(waiting, status=S.RETRYING)
    free = make_trigger(flow, inputs={"IndividualId": "ID-FREE"})

    response = as_bob.post(SELECTED, {"ids": [waiting.pk, free.pk], "next": LIST}, follow=True)

    assert new_resends() == [free.pk]
    assert Trigger.objects.filter(origin=waiting).count() == 1  # only the one on its way
    assert (f"Trigger {waiting.pk} skipped: a re-send is already on its way (trigger {on_its_way.pk})"
            in response.content.decode())


def test_a_selection_without_delivered_chains_goes_straight_through(as_bob, flow):
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
    assert "Re-sent 1 chain (one new trigger each)" in html and "skipped 1 trigger." in html
    assert f"Trigger {stale.pk} skipped: its inputs no longer fit the flow" in html and "TelephoneNumber" in html


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


# --- the list -----------------------------------------------------------------------------------------


def test_the_list_shows_which_rows_were_resent(as_bob, flow):
    original = make_trigger(flow, inputs={**INPUTS, "IndividualId": "ID-A"})
    newest = resend_in_chain(original, status=S.SUCCEEDED)
    alone = make_trigger(flow, inputs={**INPUTS, "IndividualId": "ID-B"})

    html = as_bob.get(LIST, {"status": ""}).content.decode()

    rows = {pk: html[html.index(f'value="{pk}" aria-label'):][:1500] for pk in (original.pk, newest.pk, alone.pk)}
    assert f're-sent as <a href="{reverse("console:trigger", args=[newest.pk])}">#{newest.pk}</a> succeeded ✓' in \
        rows[original.pk].split("</tr>")[0]
    assert "re-sent as" not in rows[newest.pk].split("</tr>")[0]
    assert "re-sent as" not in rows[alone.pk].split("</tr>")[0]


# --- at once ------------------------------------------------------------------------------------------


def test_two_people_resending_one_chain_at_once_make_one_trigger(transactional_db, monkeypatch):
    """Both read the chain at the same moment if they can: the chain's lock makes the second wait, then find the
    first one's re-send on its way."""
    import threading

    from django.contrib.auth import get_user_model
    from django.db import connection

    from flows import resend_jobs
    from tests.conftest import make_org

    original = make_trigger(make_flow(make_org()))
    people = [get_user_model().objects.create_user(name, is_staff=True) for name in ("ann", "ben")]
    meeting, read_chain = threading.Barrier(2), resend_jobs.chain_states

    def read_together(origin_ids):
        try:
            meeting.wait(timeout=1)  # without the lock both get here; with it, the second waits for the first
        except threading.BrokenBarrierError:
            pass
        return read_chain(origin_ids)

    monkeypatch.setattr(resend_jobs, "chain_states", read_together)
    outcomes = []

    def resend(person):
        try:
            outcomes.append(resend_jobs.triggers_resend(triggers=[Trigger.objects.get(pk=original.pk)],
                                                        actor=person, include_delivered=False))
        finally:
            connection.close()

    threads = [threading.Thread(target=resend, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert Trigger.objects.filter(origin=original).count() == 1
    assert sorted(len(o.resent) for o in outcomes) == [0, 1]
    [skip] = [s for o in outcomes for s in o.skipped]
    assert skip.reason == resend_jobs.SKIP_IN_FLIGHT
