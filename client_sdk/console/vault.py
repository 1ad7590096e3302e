"""What the console holds while it runs: its settings, the one unlocked `Client` and the session
that may use it (`Vault`), and the check results kept in memory for their disclosure step.

Below `client_sdk.console.app` and `client_sdk.console.pages`, which both use it, so neither
imports the other's helpers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.datastructures import UploadFile

from client_sdk._client import Client
from client_sdk.cli._common import beside, default_pin_file
from client_sdk.credentials import Credentials
from client_sdk.errors import CredentialsError
from client_sdk.models import CheckResult
from client_sdk.secretfile import load_json_secret


@dataclass
class ConsoleSettings:
    credentials_path: Path
    base_url: str | None = None
    pin_file: Path | None = None
    ca_file: Path | None = None
    #: Seconds without a request after which the console locks.
    idle_seconds: int = 900
    #: Hosts the Host header may name (127.0.0.1 and localhost always).
    hosts: tuple[str, ...] = ()
    #: Cookies only over HTTPS (set when the console serves TLS).
    secure_cookies: bool = False
    #: For credentials without a passphrase: the code printed at start-up that unlocks.
    access_code: str = field(default_factory=lambda: secrets.token_hex(4))
    #: The clock (seconds), for the idle lock; tests move it.
    clock: Callable[[], float] = time.monotonic
    #: Built clients get this transport (tests); None for the real network.
    client_factory: Callable[[Credentials], Client] | None = None


@dataclass
class Held:
    """A check result kept in memory for its disclosure step (never written anywhere)."""

    result: CheckResult
    person: dict[str, str]
    at: float
    requested: list[str] = field(default_factory=list)


class Vault:
    """The unlocked client and the session that may use it: one person at a time."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self.client: Client | None = None
        self.credentials: Credentials | None = None
        self.session: str | None = None
        self.last_seen = 0.0
        self.results: dict[str, Held] = {}
        self.failures = 0
        self.document = load_json_secret(settings.credentials_path)

    @property
    def sealed(self) -> bool:
        return self.document.get("sealed_secrets") is not None

    def unlock(self, secret: str) -> str:
        with self.lock:
            if self.sealed:
                creds = Credentials.from_dict(self.document, passphrase=secret)
            else:
                if not hmac.compare_digest(secret.strip(), self.settings.access_code):
                    raise CredentialsError("wrong access code")
                creds = Credentials.from_dict(self.document)
            self._close()
            s = self.settings
            if s.client_factory is not None:
                self.client = s.client_factory(creds)
            else:
                pins = s.pin_file or default_pin_file(s.credentials_path)
                self.client = Client(
                    creds,
                    base_url=s.base_url,
                    pin_file=pins,
                    filter_file=beside(pins, ".filter"),
                    ca_file=s.ca_file,
                )
            self.credentials = creds
            self.session = secrets.token_urlsafe(32)
            self.last_seen = s.clock()
            self.failures = 0
            return self.session

    def _close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None
        self.credentials = None
        self.session = None
        self.results.clear()

    def lock_now(self) -> None:
        with self.lock:
            self._close()

    def active(self, session: str | None) -> bool:
        with self.lock:
            if self.session is None or session is None:
                return False
            if not hmac.compare_digest(session, self.session):
                return False
            now = self.settings.clock()
            if now - self.last_seen > self.settings.idle_seconds:
                self._close()
                return False
            self.last_seen = now
            return True


def sha256_upload(upload: UploadFile) -> str:
    digest = hashlib.sha256()
    upload.file.seek(0)
    for chunk in iter(lambda: upload.file.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()
