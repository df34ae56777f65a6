"""Reads: what entry points show of the rows."""

from __future__ import annotations

from typing import Any

from .models import Trigger


def trigger_as_dict(trigger: Trigger) -> dict[str, Any]:
    error = None
    if trigger.error_code or trigger.error_message:
        error = {"code": trigger.error_code, "message": trigger.error_message, "hint": trigger.hint}
    return {
        "id": trigger.pk,
        "status": trigger.status,
        "attempts": trigger.attempts,
        "outputs": trigger.outputs,
        "error": error,
    }
