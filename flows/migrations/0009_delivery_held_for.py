from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("flows", "0008_delivery_guarantees"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookdelivery",
            name="held_for",
            field=models.CharField(
                blank=True, choices=[("inactive", "Flow or org inactive"), ("paused", "Org paused")], max_length=8,
                help_text="Why it is held: a delivery held for a pause is replayed automatically when the pause ends.",
            ),
        ),
    ]
