"""As bench.settings_full, without the audit trail: no triggers, no connection hook, no login throttle.

"apps.audit" leaves INSTALLED_APPS (so its AppConfig.ready() never connects the
capture hook, the sealing signals or the admin's audited User/Group classes, and
its tables are never created), and Django's own ModelBackend replaces the
throttled one. The apps built on the audit trail (apps.alerts records into it)
leave too. Everything else, middleware included, is the portal's.
"""

from bench.settings_full import *  # noqa: F403
from bench.settings_full import INSTALLED_APPS as FULL_APPS

INSTALLED_APPS = [name for name in FULL_APPS if name not in ("apps.audit", "apps.alerts")]
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
CELERY_BEAT_SCHEDULE = {name: entry for name, entry in CELERY_BEAT_SCHEDULE.items() if not name.startswith("alerts")}  # noqa: F405
