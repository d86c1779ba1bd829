"""WSGI entry point, for a WSGI server (gunicorn) serving HTTP only; static files in front of Django."""

import os

from django.core.wsgi import get_wsgi_application
from servestatic import ServeStatic

from apps.core.static import with_static_files

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")

application = with_static_files(get_wsgi_application(), ServeStatic)
