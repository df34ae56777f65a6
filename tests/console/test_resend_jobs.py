"""Re-sending every trigger matching a filter: the confirmation, the job, its run, recovery and its page."""

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
    """Four failed triggers (the second already has a successful re-send) and one that succeeded."""
    triggers = [make_trigger(flow, inputs={"IndividualId": f"ID-{n}"}) for n in range(4)]
    make_trigger(flow, status=S.SUCCEEDED, source=Trigger.Source.RESEND, resend_of=triggers[1],
                 inputs=triggers[1].inputs)
    make_trigger(flow, status=S.SUCCEEDED, inputs={"IndividualId": "ID-OK"})
    return triggers


def job_resends(job: ResendJob) -> list[int]:
    return sorted(Trigger.objects.filter(resend_job=job).values_list("resend_of_id", flat=True))


def pks(triggers) -> list[int]:
    return sorted(t.pk for t in triggers)


# --- confirmation and creation ----------------------------------------------------------------------


def test_the_confirmation_shows_how_many_match_and_how_many_were_resent(as_bob, failed):
    response = as_bob.get(ALL, {"status": "failed"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>4</strong> triggers match" in html
    assert "Also re-send the 1 that already have a successful re-send" in html
    assert '<input type="hidden" name="status" value="failed">' in html
    assert "Re-send 4 triggers" in html
    assert not ResendJob.objects.exists()


def test_the_confirmation_counts_the_filter_not_the_page(as_bob, flow):
    Trigger.objects.bulk_create(Trigger(flow=flow, inputs={"IndividualId": f"ID-{n}"}, status=S.FAILED,
                                        source=Trigger.Source.API) for n in range(60))

    html = as_bob.get(ALL, {"status": "failed"}).content.decode()

    assert "<strong>60</strong> triggers match" in html
    assert "already have a successful re-send" not in html


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
    assert (job.created_by, job.include_already_resent) == (bob, False)
    assert not Trigger.objects.filter(resend_job=job).exists()  # the worker re-sends, not the request


def test_the_include_box_is_stored(as_bob, failed):
    as_bob.post(ALL, {"status": "failed", "include_already_resent": "on"})

    assert ResendJob.objects.get().include_already_resent is True


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
    return resend_job_create(params=params, actor=actor, include_already_resent=include)


def test_a_job_resends_exactly_its_triggers_and_counts(bob, failed, flow):
    job = create_job({"status": "failed"}, actor=bob)
    after = make_trigger(flow)  # failed after the confirmation: not swept in

    job = resend_job_run(job_id=job.pk)

    assert job.status == ResendJob.Status.DONE
    assert job_resends(job) == pks([failed[0], failed[2], failed[3]])
    assert (job.total, job.processed, job.resent, job.skipped) == (4, 4, 3, 1)
    assert not Trigger.objects.filter(resend_of=after).exists()
    resends = Trigger.objects.filter(resend_job=job)
    assert set(resends.values_list("source", "actor", "status")) == {(Trigger.Source.RESEND, bob.pk, S.QUEUED)}
    assert job.started_at is not None and job.finished_at is not None


def test_a_job_including_already_resent_ones_resends_all(failed):
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
    assert "<code>status=failed</code>" in html
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
