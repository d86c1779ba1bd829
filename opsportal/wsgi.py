"""WSGI entry point, for a WSGI server (gunicorn) serving HTTP only."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")

application = get_wsgi_application()
