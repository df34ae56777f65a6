import json
from typing import Any

from django import template

register = template.Library()


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
