"""Backups in the admin: policies (edited, with "run now", "verify" and "drill now"), and the records they
make (backups and drills, read-only), with live progress of what is running."""

from apps.backups.admin import policies, records  # noqa: F401 - each registers its ModelAdmins
