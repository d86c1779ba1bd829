"""The policy form: what an admin types is checked on save, with one clear error per field.

The scheduler and the backup run read these fields at 3 a.m.; a cron expression
they cannot parse, a recipient that is not an age key or a storage that is not
configured would fail then, unseen, so each is refused here instead.
"""

from pathlib import Path
from typing import Any

import pyrage
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator

from apps.alerts.forms import LinesField
from apps.backups import schedule
from apps.backups.models import BackupPolicy

CRON_FIELDS = ("schedule", "verify_schedule", "drill_schedule")


def storage_choices() -> list[tuple[str, str]]:
    return [(name, f"{name} ({options['kind']})") for name, options in settings.BACKUP_STORAGES.items()]


def database_choices() -> list[tuple[str, str]]:
    return [
        (alias, f"{alias} ({options['ENGINE'].rsplit('.', 1)[-1]})") for alias, options in settings.DATABASES.items()
    ]


def parse_recipients(text: str) -> list[str]:
    """Each non-empty line as an age X25519 recipient; ValidationError naming every line that is not one."""
    recipients, bad = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            pyrage.x25519.Recipient.from_str(line)
        except pyrage.RecipientError:
            bad.append(f"line {number} ({line[:20]}{'…' if len(line) > 20 else ''})")
        else:
            recipients.append(line)
    if bad:
        hint = " It looks like a private key: paste the public one (age1...)." if "AGE-SECRET-KEY" in text else ""
        raise ValidationError(
            "Not age recipients: %(bad)s. A recipient is a public key starting with age1 "
            "(`manage.py backup keygen` makes one).%(hint)s",
            code="invalid_recipient",
            params={"bad": ", ".join(bad), "hint": hint},
        )
    return recipients


def check_path(text: str) -> str:
    """An absolute path, normalised; not inside the backup directory (a backup must not archive backups)."""
    if "\x00" in text or not Path(text).is_absolute():
        raise ValidationError(
            "%(path)s is not an absolute path (start it with /).", code="relative_path", params={"path": text}
        )
    path = Path(text).resolve()
    backup_dir = Path(settings.BACKUP_DIR).resolve()
    if path == backup_dir or backup_dir in path.parents or path in backup_dir.parents:
        raise ValidationError(
            "%(path)s holds or is inside the backup directory (%(dir)s): backups would archive backups.",
            code="backup_dir",
            params={"path": text, "dir": backup_dir},
        )
    return str(path)


class BackupPolicyForm(forms.ModelForm):
    databases = forms.MultipleChoiceField(
        choices=database_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "%(value)s is not a database alias of this portal (settings.DATABASES)."},
        help_text="Database aliases to dump (settings.DATABASES).",
    )
    paths = LinesField(required=False, help_text="More absolute paths (files or folders) to archive, one per line.")
    storage = forms.ChoiceField(
        choices=storage_choices,
        initial=BackupPolicy._meta.get_field("storage").default,
        error_messages={"invalid_choice": "%(value)s is not a configured storage (settings.BACKUP_STORAGES)."},
        help_text="Where the backups go: a storage named in BACKUP_STORAGES (s3 appears when BACKUP_S3_BUCKET is set).",
    )
    # Declared fields take nothing from the model: the add form shows the model's defaults through `initial`.
    compression_level = forms.IntegerField(
        initial=BackupPolicy._meta.get_field("compression_level").default,
        validators=[MinValueValidator(1), MaxValueValidator(19)],
        help_text="zstd level, 1 (fastest) to 19.",
    )
    verify_sample_percent = forms.IntegerField(
        initial=BackupPolicy._meta.get_field("verify_sample_percent").default,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Share of artifacts each scheduled verify reads (rotating), 1 to 100.",
    )

    class Meta:
        model = BackupPolicy
        fields = ["name", "enabled", "databases", "include_media", "paths", "schedule", "compression_level",
                  "recipients", "storage", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
                  "keep_yearly", "verify_after", "verify_schedule", "verify_sample_percent", "drill_schedule",
                  "max_age"]  # fmt: skip
        widgets = {"recipients": forms.Textarea(attrs={"rows": 3, "cols": 80, "spellcheck": "false"})}

    def clean_schedule(self) -> str:
        return self._cron("schedule", required=True)

    def clean_verify_schedule(self) -> str:
        return self._cron("verify_schedule", required=False)

    def clean_drill_schedule(self) -> str:
        return self._cron("drill_schedule", required=False)

    def _cron(self, field: str, *, required: bool) -> str:
        text = " ".join(self.cleaned_data[field].split())
        if text or required:
            schedule.validate(text)
        return text

    def clean_recipients(self) -> str:
        return "\n".join(parse_recipients(self.cleaned_data["recipients"]))

    def clean_paths(self) -> list[str]:
        errors, paths = [], []
        for text in self.cleaned_data["paths"]:
            try:
                paths.append(check_path(text))
            except ValidationError as error:
                errors.append(error)
        if errors:
            raise ValidationError(errors)
        return list(dict.fromkeys(paths))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not (data.get("databases") or data.get("include_media") or data.get("paths") or self.errors):
            raise ValidationError("Nothing to back up: choose a database, the media folder or a path.")
        return data
