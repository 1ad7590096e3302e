"""Errors of case registration and management."""

from __future__ import annotations

from server.errors import Conflict, InvalidRequest


class IdempotencyConflict(Conflict):
    """The `Idempotency-Key` was already used for a different request body: answering with the
    earlier case would be wrong, registering another would break the key's promise."""

    slug, title = "idempotency-conflict", "The idempotency key was used for another request"


class SealedKeysInvalid(InvalidRequest):
    """`sealed_keys` does not open under the registration key, is malformed, or was sealed for
    other case metadata. One problem for every cause: the detail never echoes sealed bytes."""

    slug, title, status = "sealed-keys-invalid", "The sealed keys cannot be used", 422
