"""Errors of case registration and management."""

from __future__ import annotations

from server.errors import Conflict


class IdempotencyConflict(Conflict):
    """The `Idempotency-Key` was already used for a different request body: answering with the
    earlier case would be wrong, registering another would break the key's promise."""

    slug, title = "idempotency-conflict", "The idempotency key was used for another request"
