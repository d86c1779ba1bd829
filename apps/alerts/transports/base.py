"""What every transport shares: the outcome of one attempt, and the base class."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from apps.alerts.models import Notification, NotificationChannel


class ChannelError(Exception):
    """The channel cannot be used as configured (no URL, a bad secret, a reserved header): no retry will help."""


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to; delivery decides from it: done, try again later, or give up now."""

    delivered: bool
    retry: bool = False  # a failure that may pass: 429, 5xx, a timeout, a refused connection
    status: int | None = None  # the HTTP status or SMTP reply code, when there was one
    error: str = ""
    retry_after: float | None = None  # seconds the receiver asked us to wait

    @classmethod
    def success(cls, status: int | None = None) -> "Outcome":
        return cls(delivered=True, status=status)

    @classmethod
    def transient(cls, error: str, *, status: int | None = None, retry_after: float | None = None) -> "Outcome":
        return cls(delivered=False, retry=True, status=status, error=error, retry_after=retry_after)

    @classmethod
    def permanent(cls, error: str, *, status: int | None = None) -> "Outcome":
        return cls(delivered=False, status=status, error=error)


class Transport(ABC):
    """Sends notifications over one kind of channel; one subclass per module, listed in TRANSPORTS."""

    kind: ClassVar[str]

    def __init__(self, channel: NotificationChannel) -> None:
        self.channel = channel

    @abstractmethod
    def send(self, notification: Notification) -> Outcome:
        """One attempt, with the notification's key; raises ChannelError when the channel's settings are unusable."""
