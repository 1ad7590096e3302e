"""Wire shapes of the network-keys endpoint (the shared `protocol.messages` models)."""

from __future__ import annotations

from protocol.messages import NetworkKeys, SigningKey

__all__ = ["NetworkKeys", "SigningKey"]
