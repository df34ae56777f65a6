"""The two roles. Flowgate admins may do everything; Support sees orgs and flows (never credentials), triggers,
exchanges and webhook deliveries, fires flows and re-sends triggers.

Applied by a data migration and again after every `migrate`, so permissions of models added later reach the
admins without another hand-written migration.
"""

from __future__ import annotations

from typing import Any

ADMINS = "Flowgate admins"
SUPPORT = "Support"

SUPPORT_PERMISSIONS = {
    ("flows", "view_org"),
    ("flows", "view_flow"),
    ("flows", "view_flowinput"),
    ("flows", "view_trigger"),
    ("flows", "view_exchange"),
    ("flows", "view_resendjob"),
    ("flows", "add_resendjob"),
    ("flows", "fire_flow"),
    ("flows", "resend_trigger"),
    ("flows", "view_webhookdelivery"),  # deliveries hold no secrets (the signature is redacted)
    ("flows", "replay_webhookdelivery"),
}
# Permissions that only admins may ever hold: a credential page must answer 403 to support.
CREDENTIAL_MODELS = {"externalclientapp", "apikey", "shopifywebhook"}


def sync_roles(Group: Any, Permission: Any) -> None:
    """Takes the model classes as arguments so a migration can pass its historical ones."""
    admins, _ = Group.objects.get_or_create(name=ADMINS)
    support, _ = Group.objects.get_or_create(name=SUPPORT)
    flowgate = Permission.objects.filter(content_type__app_label="flows")
    users = Permission.objects.filter(content_type__app_label="auth")
    admins.permissions.add(*flowgate, *users)
    wanted = [
        p for p in flowgate.select_related("content_type")
        if (p.content_type.app_label, p.codename) in SUPPORT_PERMISSIONS
    ]
    support.permissions.set(wanted)


def sync_roles_after_migrate(sender: Any, **kwargs: Any) -> None:
    from django.contrib.auth.models import Group, Permission

    sync_roles(Group, Permission)
