"""The default policy (apps/backups/default_policy.py), so `manage.py backup run` works in a fresh install."""

from django.db import migrations

from apps.backups import default_policy


def create(apps, schema_editor):
    default_policy.create(apps.get_model("backups", "BackupPolicy"), schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [("backups", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
