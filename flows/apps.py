from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_migrate


def _create_cache_table(sender, **kwargs) -> None:
    # The default cache (shared by web, worker and command line without a Redis) is a database table;
    # creating it with the schema means `migrate` alone readies a new database.
    from django.conf import settings
    from django.core.management import call_command

    if any(c["BACKEND"].endswith("DatabaseCache") for c in settings.CACHES.values()):
        call_command("createcachetable", verbosity=0)


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flowgate"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from .roles import staff_for_role_members, sync_roles_after_migrate

        post_migrate.connect(_create_cache_table, sender=self)
        post_migrate.connect(sync_roles_after_migrate, sender=self)
        m2m_changed.connect(staff_for_role_members, sender=get_user_model().groups.through)
