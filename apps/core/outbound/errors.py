"""The one exception family of outbound HTTP.

Delivery code needs three answers apart from an HTTP status: the destination
was refused (permanent: fix the URL or mark it internal, retrying will not help),
the network failed, or it took too long (both worth a retry). Every exception
names the URL without its query string or credentials, so it can be logged.
"""


class OutboundError(Exception):
    """The request did not produce a response: connection refused or reset, TLS failure, bad reply."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class OutboundBlocked(OutboundError):  # noqa: N818 - reads as the outcome: except OutboundBlocked
    """The destination is refused by policy: scheme, credentials in the URL, or an internal address."""


class OutboundTimeout(OutboundError):  # noqa: N818
    """Connecting, or the whole exchange, took longer than allowed."""
