"""Backups and drills: records, read-only in the admin.

A backup row is history: nobody edits it, and "delete" removes its stored files
through the service (audited) while the row stays to say what there was. Its
files can be downloaded one by one by people with `backups.download_backup`;
every download is in the audit trail.
"""

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html

from apps.audit.services import record
from apps.backups import services
from apps.backups.errors import BackupError
from apps.backups.models import Backup, Drill, Status
from apps.backups.storage import get_storage
from apps.core.readonly import ReadOnlyAdminMixin

DOWNLOAD_PERMISSION = "backups.download_backup"
MANIFEST_FILES = ("manifest.json", "manifest.copy.json")


class BackupsMedia:
    css = {"all": ["opsportal/backups.css"]}
    js = ["dashboard/socket.js", "opsportal/backups.js"]  # the live progress panel


def badge(kind: str, value: str, label: str = "") -> str:
    return format_html('<span class="backup-badge backup-{}-{}">{}</span>', kind, value, label or value)


def plural(count: int, word: str, words: str = "") -> str:
    return f"{count} {word if count == 1 else words or word + 's'}"


def stored_file_names(backup: Backup) -> list[str]:
    """The files a backup's page may offer: its manifest's artifacts (plain names only) and the manifest."""
    names = [artifact.get("name") for artifact in (backup.manifest or {}).get("artifacts", [])]
    plain = [name for name in names if isinstance(name, str) and name and "/" not in name and name[0] != "."]
    return [*plain, *MANIFEST_FILES]


# ---------------------------------------------------------------- backups


@admin.register(Backup)
class BackupAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    change_list_template = "admin/backups/backup/change_list.html"
    change_form_template = "admin/backups/backup/change_form.html"
    list_display = ["started_at", "policy", "status_badge", "verification_badge", "trigger", "size", "encrypted",
                    "duration", "pruned_at"]  # fmt: skip
    list_filter = ["policy", "status", "verification", "trigger", "encrypted"]
    list_select_related = ["policy"]
    search_fields = ["location", "policy__name"]
    date_hierarchy = "started_at"
    show_full_result_count = False
    actions = ["verify", "delete_files"]
    fieldsets = [
        (None, {"fields": ["policy", "status", "trigger", "created_by", "started_at", "finished_at", "duration",
                           "error"]}),
        ("Stored", {"fields": ["storage", "location", "size", "encrypted", "manifest_sha256", "pruned_at"]}),
        ("Verification", {"fields": ["verification", "verified_at", "verify_error"]}),
    ]  # fmt: skip
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]
    Media = BackupsMedia

    def has_verify_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("backups.change_backup")

    def has_delete_files_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("backups.delete_backup")

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the row stays: delete_files removes what it points to
        return actions

    @admin.display(description="status", ordering="status")
    def status_badge(self, backup: Backup) -> str:
        return badge("status", backup.status)

    @admin.display(description="verification", ordering="verification")
    def verification_badge(self, backup: Backup) -> str:
        return badge("verification", backup.verification)

    @admin.display(description="size", ordering="size_bytes")
    def size(self, backup: Backup) -> str:
        return filesizeformat(backup.size_bytes) if backup.size_bytes else "—"

    # ------------------------------------------------------------ actions

    @admin.action(description="Verify the selected backups (re-read every artifact)", permissions=["verify"])
    def verify(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Synchronous: one backup's checksums, read back at disk or network speed, for the person waiting."""
        ok, failed = 0, []
        for backup in queryset.filter(status=Status.SUCCEEDED, pruned_at__isnull=True).order_by("pk"):
            result = services.verify(backup, actor=request.user)
            if result.ok:
                ok += 1
            else:
                failed.append(f"{backup}: {'; '.join(result.errors)}")
        skipped = queryset.count() - ok - len(failed)
        note = f" ({plural(skipped, 'was', 'were')} not succeeded or already pruned)" if skipped else ""
        self.message_user(request, f"{plural(ok, 'backup')} verified OK{note}.")
        for line in failed:
            self.message_user(request, f"Verification FAILED: {line}", messages.ERROR)

    @admin.action(description="Delete the stored files of the selected backups", permissions=["delete_files"])
    def delete_files(self, request: HttpRequest, queryset: QuerySet) -> None:
        deleted = 0
        for backup in queryset.filter(pruned_at__isnull=True).exclude(status=Status.RUNNING).order_by("pk"):
            try:
                services.delete(backup, actor=request.user)
            except BackupError as error:
                self.message_user(request, f"{backup}: {error}", messages.ERROR)
            else:
                deleted += 1
        self.message_user(request, f"Deleted the files of {plural(deleted, 'backup')}; the records stay.")

    # ------------------------------------------------------------ the backup's page and its downloads

    def get_urls(self) -> list:
        download = self.admin_site.admin_view(self.download_view)
        name = "backups_backup_download"
        # <path:name>: any name reaches the view (a "/" in it too) and is answered there, 404 unless it is one
        # of the backup's files, instead of falling through to APPEND_SLASH's redirect.
        return [path("<int:object_id>/download/<path:name>", download, name=name), *super().get_urls()]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        backup = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if backup is not None:
            extra["manifest"] = describe_manifest(backup, downloadable=self._downloadable(request, backup))
            extra["drills"] = backup.drills.order_by("-started_at")[:20]
        return super().change_view(request, object_id, form_url, extra)

    def _downloadable(self, request: HttpRequest, backup: Backup) -> bool:
        return request.user.has_perm(DOWNLOAD_PERMISSION) and backup.status == Status.SUCCEEDED and not backup.pruned_at

    def download_view(self, request: HttpRequest, object_id: int, name: str) -> HttpResponse:
        """Stream one stored file (an artifact or the manifest) as it is stored: compressed, encrypted if it was."""
        backup = get_object_or_404(Backup, pk=object_id)
        if not self.has_view_permission(request, backup) or not request.user.has_perm(DOWNLOAD_PERMISSION):
            raise PermissionDenied
        # Only a name of the backup's own files (equal to one from its manifest) reaches the storage key.
        if not self._downloadable(request, backup) or name not in stored_file_names(backup):
            raise Http404("No such file in this backup (or its files were deleted).")
        storage, key = get_storage(backup.storage), f"{backup.location}/{name}"
        try:
            size, stream = storage.size(key), storage.open(key)
        except (BackupError, OSError) as error:
            raise Http404(f"The stored file cannot be read: {error}") from None
        record("backup.download", resource=backup, details={"file": name, "size": size}, actor=request.user)
        response = FileResponse(stream, as_attachment=True, filename=name, content_type="application/octet-stream")
        response["Content-Length"] = str(size)
        return response


def describe_manifest(backup: Backup, *, downloadable: bool) -> dict[str, Any]:
    """What the backup's page shows of its manifest: artifacts with sizes and links, tools, migrations."""
    manifest = backup.manifest or {}
    artifacts = []
    for artifact in manifest.get("artifacts", []):
        name = artifact.get("name", "")
        files = artifact.get("files") or {}
        artifacts.append({
            **artifact,
            "size_text": filesizeformat(artifact.get("size", 0)),
            "raw_size_text": filesizeformat(artifact.get("raw_size", 0)),
            "table_count": len(artifact.get("tables") or {}),
            "row_count": sum((artifact.get("tables") or {}).values()),
            "file_count": files.get("count"),
            "url": reverse("admin:backups_backup_download", args=[backup.pk, name]) if downloadable else "",
        })  # fmt: skip
    manifest_url = reverse("admin:backups_backup_download", args=[backup.pk, MANIFEST_FILES[0]]) if downloadable else ""
    return {
        "artifacts": artifacts,
        "tools": sorted((manifest.get("tools") or {}).items()),
        "migrations": len(manifest.get("migrations") or []),
        "compression": manifest.get("compression") or {},
        "recipients": manifest.get("recipients") or [],
        "url": manifest_url,
        "present": bool(manifest),
    }


# ---------------------------------------------------------------- drills


@admin.register(Drill)
class DrillAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    change_form_template = "admin/backups/drill/change_form.html"
    list_display = ["started_at", "policy", "backup", "status_badge", "trigger", "checks_passed", "duration"]
    list_filter = ["policy", "status", "trigger"]
    list_select_related = ["policy", "backup"]
    show_full_result_count = False
    fields = ["policy", "backup", "status", "trigger", "created_by", "started_at", "finished_at", "duration", "error"]
    readonly_fields = fields
    Media = BackupsMedia

    @admin.display(description="status", ordering="status")
    def status_badge(self, drill: Drill) -> str:
        return badge("status", drill.status)

    @admin.display(description="checks passed")
    def checks_passed(self, drill: Drill) -> str:
        checks = drill.checks or []
        return f"{sum(1 for check in checks if check.get('ok'))} / {len(checks)}" if checks else "—"
