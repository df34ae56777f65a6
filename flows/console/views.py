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
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from .. import services
from ..inputs import InputValidationError
from ..models import Flow, Org, ResendJob, Trigger
from ..resend_jobs import resend_job_create, resend_job_outcomes, triggers_resend
from ..selectors import flow_stats_last_day, trigger_filter, trigger_page, triggers_with_successful_resend
from .forms import FireForm, TriggerFilterForm

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
    form = TriggerFilterForm.from_request(request.GET)
    rows: list[Trigger] = []
    next_before = None
    params: dict[str, str] = {}
    if form.is_valid():
        params = form.params
        before = request.GET.get("before", "")
        rows, next_before = trigger_page(trigger_filter(params), before=int(before) if before.isascii() and before.isdigit() else None)
    query = urlencode(params)
    return render_console(request, "console/trigger_list.html", {
        "title": "Triggers", "form": form, "rows": rows, "query": query, "next_before": next_before,
        "first_page": bool(request.GET.get("before")), "already_resent": triggers_with_successful_resend(
            [t.pk for t in rows]),
        "can_resend": request.user.has_perm("flows.resend_trigger"),
        "here": request.get_full_path(),
    })


def _trigger_context(trigger: Trigger) -> dict[str, Any]:
    own, shared = trigger.exchanges.all(), trigger.batch_exchanges.all()  # shared: micro-batch calls
    return {
        "trigger": trigger,
        "exchanges": sorted([*own, *shared], key=lambda e: (e.created_at, e.pk)),
        "resends": list(trigger.resends.order_by("id")),
    }


@console_view("flows.view_trigger")
def trigger_detail(request: HttpRequest, pk: int) -> HttpResponse:
    trigger = get_object_or_404(Trigger.objects.select_related("flow__org", "actor", "resend_of"), pk=pk)
    return render_console(request, "console/trigger_detail.html", {
        "title": f"Trigger {trigger.pk}", **_trigger_context(trigger),
        "can_resend": request.user.has_perm("flows.resend_trigger"),
        "has_successful_resend": services.trigger_has_successful_resend(trigger),
    })


@console_view("flows.view_trigger")
def trigger_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The part of the trigger page that changes until the trigger is final; the page polls it."""
    trigger = get_object_or_404(Trigger.objects.select_related("flow__org"), pk=pk)
    return render(request, "console/_trigger_live.html", _trigger_context(trigger))


@require_POST
@console_view("flows.view_trigger", "flows.resend_trigger")
def trigger_resend(request: HttpRequest, pk: int) -> HttpResponse:
    trigger = get_object_or_404(Trigger.objects.select_related("flow__org"), pk=pk)
    if services.trigger_has_successful_resend(trigger) and request.POST.get("confirm") != "yes":
        return render_console(request, "console/resend_confirm.html", {
            "title": "Re-send again?", "trigger": trigger, "next": request.POST.get("next", ""),
            "successful": trigger.resends.filter(status=Trigger.Status.SUCCEEDED).order_by("id"),
        })
    try:
        resend = services.trigger_resend(trigger=trigger, actor=request.user)
    except InputValidationError as invalid:
        messages.error(request, f"Trigger {trigger.pk} cannot be re-sent: {invalid}")
        return redirect("console:trigger", pk=trigger.pk)
    messages.success(request, f"Trigger {trigger.pk} re-sent as trigger {resend.pk}.")
    return redirect("console:trigger", pk=resend.pk)


@require_POST
@console_view("flows.view_trigger", "flows.resend_trigger")
def triggers_resend_selected(request: HttpRequest) -> HttpResponse:
    ids = [int(i) for i in request.POST.getlist("ids") if i.isascii() and i.isdigit()][:MAX_SELECTED]
    back = _back(request, reverse("console:triggers"))
    triggers = list(Trigger.objects.filter(pk__in=ids).select_related("flow__org").order_by("-id"))
    if not triggers:
        messages.warning(request, "Select the triggers to re-send first.")
        return redirect(back)
    already = triggers_with_successful_resend([t.pk for t in triggers])
    confirm = request.POST.get("confirm")
    if already and confirm not in ("all", "skip"):
        return render_console(request, "console/resend_selected_confirm.html", {
            "title": "Some were re-sent successfully already", "triggers": triggers, "already": already,
            "others": len(triggers) - len(already), "next": back,
        })
    outcome = triggers_resend(triggers=triggers, actor=request.user, include_already_resent=confirm == "all")
    messages.success(request, f"Re-sent {len(outcome.resent)} trigger{'s' if len(outcome.resent) != 1 else ''}"
                              + (f"; skipped {len(outcome.skipped)}." if outcome.skipped else "."))
    for trigger, reason in outcome.skipped[:10]:
        messages.warning(request, f"Trigger {trigger.pk} skipped: {reason}")
    return redirect(back)


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
                                include_already_resent=request.POST.get("include_already_resent") == "on")
        return redirect("console:job", pk=job.pk)
    matching = trigger_filter(params)
    already = Trigger.objects.filter(resend_of__in=matching.values("pk"), status=Trigger.Status.SUCCEEDED)
    return render_console(request, "console/resend_all_confirm.html", {
        "title": "Re-send every matching trigger", "params": params, "count": matching.count(),
        "already_count": already.values("resend_of").distinct().count(), "query": urlencode(params),
    })


# --- re-send jobs -----------------------------------------------------------------------------------


@console_view("flows.view_resendjob")
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = ResendJob.objects.select_related("created_by")[:100]
    return render_console(request, "console/job_list.html", {"title": "Re-send jobs", "jobs": jobs})


@console_view("flows.view_resendjob")
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ResendJob.objects.select_related("created_by"), pk=pk)
    outcomes = resend_job_outcomes(job)
    pending = sum(n for status, n in outcomes.items() if status not in Trigger.FINAL)
    context = {"title": f"Re-send job {job.pk}", "job": job, "outcomes": outcomes, "pending": pending,
               "live": not job.is_final or pending > 0, "filter_query": urlencode(job.filters)}
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
    return render_console(request, "console/dashboard.html", {
        "title": "Dashboard", "flows": flow_stats_last_day(), "orgs": Org.objects.filter(is_active=True),
        "statuses": Trigger.Status.choices,
    })
