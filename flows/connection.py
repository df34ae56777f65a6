"""Test an org's connection: a fresh token, the API versions it offers, its API usage."""

from __future__ import annotations

from dataclasses import dataclass, field

from .crypto import DecryptionError
from .models import Org
from .salesforce import SalesforceClient, SalesforceError
from .salesforce import tokens

# Salesforce ships three releases a year: nine versions back is about three years.
VERSIONS_PER_THREE_YEARS = 9


@dataclass
class ConnectionReport:
    org: Org
    ok: bool = False
    latest_version: str = ""
    offered_versions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    api_usage: tuple[int, int] | None = None
    error: SalesforceError | None = None


def org_test_connection(*, org: Org) -> ConnectionReport:
    """Makes a real token request (not a cached token), then lists versions and reads the limits."""
    report = ConnectionReport(org=org)
    client = SalesforceClient(org)
    try:
        tokens.forget_all(client.app)
        client.fetch_token()
        versions = client.list_versions()
        report.offered_versions = [str(v.get("version")) for v in versions if v.get("version")]
        if report.offered_versions:
            report.latest_version = "v" + max(report.offered_versions, key=float)
        _check_version(org, report)
        daily = client.limits().get("DailyApiRequests") or {}
        if isinstance(daily.get("Max"), int) and isinstance(daily.get("Remaining"), int):
            report.api_usage = (daily["Max"] - daily["Remaining"], daily["Max"])
    except SalesforceError as error:
        report.error = error
    except DecryptionError as error:
        report.error = SalesforceError("DECRYPTION_FAILED", str(error), permanent=True,
                                       hint="Enter the consumer key and secret again.")
    report.ok = report.error is None
    return report


def _check_version(org: Org, report: ConnectionReport) -> None:
    configured = org.api_version.lstrip("v")
    if report.offered_versions and configured not in report.offered_versions:
        report.warnings.append(
            f"The org does not offer API version {org.api_version}: choose one it offers, e.g. "
            f"{report.latest_version}."
        )
    if report.latest_version and float(report.latest_version[1:]) - float(configured) >= VERSIONS_PER_THREE_YEARS:
        report.warnings.append(
            f"API version {org.api_version} is more than three years old; Salesforce retires old versions. "
            f"Move to {report.latest_version}."
        )
