# Written by hand: makemigrations also picked up other models' pending changes, which are not this migration's.
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("flows", "0010_flowinput_format"),
    ]

    operations = [
        migrations.CreateModel(
            name="OrgUsageSample",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("used", models.PositiveIntegerField()),
                ("max", models.PositiveIntegerField()),
                ("seen_at", models.DateTimeField()),
                ("org", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                          related_name="usage_samples", to="flows.org")),
            ],
            options={
                "verbose_name": "org usage sample",
                "indexes": [models.Index(fields=["org", "seen_at"], name="org_usage_sample_seen")],
            },
        ),
    ]
