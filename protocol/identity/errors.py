"""The one exception of `protocol.identity` for bad input, and why it carries no values.

`InvalidPersonError` subclasses the protocol's `InvalidInputError`, so a service boundary that
maps protocol errors needs no extra case. Its messages name the field and the rule that failed,
never the value: a person record is exactly the personal data this service exists not to reveal,
and exception messages end up in logs. Raisers use `from None` so that a library exception that
quotes the value (for example `date.fromisoformat`) is not chained into the traceback either.
"""

from __future__ import annotations

from protocol.errors import InvalidInputError

__all__ = ["InvalidPersonError"]


class InvalidPersonError(InvalidInputError):
    """A person record cannot be turned into keys: a field is missing, malformed or implausible."""
