"""Issue 12, as bob from Support meets it in the console: a trigger's page whose messages and Re-send box follow
the live update (they no longer contradict the status below them), and a re-send of a selection whose new
triggers are linked and shown (and a re-send job's, from its page)."""

from __future__ import annotations

import re

from django.urls import reverse

from flows.models import Trigger
from flows.resend_jobs import resend_job_create, resend_job_run

from .conftest import make_trigger, rows

S = Trigger.Status
LIST = reverse("console:triggers")
SELECTED = reverse("console:triggers_resend")


def page_of(trigger: Trigger) -> str:
    return reverse("console:trigger", args=[trigger.pk])


def live_of(trigger: Trigger) -> str:
    return reverse("console:trigger_live", args=[trigger.pk])


def message_items(html: str) -> list[str]:
    """The <li> elements of the page's message list."""
    listing = re.search(r'<ul class="messagelist">(.*?)</ul>', html, re.S)
    return re.findall(r"<li\b.*?</li>", listing.group(1), re.S) if listing else []


def part(html: str, element_id: str) -> str:
    """One element of a page by its id, up to its closing tag (no nesting of the same tag inside)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>.*?</\1>', html, re.S)
    assert match, f"no #{element_id}"
    return match.group(0)


def resend_in_chain(original: Trigger, status: str = S.FAILED) -> Trigger:
    return make_trigger(original.flow, status=status, source=Trigger.Source.RESEND, resend_of=original,
                        origin=original, inputs=original.inputs)


# --- 4. messages and the Re-send box follow the live update --------------------------------------------


def fire(as_bob, flow) -> Trigger:
    response = as_bob.post(reverse("console:flow_fire", args=[flow.pk]), {"IndividualId": "003ADA"})
    assert response.status_code == 302
    return Trigger.objects.get()


def test_the_queued_message_says_so_for_the_live_update_to_change_it(as_bob, flow):
    trigger = fire(as_bob, flow)

    html = as_bob.get(page_of(trigger)).content.decode()

    [item] = message_items(html)
    assert f"Trigger {trigger.pk} queued." in item
    assert 'class="success" data-said-status="queued" data-said-level="success"' in item
    assert '<span class="live-note"></span>' in item  # nothing to add yet
    live = part(html, "trigger-live")
    assert 'data-final="false"' in live and 'data-status="queued"' in live


def test_the_live_part_carries_what_a_contradicted_message_becomes(as_bob, flow):
    trigger = fire(as_bob, flow)
    Trigger.objects.filter(pk=trigger.pk).update(status=S.FAILED, error_code="UNKNOWN_EXCEPTION")

    live = as_bob.get(live_of(trigger)).content.decode()

    root = live[:live.index(">") + 1]
    assert 'data-final="true"' in root and 'data-status="failed"' in root and 'data-level="error"' in root
    assert f'data-note="Since then, trigger {trigger.pk} failed: see the error below."' in root


def test_a_trigger_that_moved_on_before_its_page_opened_shows_the_message_changed(as_bob, flow):
    """A fast worker: the trigger failed between the fire form's redirect and its page."""
    trigger = fire(as_bob, flow)
    Trigger.objects.filter(pk=trigger.pk).update(status=S.FAILED, error_code="UNKNOWN_EXCEPTION")

    [item] = message_items(as_bob.get(page_of(trigger)).content.decode())

    assert item.startswith('<li class="error" data-said-status="queued"')
    assert (f'Trigger {trigger.pk} queued. <span class="live-note">Since then, trigger {trigger.pk} failed: see the '
            f"error below.</span>") in item


def test_a_resend_message_follows_the_new_trigger(as_bob, flow):
    failed = make_trigger(flow)
    response = as_bob.post(reverse("console:trigger_resend", args=[failed.pk]))
    resend = Trigger.objects.get(resend_of=failed)
    Trigger.objects.filter(pk=resend.pk).update(status=S.SUCCEEDED)

    [item] = message_items(as_bob.get(response.url).content.decode())

    assert f"Trigger {failed.pk} re-sent as trigger {resend.pk}." in item
    assert item.startswith('<li class="success" data-said-status="queued"')
    assert f"Since then, trigger {resend.pk} succeeded." in item


def test_a_not_resent_warning_says_when_the_trigger_on_its_way_has_ended(as_bob, flow):
    original = make_trigger(flow)
    on_its_way = resend_in_chain(original, status=S.SENDING)
    as_bob.post(reverse("console:trigger_resend", args=[original.pk]))
    Trigger.objects.filter(pk=on_its_way.pk).update(status=S.SUCCEEDED)

    [item] = message_items(as_bob.get(page_of(original)).content.decode())

    assert "was not re-sent" in item and item.startswith(f'<li class="info" data-waits-for="{on_its_way.pk}"')
    assert f'<span class="live-note">Since then, trigger {on_its_way.pk} is no longer on its way' in item


def test_the_resend_box_follows_the_chain_until_nothing_is_on_its_way(as_bob, flow):
    """Bob looks at the failed original while its re-send is being sent: the box says it is on its way, the page
    keeps following (its own trigger is final), and the live answer brings the box again once the re-send ends."""
    original = make_trigger(flow)
    resend = resend_in_chain(original, status=S.SENDING)

    page = as_bob.get(page_of(original)).content.decode()

    assert (f"Trigger #{resend.pk} of this chain is still on its way (sending)"
            in part(page, "resend-box"))
    assert 'data-final="false"' in part(page, "trigger-live")  # the chain is not final: keep polling

    Trigger.objects.filter(pk=resend.pk).update(status=S.SUCCEEDED)
    live = as_bob.get(live_of(original)).content.decode()

    box = part(live, "resend-box")
    assert "still on its way" not in box
    assert f"This chain already reached the customer (trigger #{resend.pk} succeeded)" in box
    assert 'class="status status-succeeded">succeeded' in part(live, "chain")
    assert 'data-final="true"' in live[:live.index(">") + 1]
    assert live.index('id="trigger-live"') < live.index('id="resend-box"')  # the live part first: console.js


def test_the_live_answer_has_no_resend_box_for_someone_who_may_not_resend(flow, dave):
    from django.contrib.auth.models import Permission

    from .conftest import logged_in

    dave.user_permissions.add(Permission.objects.get(codename="view_trigger"))
    original = make_trigger(flow)
    resend_in_chain(original, status=S.SENDING)

    live = logged_in(dave).get(live_of(original)).content.decode()

    assert re.search(r'<div id="resend-box">\s*</div>', live)


# --- 5. a re-send's new triggers, linked and shown ------------------------------------------------------


def test_resend_selected_returns_to_the_list_with_the_new_triggers_shown(as_bob, flow):
    failed = [make_trigger(flow, inputs={"IndividualId": f"ID-{n}"}) for n in range(3)]
    back = f"{LIST}?status=failed"

    response = as_bob.post(SELECTED, {"ids": [t.pk for t in failed], "next": back})

    assert response.status_code == 302 and response.url == back  # the list the selection was made on
    new = list(Trigger.objects.filter(status=S.QUEUED).order_by("-id"))
    html = as_bob.get(back).content.decode()
    shown = part(html, "just-resent")
    assert "<h2>Just re-sent</h2>" in shown
    assert re.findall(r'<tr>\s*<td><a href="/console/triggers/(\d+)/">', shown) == [str(t.pk) for t in new]
    assert f'href="{LIST}?ids={"%2C".join(str(t.pk) for t in sorted(new, key=lambda t: t.pk))}"' in shown
    assert "Re-sent 3 chains (one new trigger each): " in html  # the message, with its links
    for trigger in new:
        assert f'<a href="{page_of(trigger)}">#{trigger.pk}</a>' in html
    assert 'id="just-resent"' not in as_bob.get(back).content.decode()  # once


def test_past_twenty_the_message_links_the_list_of_them_all(as_bob, flow):
    failed = [make_trigger(flow, inputs={"IndividualId": f"ID-{n}"}) for n in range(23)]
    make_trigger(flow, status=S.QUEUED, inputs={"IndividualId": "SOMEONE-ELSE"})  # not of this re-send

    response = as_bob.post(SELECTED, {"ids": [t.pk for t in failed], "next": LIST}, follow=True)

    new = sorted(Trigger.objects.filter(source=Trigger.Source.RESEND).values_list("pk", flat=True))
    html = response.content.decode()
    more = re.search(r'<a href="([^"]+)">and 3 more</a>', html)
    assert more, "no link to the rest"
    listed = as_bob.get(more.group(1).replace("&amp;", "&"))
    assert rows(listed) == new[::-1]  # exactly the 23, any status, newest first
    page = listed.content.decode()
    assert "Only the 23 triggers of one re-send." in part(page, "scope")
    assert "Re-send all matching this filter" not in page  # a filter-wide re-send would ignore the scope
    panel = part(html, "just-resent")
    assert "The newest 10 of the 23 new triggers" in panel and f'href="{more.group(1)}">list all 23</a>' in panel
    assert re.findall(r'<tr>\s*<td><a href="/console/triggers/(\d+)/">', panel) == [str(pk) for pk in new[::-1][:10]]


def test_the_scope_keeps_the_filter_and_the_pager(as_bob, flow):
    failed = [make_trigger(flow, inputs={"IndividualId": f"ID-{n}"}) for n in range(3)]
    as_bob.post(SELECTED, {"ids": [t.pk for t in failed], "next": LIST})
    new = sorted(Trigger.objects.filter(source=Trigger.Source.RESEND).values_list("pk", flat=True))
    Trigger.objects.filter(pk=new[0]).update(status=S.FAILED)
    ids = ",".join(map(str, new))

    assert rows(as_bob.get(LIST, {"ids": ids, "status": "failed"})) == [new[0]]
    html = as_bob.get(LIST, {"ids": ids}).content.decode()
    assert f'<input type="hidden" name="ids" value="{ids}">' in html  # filtering keeps to the re-send


def test_a_resend_jobs_page_links_the_triggers_it_made(as_alice, alice, flow):
    """The admin's action re-sends through a job; its page links the triggers the job made."""
    failed = [make_trigger(flow, inputs={"IndividualId": f"ID-{n}"}) for n in range(2)]
    make_trigger(flow, status=S.FAILED, source=Trigger.Source.RESEND, resend_of=failed[0], origin=failed[0],
                 inputs=failed[0].inputs)  # an earlier re-send of another action: not the job's
    job = resend_job_run(job_id=resend_job_create(trigger_ids=[t.pk for t in failed], actor=alice,
                                                  include_delivered=False).pk)

    html = as_alice.get(reverse("console:job", args=[job.pk])).content.decode()

    job_list = f"{LIST}?job={job.pk}"
    assert f'<a href="{job_list}" id="job-triggers">the triggers this job made</a>' in html  # not "all re-sends"
    assert f'<span id="job-resent">2</span> · <a href="{job_list}">list them</a>' in html  # by the count, live
    listed = as_alice.get(LIST, {"job": job.pk})
    assert rows(listed) == sorted(Trigger.objects.filter(resend_job=job).values_list("pk", flat=True),
                                  reverse=True)
    assert len(rows(listed)) == 2
    assert f"Only the triggers re-send job {job.pk} made." in part(listed.content.decode(), "scope")
