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


ROLE_GROUPS = (ADMINS, SUPPORT)


def staff_for_role_members(sender: Any, instance: Any, action: str, pk_set: set[int] | None, **kwargs: Any) -> None:
    """m2m_changed on User.groups: the admin and the console let only staff in, so whoever joins Support or
    Flowgate admins (from the user's page or the group's side) becomes staff and can log in at once."""
    if action != "post_add" or not pk_set:
        return
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    User = get_user_model()
    if isinstance(instance, Group):
        if instance.name in ROLE_GROUPS:
            User.objects.filter(pk__in=pk_set, is_staff=False).update(is_staff=True)
    elif not instance.is_staff and Group.objects.filter(pk__in=pk_set, name__in=ROLE_GROUPS).exists():
        User.objects.filter(pk=instance.pk).update(is_staff=True)
        instance.is_staff = True


def login_problem(user: Any) -> str | None:
    """Why this person cannot use Flowgate, in the words the admin's user page shows; None when they can."""
    if user.is_superuser and user.is_active and user.is_staff:
        return None
    in_role = user.groups.filter(name__in=ROLE_GROUPS).exists()
    if not user.is_active:
        return "cannot log in: Active is off."
    if not in_role and not user.is_superuser:
        return (f"is in neither {SUPPORT} nor {ADMINS}: add them to one of these groups so they can log in and "
                f"see Flowgate.")
    if not user.is_staff:
        return "cannot log in: Staff status is off (the admin and the console let only staff in). Turn it on."
    return None
