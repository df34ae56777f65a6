"""The pages people see when they are refused: in the admin's and the console's look, with a way back."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme

CSRF_REASON = (
    "The form could not be checked: it may have been open too long, or this browser blocks cookies for this site. "
    "Go back, reload the page and send it again."
)


def _render_forbidden(request: HttpRequest, reason: str) -> HttpResponse:
    user = request.user if hasattr(request, "user") else None
    in_console = request.path.startswith("/console/") and user is not None and user.is_staff
    back = request.META.get("HTTP_REFERER", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        back = ""
    context = {
        **admin.site.each_context(request),
        "base_template": "console/base.html" if in_console else "admin/base_site.html",
        "title": "Not allowed",
        "reason": reason,
        "back": back,
        "groups": [group.name for group in user.groups.all()] if user is not None and user.is_authenticated else [],
    }
    response = TemplateResponse(request, "403.html", context, status=403)
    return response.render()


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403: the reason a view gave, when it gave one a person can act on."""
    reason = str(exception) if exception is not None and str(exception) else (
        "Your account does not have the permission this page needs."
    )
    return _render_forbidden(request, reason)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the same page, with what to do instead of the middleware's technical reason."""
    return _render_forbidden(request, CSRF_REASON)
