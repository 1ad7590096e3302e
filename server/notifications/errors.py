"""Errors of the notification domain."""

from __future__ import annotations


class SendFailed(Exception):
    """One attempt to deliver failed. `reason` is an error class or a protocol status (never a
    server's message text, which may quote ours back); `permanent` when retrying cannot help
    (the mail server refused the recipient for good), so the delivery is undeliverable at once.
    """

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason[:200]
        self.permanent = permanent
