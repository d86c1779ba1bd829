from django.contrib.admin.apps import AdminConfig


class OpsportalAdminConfig(AdminConfig):
    """django.contrib.admin with the portal's own site (opsportal.admin)."""

    default_site = "opsportal.admin.OpsportalAdminSite"
