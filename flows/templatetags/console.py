import datetime as dt
import json
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()

# One way to show a moment, in the console and the admin alike (the admin's through portal/formats/en): local time
# to the minute with its zone; the exact time (seconds and milliseconds) on hover.
SHOWN = "%Y-%m-%d %H:%M %Z"
EXACT = "%Y-%m-%d %H:%M:%S.%f"


@register.filter
def when(value: dt.datetime | None) -> str:
    if not value:
        return "–"
    local = timezone.localtime(value)
    exact = f"{local.strftime(EXACT)[:-3]} {local.strftime('%Z')}"
    return format_html('<time datetime="{}" title="{}">{}</time>', local.isoformat(), exact, local.strftime(SHOWN))


@register.filter
def usage(value: Any) -> str:
    """API usage against the daily limit (an org, or a (used, limit) pair), in one format wherever it is shown:
    "29 of 100,000 (0.03 %)"."""
    used, limit = value if isinstance(value, (tuple, list)) else (value.api_usage_used, value.api_usage_max)
    if limit is None:
        return "not seen yet"
    if not limit:
        return f"{used or 0:,} of {limit:,}"
    share = (used or 0) / limit * 100
    return f"{used or 0:,} of {limit:,} ({share:.{0 if share >= 10 else 1 if share >= 1 else 2}f} %)"


@register.filter
def pretty_json(value: Any) -> str:
    """Bodies and headers as indented JSON when they are JSON; other text as it is."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2, ensure_ascii=False)
    if not value:
        return ""
    try:
        return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


@register.filter
def input_value(value: Any) -> str:
    """An input value as it is sent: strings bare, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@register.filter
def get_item(mapping: dict, key: Any) -> Any:
    return mapping.get(key, 0) if mapping else 0


@register.filter
def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


@register.filter
def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


@register.filter
def network_summary(network_error: str) -> str:
    """The kind of network failure an Exchange recorded ("ReadTimeout", "ConnectionError"), without the
    exception's text: the page says what happened, the technical detail stays folded away."""
    return network_error.split(":", 1)[0].strip() if network_error else ""
