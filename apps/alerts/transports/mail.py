"""E-mail through Django's mail API and the EMAIL_* settings.

With EMAIL_USE_TLS a server that does not offer STARTTLS makes Django's SMTP
backend raise: that is a failed attempt, never a message sent in plain text.
"""

import hashlib
import re
import smtplib
import ssl
from email.utils import parseaddr

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email

from apps.alerts.models import Notification, NotificationChannel
from apps.alerts.transports.base import ChannelError, Outcome, Transport

SEPARATORS = re.compile(r"[\s,;]+")


class EmailTransport(Transport):
    kind = NotificationChannel.Kind.EMAIL

    def send(self, notification: Notification) -> Outcome:
        message = EmailMessage(
            subject=" ".join(notification.payload["title"].split()),  # a header: one line
            body=notification.payload["text"],
            to=recipients(self.channel.recipients),
            headers={"Message-ID": message_id(notification.key)},
            connection=get_connection(fail_silently=False),
        )
        try:
            message.send()
        except smtplib.SMTPResponseException as error:  # the server answered with an error code
            reply = f"SMTP {error.smtp_code}: {_text(error.smtp_error)}"
            if error.smtp_code >= 500:
                return Outcome.permanent(reply, status=error.smtp_code)
            return Outcome.transient(reply, status=error.smtp_code)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _reply in error.recipients.values()]
            refused = f"recipients refused: {', '.join(sorted(error.recipients))}"
            if all(code >= 500 for code in codes):
                return Outcome.permanent(refused, status=max(codes))
            return Outcome.transient(refused, status=min(codes))
        except smtplib.SMTPNotSupportedError as error:  # STARTTLS asked for, not offered
            return Outcome.permanent(f"{error} (EMAIL_USE_TLS is on: no plain-text fallback)")
        except ssl.SSLCertVerificationError as error:
            return Outcome.permanent(f"the mail server's certificate is not trusted: {error.verify_message}")
        except (smtplib.SMTPException, OSError) as error:  # disconnected, timed out, refused: may pass
            return Outcome.transient(f"sending mail failed: {error or type(error).__name__}")
        return Outcome.success()


def recipients(text: str) -> list[str]:
    """The addresses in a channel's recipients (one per line, or separated by commas)."""
    addresses = [address for address in SEPARATORS.split(text) if address]
    if not addresses:
        raise ChannelError("the channel has no recipients")
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            raise ChannelError(f"{address!r} is not an e-mail address") from None
    return addresses


def message_id(key: str) -> str:
    """The same Message-ID on every attempt, so mail clients and archives keep one copy of a retried message."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "opsportal.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}.alerts@{domain}>"


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
