"""The default policy: the portal's own database and media, daily, keep 7 daily / 4 weekly / 6 monthly.

So `manage.py backup run` works in a fresh install. Unencrypted until an operator adds a recipient
(the admin, the health check and `manage.py check` say so).
"""

from django.db import migrations


def create(apps, schema_editor):
    BackupPolicy = apps.get_model("backups", "BackupPolicy")
    BackupPolicy.objects.get_or_create(
        name="default",
        defaults={
            "databases": ["default"],
            "include_media": True,
            "schedule": "0 3 * * *",
            "keep_daily": 7,
            "keep_weekly": 4,
            "keep_monthly": 6,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("backups", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
