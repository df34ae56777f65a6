"""Which hosts may receive a secret: Salesforce's API hosts (salesforce-api.md section 6) over HTTPS,
plus the host[:port] entries of FLOWGATE_EXTRA_SALESFORCE_HOSTS (a local emulator), which alone may use http."""


from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

_NAME = r"[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?"
_PARTITION = r"(?:\.(?:sandbox|develop|scratch|patch|demo|trailblaze|free))?"
SALESFORCE_API_HOST = re.compile(
    rf"^{_NAME}{_PARTITION}\.(?:my\.salesforce\.com|my\.salesforce\.mil|my\.sfcrmproducts\.cn)$"
    rf"|^{_NAME}\.my-salesforce\.com$"
)

ACCEPTED_FORMS = (
    "https://NAME.my.salesforce.com (production), https://NAME--SANDBOX.sandbox.my.salesforce.com (sandbox), "
    "https://NAME.develop.my.salesforce.com (also scratch, patch, demo, trailblaze, free), "
    "https://NAME.my.salesforce.mil (Government Cloud), https://NAME.my.sfcrmproducts.cn (China); "
    "not login.salesforce.com, test.salesforce.com, *.lightning.force.com, *.my.site.com or the setup domain"
)


class DisallowedHost(Exception):
    """A URL that must not receive a Salesforce secret."""


def extra_hosts() -> set[str]:
    return {host.strip().lower() for host in settings.FLOWGATE_EXTRA_SALESFORCE_HOSTS if host.strip()}


def check_url(url: str) -> str:
    """Returns the URL's origin (scheme://host[:port]) when it may receive secrets, else raises DisallowedHost."""
    # Parsers disagree on odd URLs (a fragment hiding "@evil.com", a tab in the host, a Kelvin sign that
    # lower-cases to "k"): accept only plain printable ASCII, so what is checked is what requests will reach.
    if any(not 33 <= ord(char) <= 126 for char in url) or "#" in url:
        raise DisallowedHost(f"{url[:200]!r} has spaces, control, non-ASCII or '#' characters; give the plain URL.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DisallowedHost(f"{url!r} is not a valid URL.") from None
    host = (parts.hostname or "").lower()
    host_port = f"{host}:{port}" if port else host
    if parts.username or parts.password:
        raise DisallowedHost("A Salesforce URL must not carry a user name or password.")
    extras = extra_hosts()
    # An extra entry without a port allows that host on any port (a test emulator on a free port).
    if (host_port in extras or host in extras) and parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{host_port}"
    if parts.scheme != "https":
        raise DisallowedHost(f"{url!r} must use https. Accepted forms: {ACCEPTED_FORMS}.")
    if not SALESFORCE_API_HOST.match(host) or port not in (None, 443):
        raise DisallowedHost(f"{host_port or url!r} is not a Salesforce API host. Accepted forms: {ACCEPTED_FORMS}.")
    return f"https://{host}"


def validate_my_domain_url(url: str) -> None:
    """Model validator for Org.my_domain_url: an origin only (no path), on an allowed host."""
    try:
        check_url(url)
    except DisallowedHost as error:
        raise ValidationError(str(error)) from None
    path = urlsplit(url).path
    if path not in ("", "/") or urlsplit(url).query:
        raise ValidationError("Give the My Domain URL only, without a path: e.g. https://acme.my.salesforce.com.")
