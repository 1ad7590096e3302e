"""Errors of the OPRF boundary, shared by every endpoint that receives elements or a key id."""

from __future__ import annotations

from typing import Any

from server.errors import Conflict, InvalidRequest


class InvalidElement(InvalidRequest):
    """An element is not the canonical encoding of a non-identity ristretto255 point.

    One error for every cause (not hex, wrong length, non-canonical, identity): the caller learns
    which element to fix by `index`, and nothing about why the group code refused it, which is
    all an attacker probing with crafted points could want to learn.
    """

    slug, title, status = "invalid-element", "An element is not a valid ristretto255 element", 422

    def __init__(self, detail: str, *, index: int, **extra: Any) -> None:
        super().__init__(detail, index=index, **extra)


class KeyMismatch(Conflict):
    """The request names an OPRF key that is not the current one (the SDK pinned a stale key, or
    the key was rotated): elements computed under another key can never match."""

    slug, title = "key-mismatch", "The OPRF key named is not the current key"
