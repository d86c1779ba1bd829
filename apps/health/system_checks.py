"""Django system checks for the health app (run by `manage.py check`)."""
