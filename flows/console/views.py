"""The support console: thin views over selectors and services, in the admin's look."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from .. import dashboard as board
from .. import services
from ..inputs import InputValidationError
from ..models import Flow, ResendJob, Trigger
from ..resend_jobs import ResendOutcome, resend_job_create, resend_job_outcomes, triggers_resend
from ..selectors import (
    IN_FLIGHT, chain_counts, chain_members, chain_states, trigger_filter, trigger_page,
)
from .forms import FireForm, TriggerFilterForm, describe_filter, describe_job

MAX_SELECTED = 200


def console_view(*perms: str) -> Callable:
    """Staff only (the admin's login), and every listed permission; others get 403."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not (request.user.is_authenticated and request.user.is_active and request.user.is_staff):
                return redirect_to_login(request.get_full_path(), reverse("admin:login"))
            if not request.user.has_perms(perms):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def render_console(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    return render(request, template, {**admin.site.each_context(request), **context}, status=status)


def _back(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return target
    return fallback


# --- triggers ---------------------------------------------------------------------------------------


@console_view("flows.view_trigger")
def trigger_list(request: HttpRequest) -> HttpResponse:
    scope = _resent_scope(request.GET)  # a re-send's new triggers only; such a link means any status
    form = TriggerFilterForm(request.GET) if scope else TriggerFilterForm.from_request(request.GET)
    rows: list[Trigger] = []
    next_before = None
    params: dict[str, str] = {}
    if form.is_valid():
        params = form.params
        before = request.GET.get("before", "")
        triggers = trigger_filter(params).filter(**scope["lookup"]) if scope else trigger_filter(params)
        rows, next_before = trigger_page(triggers,
                                         before=int(before) if before.isascii() and before.isdigit() else None)
    states = chain_states({t.chain_origin_id for t in rows}) if rows else {}
    for row in rows:  # a newer trigger of its chain: this one was re-sent (the row links to the newest)
        state = states.get(row.chain_origin_id)
        row.resent_as = state.newest if state and state.newest[0] > row.pk else None
    query = urlencode({**params, **(scope["params"] if scope else {})})
    return render_console(request, "console/trigger_list.html", {
        "scope": scope, "unscoped_query": urlencode(params), "just_resent": _just_resent(request),
        "title": "Triggers", "form": form, "rows": rows, "query": query, "next_before": next_before,
        "first_page": bool(request.GET.get("before")),
        "can_resend": request.user.has_perm("flows.resend_trigger"),
        "here": request.get_full_path(),
    })


def _trigger_context(trigger: Trigger) -> dict[str, Any]:
    own, shared = trigger.exchanges.all(), trigger.batch_exchanges.all()  # shared: micro-batch calls
    chain = chain_members(trigger.chain_origin_id)
    in_flight = [t for t in chain if t.status in IN_FLIGHT]
    level, note = _status_note(trigger)
    return {
        "trigger": trigger,
        "exchanges": sorted([*own, *shared], key=lambda e: (e.created_at, e.pk)),
        "resends": list(trigger.resends.order_by("id")),
        "chain": chain if len(chain) > 1 else [],
        # A succeeded trigger first: it, rather than an unknown one, says the chain reached the customer.
        "chain_delivered": sorted((t for t in chain if t.status in Trigger.DELIVERED),
                                  key=lambda t: t.status != Trigger.Status.SUCCEEDED),
        "chain_in_flight": in_flight,
        # The page keeps following while any trigger of the chain is on its way, this one's outcome known or not:
        # its Re-send box and chain line say what a re-send does now, and that changes when that trigger ends.
        "live": not trigger.is_final or bool(in_flight),
        "in_flight_ids": " ".join(str(t.pk) for t in in_flight),
        "status_level": level, "status_note": note,
    }


def _status_note(trigger: Trigger) -> tuple[str, str]:
    """The trigger's status as a message level and a sentence, added to a message on its page that said an earlier
    status (the fire form's "Trigger 9 queued.") once the live part shows it moved on."""
    S, pk = Trigger.Status, trigger.pk
    return {
        S.QUEUED: ("info", f"Since then, trigger {pk} was queued again."),
        S.SENDING: ("info", f"Since then, trigger {pk} is being sent to Salesforce…"),
        S.RETRYING: ("warning", f"Since then, trigger {pk} is waiting to be tried again: see its attempts below."),
        S.SUCCEEDED: ("success", f"Since then, trigger {pk} succeeded."),
        S.FAILED: ("error", f"Since then, trigger {pk} failed: see the error below."),
        S.UNKNOWN: ("warning", f"Since then, trigger {pk} ended unknown (Salesforce may have run the flow): see "
                               f"below."),
    }.get(trigger.status, ("info", f"Since then, trigger {pk} is {trigger.status}."))


def _tag_value(message: Any, prefix: str) -> str | None:
    for tag in (message.extra_tags or "").split():
        if tag.startswith(prefix):
            return tag.removeprefix(prefix)
    return None


def _page_messages(request: HttpRequest, context: dict[str, Any]) -> list[dict[str, Any]]:
    """This request's messages for a trigger's page, each with what keeps it true while the page follows the
    trigger (console.js): a message that said the trigger's status ("said-<status>" in its tags) changes with the
    status; one that said a trigger was on its way ("waits-for-<id>") says when it no longer is. Rendered changed
    already when that happened between the action and this page (a fast worker)."""
    trigger = context["trigger"]
    in_flight = context["in_flight_ids"].split()
    shown = []
    for message in messages.get_messages(request):
        said = _tag_value(message, "said-")
        # The fire form's message carries no tag (flow_fire is not this part's to edit): known by its words, held
        # to them by tests/console/test_frictions_live_and_resend.py.
        if said is None and message.level == messages.SUCCESS and str(message) == f"Trigger {trigger.pk} queued.":
            said = Trigger.Status.QUEUED
        waits_for = _tag_value(message, "waits-for-")
        moved = said is not None and said != trigger.status
        arrived = waits_for is not None and waits_for not in in_flight
        shown.append({
            "text": message.message, "said": said, "waits_for": waits_for, "arrived": arrived,
            "level": context["status_level"] if moved else "info" if arrived else message.level_tag,
            "said_level": message.level_tag, "note": context["status_note"] if moved else "",
        })
    return shown


@console_view("flows.view_trigger")
def trigger_detail(request: HttpRequest, pk: int) -> HttpResponse:
    trigger = get_object_or_404(Trigger.objects.select_related("flow__org", "actor", "resend_of", "delivered_by"),
                                pk=pk)
    context = _trigger_context(trigger)
    return render_console(request, "console/trigger_detail.html", {
        "title": f"Trigger {trigger.pk}", **context, "page_messages": _page_messages(request, context),
        "can_resend": request.user.has_perm("flows.resend_trigger"),
    })


@console_view("flows.view_trigger")
def trigger_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The parts of the trigger page that change until the trigger and its chain are final; the page polls them:
    the live part, then the Re-send box and the chain line (console.js puts each in place by its id)."""
    trigger = get_object_or_404(Trigger.objects.select_related("flow__org"), pk=pk)
    return render(request, "console/_trigger_live.html", {
        **_trigger_context(trigger), "can_resend": request.user.has_perm("flows.resend_trigger"), "parts": True,
    })


# Re-sent triggers a report links one by one; the rest are a link to the list of them all.
RESENT_SHOWN = 20
# Re-sent triggers the list a selection's re-send returns to shows above its rows: its own rows stay in view.
JUST_RESENT_ROWS = 10
# The session key under which Re-send selected leaves its new triggers' ids for the list it returns to.
JUST_RESENT = "console.just_resent"


def resent_url(ids: list[int]) -> str:
    """The console's list of just these triggers (any status): the re-sends a report names."""
    return f"{reverse('console:triggers')}?{urlencode({'ids': ','.join(str(pk) for pk in ids)})}"


def _report(request: HttpRequest, outcome: ResendOutcome) -> None:
    """What a re-send did, as messages: the new triggers linked (past RESENT_SHOWN, a link to the list of them
    all), each skip with its reason."""
    if outcome.resent:
        shown = outcome.resent[:RESENT_SHOWN]
        links = format_html_join(", ", '<a href="{}">#{}</a>',
                                 ((reverse("console:trigger", args=[t.pk]), t.pk) for t in shown))
        more = format_html(' <a href="{}">and {} more</a>', resent_url([t.pk for t in outcome.resent]),
                           len(outcome.resent) - len(shown)) if len(outcome.resent) > len(shown) else ""
        messages.success(request, format_html(
            "Re-sent {} chain{} (one new trigger each): {}{}{}", len(outcome.resent),
            "s" if len(outcome.resent) != 1 else "", links, more,
            f"; skipped {len(outcome.skipped)} trigger{'s' if len(outcome.skipped) != 1 else ''}."
            if outcome.skipped else "."))
    elif outcome.skipped:
        messages.warning(request, f"Nothing re-sent; skipped {len(outcome.skipped)} "
                                  f"trigger{'s' if len(outcome.skipped) != 1 else ''}.")
    for skip in outcome.skipped[:10]:
        messages.warning(request, str(skip))
    if len(outcome.skipped) > 10:
        messages.warning(request, f"… and {len(outcome.skipped) - 10} more skipped.")


@require_POST
@console_view("flows.view_trigger", "flows.resend_trigger")
def trigger_resend(request: HttpRequest, pk: int) -> HttpResponse:
    trigger = get_object_or_404(Trigger.objects.select_related("flow__org"), pk=pk)
    confirmed = request.POST.get("confirm") == "yes"
    chain = chain_members(trigger.chain_origin_id)
    on_its_way = [t for t in chain if t.status in IN_FLIGHT]
    delivered = [t for t in chain if t.status in Trigger.DELIVERED]
    if on_its_way:
        messages.warning(request, format_html(
            'Trigger {} was not re-sent: <a href="{}">trigger {}</a> of its chain is still on its way ({}); a '
            're-send now could reach the customer twice. Wait for its outcome.', trigger.pk,
            reverse("console:trigger", args=[on_its_way[-1].pk]), on_its_way[-1].pk, on_its_way[-1].status),
            extra_tags=f"waits-for-{on_its_way[-1].pk}")  # the page says when that one is no longer on its way
        return redirect("console:trigger", pk=trigger.pk)
    if delivered and not confirmed:
        return render_console(request, "console/resend_confirm.html", {
            "title": f"Re-send trigger {trigger.pk} again?", "trigger": trigger, "next": request.POST.get("next", ""),
            "delivered": delivered, "origin": chain[0] if chain else trigger,
        })
    outcome = triggers_resend(triggers=[trigger], actor=request.user, include_delivered=confirmed)
    if not outcome.resent:
        [skip] = outcome.skipped
        messages.error(request, f"Trigger {trigger.pk} cannot be re-sent: {skip.detail}")
        return redirect("console:trigger", pk=trigger.pk)
    [resend] = outcome.resent
    messages.success(request, f"Trigger {trigger.pk} re-sent as trigger {resend.pk}"
                              + (f" (from its original, trigger {resend.resend_of_id})."
                                 if resend.resend_of_id != trigger.pk else "."),
                     extra_tags="said-queued")  # on the new trigger's page, which follows it from queued
    return redirect("console:trigger", pk=resend.pk)


@require_POST
@console_view("flows.view_trigger", "flows.resend_trigger")
def trigger_mark_delivered(request: HttpRequest, pk: int) -> HttpResponse:
    """A person checked in Salesforce that an unknown trigger reached the customer."""
    trigger = get_object_or_404(Trigger.objects.select_related("delivered_by"), pk=pk)
    try:
        services.trigger_mark_delivered(trigger=trigger, actor=request.user)
    except services.NotUnknown:
        trigger.refresh_from_db()
        if trigger.delivered_by_id or trigger.delivered_at:
            who = trigger.delivered_by.get_username() if trigger.delivered_by else "someone"
            messages.error(request, f"Trigger {trigger.pk} was already marked as delivered by {who} at "
                                    f"{timezone.localtime(trigger.delivered_at):%Y-%m-%d %H:%M:%S}: nothing changed.")
        else:
            messages.error(request, f"Trigger {trigger.pk} is {trigger.status}, not unknown: only a trigger whose "
                                    f"outcome is unknown can be marked as delivered. Nothing changed.")
    else:
        messages.success(request, f"Trigger {trigger.pk} marked as delivered.")
    return redirect("console:trigger", pk=trigger.pk)


@require_POST
@console_view("flows.view_trigger", "flows.resend_trigger")
def triggers_resend_selected(request: HttpRequest) -> HttpResponse:
    ids = [int(i) for i in request.POST.getlist("ids") if i.isascii() and i.isdigit()][:MAX_SELECTED]
    back = _back(request, reverse("console:triggers"))
    triggers = list(Trigger.objects.filter(pk__in=ids).select_related("flow__org").order_by("-id"))
    if not triggers:
        messages.warning(request, "Select the triggers to re-send first.")
        return redirect(back)
    confirm = request.POST.get("confirm")
    states = chain_states({t.chain_origin_id for t in triggers})
    delivered = {origin: state for origin, state in states.items() if state.delivered and not state.in_flight}
    if delivered and confirm not in ("all", "skip"):
        in_flight = sum(1 for state in states.values() if state.in_flight)
        return render_console(request, "console/resend_selected_confirm.html", {
            "title": "Some of these already reached the customer", "triggers": triggers, "next": back,
            "chains": len(states), "delivered": sorted(delivered.values(), key=lambda s: s.origin_id),
            "in_flight": in_flight, "others": len(states) - len(delivered) - in_flight,
            "with_delivered": len(states) - in_flight,
        })
    outcome = triggers_resend(triggers=triggers, actor=request.user, include_delivered=confirm == "all")
    _report(request, outcome)
    # Back to the list the selection was made on (its filter and page kept: the next failures to work on are
    # there), which shows the new triggers above its rows once (_just_resent): a filter of failed triggers would
    # not show them otherwise, being queued.
    if outcome.resent:
        request.session[JUST_RESENT] = [t.pk for t in outcome.resent]
    return redirect(back)


def _just_resent(request: HttpRequest) -> dict[str, Any] | None:
    """The new triggers of the re-send that led to this list (Re-send selected), shown once above its rows."""
    ids = [pk for pk in request.session.pop(JUST_RESENT, None) or [] if isinstance(pk, int)]
    if not ids:
        return None
    rows = list(Trigger.objects.filter(pk__in=sorted(ids)[-JUST_RESENT_ROWS:]).select_related("flow__org", "actor")
                .order_by("-id"))
    return {"rows": rows, "total": len(ids), "url": resent_url(ids)}


def _resent_scope(query: Any) -> dict[str, Any] | None:
    """Only the triggers a re-send made, on top of the list's filter: ?ids=1,2,3 (a selection's, linked from its
    report) or ?job=N (a re-send job's, linked from its page)."""
    job = query.get("job", "")
    if job.isascii() and job.isdigit():
        return {"params": {"job": job}, "lookup": {"resend_job_id": int(job)},
                "words": f"the triggers re-send job {job} made", "job_url": reverse("console:job", args=[int(job)])}
    ids = sorted({int(pk) for pk in query.get("ids", "").split(",") if pk.isascii() and pk.isdigit()})
    if ids:
        ids = ids[-MAX_SELECTED:]
        return {"params": {"ids": ",".join(map(str, ids))}, "lookup": {"pk__in": ids},
                "words": f"the {len(ids)} trigger{'s' if len(ids) != 1 else ''} of one re-send"}
    return None


@require_http_methods(["GET", "POST"])
@console_view("flows.view_trigger", "flows.resend_trigger", "flows.add_resendjob")
def triggers_resend_all(request: HttpRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else request.GET
    form = TriggerFilterForm(data)
    if not form.is_valid():
        messages.error(request, "The filter is not valid; fix it and try again.")
        return redirect("console:triggers")
    params = form.params
    if request.method == "POST":
        job = resend_job_create(params=params, actor=request.user,
                                include_delivered=request.POST.get("include_delivered") == "on")
        return redirect("console:job", pk=job.pk)
    return render_console(request, "console/resend_all_confirm.html", {
        "title": "Re-send every matching trigger", "params": params, "filter_words": describe_filter(params),
        "counts": chain_counts(trigger_filter(params)), "query": urlencode(params),
    })


# --- re-send jobs -----------------------------------------------------------------------------------


@console_view("flows.view_resendjob")
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = list(ResendJob.objects.select_related("created_by")[:100])
    for job in jobs:
        job.scope = describe_job(job)
    return render_console(request, "console/job_list.html", {"title": "Re-send jobs", "jobs": jobs})


@console_view("flows.view_resendjob")
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ResendJob.objects.select_related("created_by"), pk=pk)
    outcomes = resend_job_outcomes(job)
    pending = sum(n for status, n in outcomes.items() if status not in Trigger.FINAL)
    context = {"title": f"Re-send job {job.pk}", "job": job, "outcomes": outcomes, "pending": pending,
               "live": not job.is_final or pending > 0, "filter_query": urlencode(job.filters),
               "scope": describe_job(job), "skips": sorted(job.skips.items(), key=lambda kv: -kv[1])}
    template = "console/_job_live.html" if request.GET.get("partial") else "console/job_detail.html"
    return render_console(request, template, context)


# --- firing -----------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@console_view("flows.view_flow", "flows.fire_flow")
def flow_fire(request: HttpRequest, pk: int, source: str = Trigger.Source.CONSOLE) -> HttpResponse:
    flow = get_object_or_404(Flow.objects.select_related("org"), pk=pk)
    form = FireForm(request.POST or None, flow=flow)
    if request.method == "POST" and form.is_valid():
        inputs = form.inputs()
        if form.is_valid():  # inputs() may add collection errors
            try:
                trigger = services.trigger_create(flow=flow, inputs=inputs, source=source, actor=request.user)
            except InputValidationError as invalid:
                for name, problems in invalid.errors.items():
                    form.add_error(name if name in form.fields else None, problems)
            else:
                messages.success(request, f"Trigger {trigger.pk} queued.")
                return redirect("console:trigger", pk=trigger.pk)
    return render_console(request, "console/fire.html", {"title": f"Fire {flow.api_name}", "flow": flow,
                                                          "form": form})


# --- dashboard --------------------------------------------------------------------------------------


@console_view("flows.view_trigger")
def dashboard(request: HttpRequest) -> HttpResponse:
    """What needs a person now, then per org and per flow the last 24 hours and 7 days, as charts
    (flows/dashboard.py draws them)."""
    page = board.dashboard_page(board.clock(), deliveries=request.user.has_perm("flows.view_webhookdelivery"))
    return render_console(request, "console/dashboard.html", {
        "title": "Dashboard", "page": page, "statuses": Trigger.Status.choices,
    })
