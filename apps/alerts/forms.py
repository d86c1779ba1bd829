"""Admin forms of the alerts app: what a person types is checked here, with one clear error per field.

The engine (routing, silences) skips a rule it cannot read rather than fail, so
a bad regex or an unknown severity must be caught on save, not found at 3 a.m.
"""

import re
from datetime import timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from apps.alerts import matchers, silences
from apps.alerts.models import NotificationChannel, Route, Severity, Silence
from apps.alerts.transports import ChannelError, webhook
from apps.core import standard_webhooks
from apps.core.outbound import validate_outbound_url

DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhd])\s*$", re.IGNORECASE)
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
MAX_SILENCE = timedelta(days=366)


def parse_duration(text: str) -> timedelta:
    """30m, 2h, 1d as a timedelta; ValueError with a message for anything else."""
    found = DURATION.match(str(text))
    if not found or int(found.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration: write minutes, hours or days, e.g. 30m, 2h, 1d")
    duration = timedelta(**{DURATION_UNITS[found.group(2).lower()]: int(found.group(1))})
    if duration > MAX_SILENCE:
        raise ValueError(f"{text!r} is longer than a year")
    return duration


def exact_matcher(name: str, value: str) -> str:
    """A matcher for name == value, whatever value holds (`key=~x` would read as a regex, so escape that one)."""
    if value.startswith("~"):
        return f"{name}=~{re.escape(value)}"
    return f"{name}={value}"


class LinesField(forms.CharField):
    """A list of strings, typed one per line."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 60})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list | tuple):
            return [str(item).strip() for item in value if str(item).strip()]
        text = super().to_python(value)
        return [line.strip() for line in text.splitlines() if line.strip()]

    def has_changed(self, initial: Any, data: Any) -> bool:
        return self.to_python(initial or []) != self.to_python(data)


def clean_matchers(texts: list[str]) -> list[str]:
    try:
        return [str(rule) for rule in matchers.parse_all(texts)]
    except matchers.MatcherError as exc:
        raise ValidationError(str(exc), code="matcher") from None


MATCHERS_HELP = (
    "One per line: name=value, name!=value, name=~regex or name!~regex (a regex matches the whole value). "
    "A name is source, key, severity or a label."
)


class NotificationChannelForm(forms.ModelForm):
    # A plain text field: Django's URL validator refuses some hosts the outbound check allows (and the other
    # way round); the outbound check is the one that knows where the portal may send.
    url = forms.CharField(
        required=False,
        max_length=1000,
        label="URL",
        widget=forms.TextInput(attrs={"class": "vURLField"}),
        help_text='Slack or webhook: the URL to POST to. Private and loopback addresses need "internal destination".',
    )
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text='Webhook: the Standard Webhooks secret, "whsec_" followed by base64; generated when left empty.',
    )
    headers = forms.JSONField(
        required=False,
        initial=dict,
        help_text='Webhook: extra HTTP headers as a JSON object, e.g. {"Authorization": "Bearer ..."}.',
    )

    class Meta:
        model = NotificationChannel
        fields = ["name", "kind", "enabled", "recipients", "url", "internal", "secret", "headers",
                  "rate_limit_per_minute"]  # fmt: skip

    def clean_recipients(self) -> str:
        addresses = [part.strip() for part in re.split(r"[,;\s]+", self.cleaned_data["recipients"]) if part.strip()]
        bad = []
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if bad:
            raise ValidationError(
                "Not valid e-mail addresses: %(bad)s.", code="invalid_email", params={"bad": ", ".join(bad)}
            )
        return "\n".join(addresses)

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"].strip()
        if not secret:
            return ""
        try:
            standard_webhooks.secret_key(secret)
        except ValueError:
            raise ValidationError(
                'A secret is "%(prefix)s" followed by the base64 of at least %(bytes)s random bytes; leave it '
                "empty to have one generated.",
                code="invalid_secret",
                params={"prefix": standard_webhooks.SECRET_PREFIX, "bytes": standard_webhooks.MIN_SECRET_BYTES},
            ) from None
        return secret

    def clean_headers(self) -> dict[str, str]:
        headers = self.cleaned_data["headers"]
        if headers in (None, ""):
            return {}
        try:  # the transport's own rules, so that what is saved is what it will send
            return webhook.custom_headers(headers)
        except ChannelError as error:
            raise ValidationError(f"{str(error)[:1].upper()}{str(error)[1:]}.", code="headers") from None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        if kind == NotificationChannel.Kind.EMAIL and "recipients" in data and not data["recipients"]:
            self.add_error("recipients", "An e-mail channel needs at least one address.")
        if kind in (NotificationChannel.Kind.SLACK, NotificationChannel.Kind.WEBHOOK) and "url" in data:
            self._check_url(data)
        if kind == NotificationChannel.Kind.WEBHOOK and "secret" in data and not data["secret"]:
            data["secret"] = standard_webhooks.new_secret()  # now, so that the receiver can be told before a send
        return data

    def _check_url(self, data: dict[str, Any]) -> None:
        url = data["url"].strip()
        if not url:
            self.add_error("url", "A Slack or webhook channel needs a URL.")
            return
        try:
            validate_outbound_url(url, allow_internal=bool(data.get("internal")))
        except ValidationError as error:
            self.add_error("url", error)
            return
        data["url"] = url


class RouteForm(forms.ModelForm):
    severities = forms.MultipleChoiceField(
        choices=Severity.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Severities it matches; none ticked: any.",
    )
    matchers = LinesField(required=False, help_text=f"All must match. {MATCHERS_HELP}")
    group_by = LinesField(
        required=False,
        help_text="Label names, one per line: alerts with the same values of these go out as one notification.",
    )

    class Meta:
        model = Route
        fields = ["name", "position", "is_default", "severities", "matchers", "policy", "group_by",
                  "group_wait_seconds", "repeat_interval_minutes"]  # fmt: skip

    def clean_matchers(self) -> list[str]:
        return clean_matchers(self.cleaned_data["matchers"])

    def clean_group_by(self) -> list[str]:
        names = self.cleaned_data["group_by"]
        bad = [name for name in names if not matchers.LABEL_NAME.fullmatch(name)]
        if bad:
            raise ValidationError(
                "Not label names: %(bad)s (a letter or _, then letters, digits, _ . : -).",
                code="label_name",
                params={"bad": ", ".join(bad)},
            )
        return list(dict.fromkeys(names))

    def clean_is_default(self) -> bool:
        is_default = self.cleaned_data["is_default"]
        others = Route.objects.filter(is_default=True).exclude(pk=self.instance.pk)
        if is_default and others.exists():
            raise ValidationError(
                "There is already a default route (%(name)s); untick it there first.",
                code="one_default",
                params={"name": others.first().name},
            )
        return is_default


class SilenceForm(forms.ModelForm):
    matchers = LinesField(help_text=f"All must match. {MATCHERS_HELP}")

    class Meta:
        model = Silence
        fields = ["matchers", "starts_at", "ends_at", "repeat", "repeat_until", "comment"]

    def clean_matchers(self) -> list[str]:
        return clean_matchers(self.cleaned_data["matchers"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        starts, ends, repeat = data.get("starts_at"), data.get("ends_at"), data.get("repeat")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", "The end must be after the start.")
        if starts and data.get("repeat_until") and data["repeat_until"] <= starts:
            self.add_error("repeat_until", "Repeat until must be after the start.")
        if data.get("repeat_until") and not repeat:
            self.add_error("repeat_until", "Only a repeating silence has an end of its repeats.")
        period = silences.PERIOD.get(repeat)
        if starts and ends and period and ends - starts >= period:
            self.add_error("ends_at", "A repeating window must be shorter than its period.")
        return data


class SilenceForForm(forms.Form):
    """The "silence for..." step of the alert list's bulk action."""

    duration = forms.CharField(max_length=10, initial="2h", help_text="30m, 2h, 1d ...")
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)

    def clean_duration(self) -> timedelta:
        try:
            return parse_duration(self.cleaned_data["duration"])
        except ValueError as exc:
            raise ValidationError(str(exc), code="duration") from None
