from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("flows", "0009_delivery_held_for"),
    ]

    operations = [
        migrations.AddField(
            model_name="flowinput",
            name="format",
            field=models.CharField(
                blank=True, choices=[("", "None"), ("email", "E-mail address"), ("e164", "Phone (E.164)")],
                default="", max_length=8,
                help_text="Text inputs only: values (each item of a collection) must be an e-mail address or an "
                          "E.164 phone number.",
            ),
        ),
    ]
