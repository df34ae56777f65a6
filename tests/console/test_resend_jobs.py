"""Re-sending every trigger matching a filter: the confirmation, the job (one new trigger per chain), its run,
recovery and its page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from flows import resend_jobs, services
from flows.models import ResendJob, Trigger
from flows.resend_jobs import resend_job_create, resend_job_run, resend_jobs_recover
from tests.conftest import make_flow

from .conftest import make_trigger

S = Trigger.Status
ALL = reverse("console:triggers_resend_all")


@pytest.fixture
def failed(flow) -> list[Trigger]:
    """Four failed originals (the second's chain already has a successful re-send) and one that succeeded."""
    triggers = [make_trigger(flow, inputs={"IndividualId": f"ID-{n}"}) for n in range(4)]
    make_trigger(flow, status=S.SUCCEEDED, source=Trigger.Source.RESEND, resend_of=triggers[1], origin=triggers[1],
                 inputs=triggers[1].inputs)
    make_trigger(flow, status=S.SUCCEEDED, inputs={"IndividualId": "ID-OK"})
    return triggers


def job_resends(job: ResendJob) -> list[int]:
    """The chains (origin ids) the job re-sent, one entry per new trigger."""
    return sorted(Trigger.objects.filter(resend_job=job).values_list("origin_id", flat=True))


def count(html: str, name: str) -> str:
    return re.search(rf'id="count-{name}">([^<]*)<', html).group(1)


def pks(triggers) -> list[int]:
    return sorted(t.pk for t in triggers)


# --- confirmation and creation ----------------------------------------------------------------------


def test_the_confirmation_shows_how_many_match_and_how_many_chains_are_delivered(as_bob, failed):
    response = as_bob.get(ALL, {"status": "failed"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>4</strong> triggers match" in html
    assert [count(html, n) for n in ("chains", "resendable", "delivered", "in-flight")] == ["4", "3", "1", "0"]
    assert '<input type="checkbox" name="include_delivered"> Including already delivered (1)' in html
    assert '<input type="hidden" name="status" value="failed">' in html
    assert "Re-send 3 triggers (one per chain)" in html
    assert not ResendJob.objects.exists()


def test_the_confirmation_counts_chains_and_says_the_filter_in_words(as_bob, flow):
    """The issue's customer: 5 originals and 4 failed re-sends of them match; 5 chains, one of them on its way."""
    originals = [make_trigger(flow, inputs={"IndividualId": f"ID-{n}", "EmailAddress": "x@example.com"})
                 for n in range(5)]
    for original in originals[:4]:
        make_trigger(flow, source=Trigger.Source.RESEND, resend_of=original, origin=original,
                     inputs=original.inputs)
    make_trigger(flow, status=S.SUCCEEDED, source=Trigger.Source.RESEND, resend_of=originals[4], origin=originals[4],
                 inputs=originals[4].inputs)  # delivered, and yet re-sent again since: on its way counts first
    make_trigger(flow, status=S.QUEUED, source=Trigger.Source.RESEND, resend_of=originals[4], origin=originals[4],
                 inputs=originals[4].inputs)

    html = as_bob.get(ALL, {"q": "x@example.com", "status": "failed"}).content.decode()

    assert "<strong>9</strong> triggers match" in html
    assert [count(html, n) for n in ("chains", "resendable", "delivered", "in-flight")] == ["5", "4", "0", "1"]
    assert "every failed trigger with an input equal to “x@example.com”" in html
    assert "<code>q=" not in html
    assert "include_delivered" not in html  # nothing delivered: no box


def test_the_confirmation_counts_the_filter_not_the_page(as_bob, flow):
    Trigger.objects.bulk_create(Trigger(flow=flow, inputs={"IndividualId": f"ID-{n}"}, status=S.FAILED,
                                        source=Trigger.Source.API) for n in range(60))

    html = as_bob.get(ALL, {"status": "failed"}).content.decode()

    assert "<strong>60</strong> triggers match" in html
    assert "Including already delivered" not in html


def test_the_list_links_to_the_confirmation_with_its_filter(as_bob, failed, flow):
    html = as_bob.get(reverse("console:triggers"), {"status": "failed", "flow": flow.pk}).content.decode()

    assert f'href="{ALL}?status=failed&amp;flow={flow.pk}"' in html


def test_confirming_creates_a_job_and_enqueues_it_after_commit(as_bob, bob, failed, flow, jobs_enqueued,
                                                               django_capture_on_commit_callbacks):
    later = make_trigger(flow, status=S.SUCCEEDED)  # not matching: not counted, not the max id

    with django_capture_on_commit_callbacks(execute=True):
        response = as_bob.post(ALL, {"status": "failed", "flow": flow.pk})
        assert jobs_enqueued == []  # nothing reaches the broker before the job is committed

    job = ResendJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("console:job", args=[job.pk])
    assert jobs_enqueued == [job.pk]
    assert job.filters == {"status": "failed", "flow": str(flow.pk)}
    assert (job.max_trigger_id, job.total, job.status) == (failed[-1].pk, 4, ResendJob.Status.QUEUED)
    assert job.max_trigger_id < later.pk
    assert (job.created_by, job.include_delivered, job.trigger_ids) == (bob, False, None)
    assert not Trigger.objects.filter(resend_job=job).exists()  # the worker re-sends, not the request


def test_the_include_box_is_stored(as_bob, failed):
    as_bob.post(ALL, {"status": "failed", "include_delivered": "on"})

    assert ResendJob.objects.get().include_delivered is True


def test_an_invalid_filter_creates_no_job(as_bob, failed):
    response = as_bob.post(ALL, {"status": "bogus"}, follow=True)

    assert "The filter is not valid" in response.content.decode()
    assert not ResendJob.objects.exists()


def test_support_without_the_job_permission_may_not_start_one(dave, failed):
    from django.contrib.auth.models import Permission

    dave.user_permissions.add(*Permission.objects.filter(codename__in=["view_trigger", "resend_trigger"]))
    client = Client()
    client.force_login(dave)

    assert client.post(ALL, {"status": "failed"}).status_code == 403
    assert not ResendJob.objects.exists()


# --- running ----------------------------------------------------------------------------------------


def create_job(params, actor=None, include=False) -> ResendJob:
    return resend_job_create(params=params, actor=actor, include_delivered=include)


def test_a_job_resends_exactly_its_triggers_and_counts(bob, failed, flow):
    job = create_job({"status": "failed"}, actor=bob)
    after = make_trigger(flow)  # failed after the confirmation: not swept in

    job = resend_job_run(job_id=job.pk)

    assert job.status == ResendJob.Status.DONE
    assert job_resends(job) == pks([failed[0], failed[2], failed[3]])
    assert (job.total, job.processed, job.resent, job.skipped) == (4, 4, 3, 1)
    assert job.skips == {resend_jobs.SKIP_DELIVERED: 1}
    assert not Trigger.objects.filter(resend_of=after).exists()
    resends = Trigger.objects.filter(resend_job=job)
    assert set(resends.values_list("source", "actor", "status")) == {(Trigger.Source.RESEND, bob.pk, S.QUEUED)}
    assert job.started_at is not None and job.finished_at is not None


def test_a_job_including_delivered_chains_resends_all(failed):
    job = resend_job_run(job_id=create_job({"status": "failed"}, include=True).pk)

    assert job_resends(job) == pks(failed)
    assert (job.processed, job.resent, job.skipped) == (4, 4, 0)


def test_a_job_replays_its_whole_filter(failed, org):
    other = make_flow(org, "Other_Flow")
    elsewhere = make_trigger(other)

    job = resend_job_run(job_id=create_job({"status": "failed", "flow": str(other.pk)}).pk)

    assert job_resends(job) == [elsewhere.pk]
    assert (job.total, job.processed, job.resent) == (1, 1, 1)


def test_a_job_works_in_batches(failed, monkeypatch):
    monkeypatch.setattr(resend_jobs, "BATCH", 1)

    job = resend_job_run(job_id=create_job({"status": "failed"}).pk)

    assert (job.processed, job.resent, job.skipped) == (4, 3, 1)


def test_a_job_skips_triggers_whose_inputs_no_longer_fit(failed, flow):
    Trigger.objects.filter(pk=failed[0].pk).update(inputs={"IndividualId": "ID-0", "Gone": "x"})

    job = resend_job_run(job_id=create_job({"status": "failed"}).pk)

    assert job_resends(job) == pks([failed[2], failed[3]])
    assert (job.processed, job.resent, job.skipped, job.status) == (4, 2, 2, ResendJob.Status.DONE)
    assert job.skips == {resend_jobs.SKIP_DELIVERED: 1, resend_jobs.SKIP_INPUTS: 1}


def customer_with_failed_resends(flow, email: str = "x@example.com") -> list[Trigger]:
    """The issue's scenario: 5 failed originals for one customer, 4 of them re-sent once already, and failed again.
    Returns the originals."""
    originals = [make_trigger(flow, inputs={"IndividualId": f"ORDER-{n}", "EmailAddress": email}) for n in range(5)]
    for original in originals[:4]:
        make_trigger(flow, source=Trigger.Source.RESEND, resend_of=original, origin=original, inputs=original.inputs)
    return originals


@pytest.mark.parametrize("batch", [200, 2])
def test_a_filter_matching_originals_and_their_failed_resends_resends_each_chain_once(flow, bob, monkeypatch,
                                                                                      batch):
    monkeypatch.setattr(resend_jobs, "BATCH", batch)
    originals = customer_with_failed_resends(flow)
    make_trigger(flow, inputs={"IndividualId": "SOMEONE-ELSE", "EmailAddress": "y@example.com"})
    job = create_job({"q": "x@example.com", "status": "failed"}, actor=bob)

    job = resend_job_run(job_id=job.pk)

    new = list(Trigger.objects.filter(resend_job=job))
    assert len(new) == 5
    assert sorted(t.origin_id for t in new) == pks(originals)  # one per chain
    by_origin = {t.pk: t for t in originals}
    assert all(t.inputs == by_origin[t.origin_id].inputs and t.resend_of_id == t.origin_id for t in new)
    assert (job.total, job.processed, job.resent, job.skipped) == (9, 9, 5, 4)
    assert job.skips == {resend_jobs.SKIP_SAME_CHAIN: 4}


def test_a_job_never_resends_a_chain_with_a_trigger_on_its_way(failed, flow):
    on_its_way = make_trigger(flow, status=S.RETRYING, source=Trigger.Source.RESEND, resend_of=failed[0],
                              origin=failed[0], inputs=failed[0].inputs)

    job = resend_job_run(job_id=create_job({"status": "failed"}, include=True).pk)

    assert job_resends(job) == pks(failed[1:])
    assert Trigger.objects.filter(origin=failed[0]).get() == on_its_way
    assert job.skips == {resend_jobs.SKIP_IN_FLIGHT: 1}


def test_a_job_over_a_selection_resends_its_chains_once(flow):
    originals = customer_with_failed_resends(flow)
    resends = list(Trigger.objects.filter(origin__isnull=False).order_by("pk"))
    unselected = make_trigger(flow, inputs={"IndividualId": "NOT-SELECTED"})

    job = resend_job_create(trigger_ids=[originals[0].pk, resends[0].pk, resends[1].pk], actor=None,
                            include_delivered=False)
    job = resend_job_run(job_id=job.pk)

    assert (job.total, job.processed, job.resent, job.skipped) == (3, 3, 2, 1)
    assert job_resends(job) == pks(originals[:2])
    assert not Trigger.objects.filter(resend_of=unselected).exists()


def test_a_selection_job_is_capped(flow):
    with pytest.raises(ValueError, match="at most 1,000"):
        resend_job_create(trigger_ids=list(range(1, 1002)), actor=None, include_delivered=False)

    assert not ResendJob.objects.exists()


def test_a_job_that_died_between_two_triggers_of_a_chain_resends_it_once(flow, monkeypatch):
    """Each chain's failed re-send is walked first (newest first), its original in a later batch; the re-sends
    made before the crash have failed meanwhile (nothing on its way): the recovered run still knows their chains
    were re-sent, from the job's own triggers."""
    originals = [make_trigger(flow, inputs={"IndividualId": f"ORDER-{n}", "EmailAddress": "x@example.com"})
                 for n in range(3)]
    for original in originals:
        make_trigger(flow, source=Trigger.Source.RESEND, resend_of=original, origin=original, inputs=original.inputs)
    monkeypatch.setattr(resend_jobs, "BATCH", 2)
    job = create_job({"q": "x@example.com", "status": "failed"})
    real_resend, calls = services.trigger_resend, []

    def dies_on_the_third(**kwargs):
        calls.append(kwargs["trigger"].pk)
        if len(calls) == 3:
            raise WorkerKilled
        return real_resend(**kwargs)

    monkeypatch.setattr(services, "trigger_resend", dies_on_the_third)
    with pytest.raises(WorkerKilled):
        resend_job_run(job_id=job.pk)
    monkeypatch.setattr(services, "trigger_resend", real_resend)
    assert job_resends(job) == pks(originals[1:])  # the newest two chains, in the committed first batch
    Trigger.objects.filter(resend_job=job).update(status=S.FAILED)
    ResendJob.objects.filter(pk=job.pk).update(status=ResendJob.Status.QUEUED)  # as resend_jobs_recover does

    job = resend_job_run(job_id=job.pk)

    assert job_resends(job) == pks(originals)  # each chain once
    assert (job.total, job.processed, job.resent, job.skipped) == (6, 6, 3, 3)
    assert job.skips == {resend_jobs.SKIP_SAME_CHAIN: 3}


def test_running_a_job_twice_does_nothing_the_second_time(failed):
    job = create_job({"status": "failed"})
    resend_job_run(job_id=job.pk)
    before = list(Trigger.objects.order_by("id").values_list("id", flat=True))

    again = resend_job_run(job_id=job.pk)

    assert list(Trigger.objects.order_by("id").values_list("id", flat=True)) == before
    assert (again.status, again.processed, again.resent, again.skipped) == (ResendJob.Status.DONE, 4, 3, 1)


class WorkerKilled(BaseException):
    """Not an Exception: like a killed process, it passes the job's error handling."""


def test_a_job_whose_worker_died_is_requeued_and_resumes_without_duplicates(failed, flow, monkeypatch,
                                                                            jobs_enqueued):
    more = [make_trigger(flow, inputs={"IndividualId": f"ID-MORE-{n}"}) for n in range(3)]
    monkeypatch.setattr(resend_jobs, "BATCH", 2)
    job = create_job({"status": "failed"})  # 7 triggers, newest first: more[2], more[1], more[0], failed[3] ...
    real_resend, calls = services.trigger_resend, []

    def dies_on_the_fourth(**kwargs):
        calls.append(kwargs["trigger"].pk)
        if len(calls) == 4:
            raise WorkerKilled
        return real_resend(**kwargs)

    monkeypatch.setattr(services, "trigger_resend", dies_on_the_fourth)
    with pytest.raises(WorkerKilled):
        resend_job_run(job_id=job.pk)
    monkeypatch.setattr(services, "trigger_resend", real_resend)

    job.refresh_from_db()
    assert job.status == ResendJob.Status.RUNNING
    assert job_resends(job) == pks(more[1:])  # the first batch was committed; the second rolled back
    assert resend_jobs_recover() == 0  # the worker may still be busy: not taken back yet
    assert jobs_enqueued == []

    ResendJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - dt.timedelta(minutes=10))
    assert resend_jobs_recover() == 1

    job.refresh_from_db()
    assert job.status == ResendJob.Status.QUEUED
    assert jobs_enqueued == [job.pk]

    job = resend_job_run(job_id=job.pk)

    assert job.status == ResendJob.Status.DONE
    assert job_resends(job) == pks([*more, failed[0], failed[2], failed[3]])  # each once
    assert (job.total, job.processed, job.resent, job.skipped) == (7, 7, 6, 1)


def test_recovery_leaves_finished_and_fresh_jobs_alone(failed, jobs_enqueued):
    old = timezone.now() - dt.timedelta(hours=1)
    for status in (ResendJob.Status.DONE, ResendJob.Status.FAILED, ResendJob.Status.RUNNING):
        job = create_job({"status": "failed"})
        ResendJob.objects.filter(pk=job.pk).update(status=status, updated_at=old if status != "running" else
                                                   timezone.now())

    assert resend_jobs_recover() == 0
    assert jobs_enqueued == []


def test_a_queued_job_whose_message_got_lost_is_requeued(failed, jobs_enqueued):
    job = create_job({"status": "failed"})
    ResendJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - dt.timedelta(hours=1))

    resend_jobs_recover()

    assert jobs_enqueued == [job.pk]


def test_a_broker_outage_at_confirmation_is_no_server_error(transactional_db, alice, monkeypatch):
    from kombu.exceptions import OperationalError

    from flows import tasks
    from tests.conftest import make_org

    make_trigger(make_flow(make_org()))

    def broker_down(job_id):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.run_resend_job, "delay", broker_down)
    client = Client(raise_request_exception=False)
    client.force_login(alice)

    response = client.post(ALL, {"status": "failed"})

    job = ResendJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("console:job", args=[job.pk])


def test_an_unexpected_error_fails_the_job_with_its_message(failed, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "trigger_resend", broken)

    job = resend_job_run(job_id=create_job({"status": "failed"}).pk)

    assert job.status == ResendJob.Status.FAILED
    assert "database went away" in job.error
    assert job.finished_at is not None


# --- the job's page ---------------------------------------------------------------------------------


def live_value(html: str, name: str) -> str:
    return re.search(rf'id="job-{name}">([^<]*)<', html).group(1)


def test_the_job_page_shows_counts_and_outcomes_by_status(as_bob, bob, failed):
    job = resend_job_run(job_id=create_job({"status": "failed"}, actor=bob).pk)
    resends = list(Trigger.objects.filter(resend_job=job).order_by("id"))
    Trigger.objects.filter(pk=resends[0].pk).update(status=S.SUCCEEDED)
    Trigger.objects.filter(pk=resends[1].pk).update(status=S.FAILED)

    response = as_bob.get(reverse("console:job", args=[job.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert {name: live_value(html, name) for name in
            ("processed", "total", "resent", "skipped", "succeeded", "failed", "pending")} == {
        "processed": "4", "total": "4", "resent": "3", "skipped": "1", "succeeded": "1", "failed": "1",
        "pending": "1"}
    assert "status-done" in html
    assert "for <strong>every failed trigger</strong>" in html
    assert f"<li>{resend_jobs.SKIP_DELIVERED}: <strong>1</strong></li>" in html
    assert 'data-final="false"' in html  # one re-send still on its way: the page keeps polling

    Trigger.objects.filter(pk=resends[2].pk).update(status=S.SUCCEEDED)
    partial = as_bob.get(reverse("console:job", args=[job.pk]), {"partial": "1"}).content.decode()

    assert live_value(partial, "succeeded") == "2" and live_value(partial, "pending") == "0"
    assert 'data-final="true"' in partial
    assert "<h1>" not in partial  # only the live part


def test_the_job_list_shows_progress(as_bob, failed):
    job = resend_job_run(job_id=create_job({"status": "failed"}).pk)

    html = as_bob.get(reverse("console:jobs")).content.decode()

    assert f'href="{reverse("console:job", args=[job.pk])}">#{job.pk}</a>' in html
    assert "4 / 4" in html
    assert "<td>every failed trigger</td>" in html


def test_a_batch_reads_its_chains_in_a_few_queries_whatever_its_size(flow):
    """The reads per batch do not grow with its triggers: only the re-sends' own writes do."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def selects_for(n: int) -> int:
        Trigger.objects.all().delete()
        originals = [make_trigger(flow, inputs={"IndividualId": f"ID-{n}-{i}"}) for i in range(n)]
        for original in originals[::2]:  # half the chains have a failed re-send matching too
            make_trigger(flow, source=Trigger.Source.RESEND, resend_of=original, origin=original,
                         inputs=original.inputs)
        job = create_job({"status": "failed"})
        with CaptureQueriesContext(connection) as queries:
            job = resend_job_run(job_id=job.pk)
        assert job.resent == n
        return sum(1 for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT"))

    assert selects_for(5) == selects_for(40) <= 12


def test_bob_resends_a_customers_failed_orders_from_the_console_once_each(bob, flow, jobs_enqueued,
                                                                           django_capture_on_commit_callbacks):
    """As the issue's operator did: search the customer's email among failed triggers, re-send all matching."""
    originals = customer_with_failed_resends(flow)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(bob)

    listing = browser.get(reverse("console:triggers"), {"q": "x@example.com", "status": "failed"}).content.decode()
    link = re.search(rf'href="({re.escape(ALL)}\?[^"]+)"', listing).group(1).replace("&amp;", "&")
    confirmation = browser.get(link).content.decode()
    assert "<strong>9</strong> triggers match" in confirmation and count(confirmation, "chains") == "5"
    form = re.search(rf'<form method="post" action="{re.escape(ALL)}">(.*?)</form>', confirmation, re.S).group(1)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(ALL, fields)

    job = ResendJob.objects.get()
    assert response.url == reverse("console:job", args=[job.pk]) and jobs_enqueued == [job.pk]
    resend_job_run(job_id=job.pk)  # what the worker does with the message

    assert job_resends(job) == pks(originals)
    page = browser.get(response.url).content.decode()
    assert {name: live_value(page, name) for name in ("total", "processed", "resent", "skipped")} == {
        "total": "9", "processed": "9", "resent": "5", "skipped": "4"}
    assert f"<li>{resend_jobs.SKIP_SAME_CHAIN}: <strong>4</strong></li>" in page
    assert "every failed trigger with an input equal to “x@example.com”" in page
