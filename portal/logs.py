"""Log filters for the project's loggers (settings.LOGGING)."""

from __future__ import annotations

import logging


class ForbiddenWithoutTraceback(logging.Filter):
    """On django.request: a 403 is an answer, not a fault. Django logs a raised PermissionDenied with its
    traceback; this keeps the one warning line and adds who was refused, so a log shows who tried what."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Once per record: logging configured again (Celery does) attaches a second instance of this filter.
        if getattr(record, "status_code", None) == 403 and not getattr(record, "forbidden_noted", False):
            record.forbidden_noted = True
            record.exc_info = None
            record.exc_text = None
            request = getattr(record, "request", None)
            user = getattr(request, "user", None)
            who = user.get_username() if user is not None and user.is_authenticated else "anonymous"
            record.msg = f"{record.msg} (user %s)"
            record.args = (*(record.args or ()), who)
        return True
