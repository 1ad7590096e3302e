"""Wire shapes of `POST /v1/checks` (the shared `protocol.messages` models)."""

from __future__ import annotations

from protocol.messages import BucketEntries, BucketEntry, CheckRequest, CheckResponse

__all__ = ["BucketEntries", "BucketEntry", "CheckRequest", "CheckResponse"]
