from apps.hooks import admin_heartbeats  # noqa: F401 - registers its ModelAdmin
