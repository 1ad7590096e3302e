"""Pinning the server's OPRF key on first use (trust on first use, as SSH's known_hosts).

Every DLEQ proof only shows that the server used *the key we verify against*. If the SDK simply
trusted whatever key `/v1/oprf/key` returns today, a server could evaluate one client under a
private key of its own (partitioning it from the network, or making its checks silently miss)
and publish that key to that client alone. So the first key seen is pinned, and a different one
later raises `KeyChanged` until someone updates the pin deliberately after the network announced
a rotation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from client_sdk.errors import CredentialsError, InvalidResponse, KeyChanged
from client_sdk.secretfile import load_json_secret, write_json_secret

__all__ = ["KeyPin", "PinnedKey"]


@dataclass(frozen=True)
class PinnedKey:
    """The server's published OPRF public key and its id.

    Usage::

        PinnedKey(key_id="3f2a...", public_key=bytes.fromhex("..."))  # from an announcement
    """

    key_id: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not self.key_id or len(self.public_key) != 32:
            raise InvalidResponse("an OPRF key is a key id and 32 bytes")

    def to_dict(self) -> dict[str, str]:
        return {"key_id": self.key_id, "public_key": self.public_key.hex()}


class KeyPin:
    """The pinned key for one server, in memory and optionally in a pin file.

    The pin file maps a server (its base URL) to its key, so one file can serve several
    networks. Without a file the pin lives as long as the client object.
    """

    def __init__(
        self, server: str, *, pinned: PinnedKey | None = None, path: Path | None = None
    ) -> None:
        self.server = server
        self.path = path
        self._lock = threading.Lock()
        self._pinned = pinned
        if pinned is None and path is not None and path.exists():
            self._pinned = self._read_file().get(server)

    @property
    def pinned(self) -> PinnedKey | None:
        return self._pinned

    def _read_file(self) -> dict[str, PinnedKey]:
        assert self.path is not None
        document = load_json_secret(self.path)
        pins = document.get("pins")
        if not isinstance(pins, dict):
            raise CredentialsError(f"{self.path} is not a refcheck pin file")
        out: dict[str, PinnedKey] = {}
        for server, entry in pins.items():
            try:
                out[server] = PinnedKey(entry["key_id"], bytes.fromhex(entry["public_key"]))
            except (KeyError, TypeError, ValueError, InvalidResponse):
                raise CredentialsError(f"{self.path} has a malformed pin") from None
        return out

    def check(self, offered: PinnedKey) -> PinnedKey:
        """Accept `offered` if it is the pinned key, or pin it if nothing is pinned yet."""
        with self._lock:
            pinned = self._pinned
            if pinned is None:
                self._pinned = offered
                self._persist(offered)
                return offered
        if pinned != offered:
            raise KeyChanged(
                "the server's OPRF key is not the pinned one; accept a new key only after the "
                "network has announced a rotation",
                pinned_key_id=pinned.key_id,
                server_key_id=offered.key_id,
            )
        return pinned

    def _persist(self, key: PinnedKey) -> None:
        if self.path is None:
            return
        pins = {s: k.to_dict() for s, k in self._read_file().items()} if self.path.exists() else {}
        pins[self.server] = key.to_dict()
        write_json_secret(self.path, {"pins": pins}, overwrite=True)
