"""What a backup, verify, drill or restore raises when it cannot do what was asked."""


class BackupError(Exception):
    """The operation failed; the message says why in an operator's words (never a secret)."""


class IntegrityError(BackupError):
    """Stored bytes or a manifest do not match what was recorded: the backup must not be trusted."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class BackupBusyError(BackupError):
    """Another run of the same policy holds the lock (its lease has not expired)."""
