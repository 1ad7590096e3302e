"""Wire shapes of the check endpoints (the shared `protocol.messages` models)."""

from __future__ import annotations

from protocol.messages import (
    CheckRequest,
    CheckResponse,
    EntriesRequest,
    EntriesResponse,
    EntryOut,
)

__all__ = ["CheckRequest", "CheckResponse", "EntriesRequest", "EntriesResponse", "EntryOut"]
