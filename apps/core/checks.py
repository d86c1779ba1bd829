"""System checks that refuse a production start with a development default left in place."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security)
def production_defaults(app_configs: object, **kwargs: object) -> list[Error]:
    errors = []
    production = settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3" or settings.REDIS_URL
    if production and not settings.SECRET_KEY_FROM_ENV:
        errors.append(
            Error(
                "SECRET_KEY is not set: production mode (DATABASE_URL or REDIS_URL set) needs one shared key.",
                hint="Set SECRET_KEY (or SECRET_KEY_FILE) to a long random value, the same for every process.",
                id="opsportal.E001",
            )
        )
    if settings.DEBUG and production:
        errors.append(
            Error(
                "DEBUG is on in production mode: tracebacks and settings would be shown to anyone.",
                hint="Unset DEBUG.",
                id="opsportal.E002",
            )
        )
    if "*" in settings.ALLOWED_HOSTS:
        errors.append(
            Error(
                "ALLOWED_HOSTS contains '*': Host headers, and the WebSocket origin check, accept anything.",
                hint="List the host names users reach the portal at.",
                id="opsportal.E003",
            )
        )
    return errors
