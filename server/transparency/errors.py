"""Refusals of the transparency log's API (problem+json through `server.problems`)."""

from __future__ import annotations

from server.errors import DomainError, InvalidRequest, NotFound


class TreeSizeUnavailable(InvalidRequest):
    """A proof was asked for a tree larger than the newest signed head, or sizes out of order."""

    slug, title, status = "tree-size-unavailable", "No signed tree of that size", 422


class EntryNotInLog(NotFound):
    """No sealed entry there, or one the caller may not see (the same answer: existence is
    itself information)."""


class LogNotStarted(DomainError):
    slug, title, status = "log-not-started", "The log has no signed tree head yet", 503


class CosignatureRefused(InvalidRequest):
    """The object is not one this log signed, or no cosignature on it is from a witness the
    policy names, or none verifies."""

    slug, title, status = "cosignature-refused", "Cosignature refused", 422
