"""Wire shapes of the OPRF endpoints (the shared `protocol.messages` models)."""

from __future__ import annotations

from protocol.messages import OprfEvaluateRequest, OprfEvaluateResponse, OprfKey

__all__ = ["OprfEvaluateRequest", "OprfEvaluateResponse", "OprfKey"]
