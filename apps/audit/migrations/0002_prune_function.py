from django.db import migrations

from apps.audit.capture import postgresql


def install_prune_function(apps, schema_editor):
    """PostgreSQL: the prune function and the role it runs as (needs a superuser or CREATEROLE once)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(postgresql.PRUNE_FUNCTION, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install_prune_function, migrations.RunPython.noop)]
