"""Fixtures of the notification tests: a real SMTP server (aiosmtpd) and a real webhook receiver,
both on 127.0.0.1, and the app's context configured to use them.

    mail.stop() / mail.start()       the SMTP server goes down and comes back (same port)
    mail.messages                    every message received: `Received(to, message)`
    hooks.requests                   every webhook request: `Hook(path, headers, body)`
    hooks.status = 500               answer every delivery with that status
    deliver(ctx)                     one worker, rounds until nothing is due
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from server.context import AppContext
from server.notifications.worker import DeliveryReport, DeliveryWorker
from tests.factories import AppClient, Network

MAIL_FROM = "refcheck <notifications@network.example>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Received:
    to: tuple[str, ...]
    message: EmailMessage

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        return str(body.get_content())


class _Collector:
    def __init__(self, mail: MailServer) -> None:
        self.mail = mail

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.mail.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.mail.lock:
            self.mail.messages.append(Received(tuple(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


@dataclass
class MailServer:
    port: int = field(default_factory=free_port)
    messages: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller = Controller(_Collector(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.to]


@pytest.fixture
def mail() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Hook:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HookReceiver:
    port: int
    requests: list[Hook] = field(default_factory=list)
    status: int = 200

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Hook]:
        return [h for h in self.requests if h.path == path]


@pytest.fixture
def hooks() -> Iterator[HookReceiver]:
    receiver: HookReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            receiver.requests.append(Hook(self.path, dict(self.headers.items()), body))
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = HookReceiver(port=int(server.server_address[1]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def with_mail(ctx: AppContext, mail: MailServer) -> None:
    """Configure the running app's context to send e-mail through `mail`."""
    ctx.settings = ctx.settings.model_copy(
        update={"smtp_url": _secret(mail.url), "mail_from": MAIL_FROM}
    )


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


def deliver(ctx: AppContext, **kwargs: Any) -> DeliveryReport:
    return DeliveryWorker(ctx, smtp_timeout=5, webhook_timeout=5, **kwargs).run_until_idle()


async def set_addresses(
    client: AppClient, network: Network, org_id: str, **body: Any
) -> dict[str, Any]:
    response = await client.patch(
        f"/v1/orgs/{org_id}/notification-addresses", headers=network.admin.headers, json=body
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert isinstance(data, dict)
    return data


async def demo_addresses(client: AppClient, network: Network, hooks: HookReceiver) -> None:
    """The demo network's e-mail addresses, and a webhook per member for one role."""
    for org, name in ((network.org_a, "org-a"), (network.org_b, "org-b")):
        await set_addresses(
            client,
            network,
            org.id,
            emails=[
                {"address": f"focal-point@{name}.example", "role": "focal_point"},
                {"address": f"hr@{name}.example", "role": "hr_checker"},
            ],
        )
    await set_addresses(
        client,
        network,
        network.org_a.id,
        webhooks=[{"url": hooks.url("/org-a"), "role": "focal_point"}],
    )
    await set_addresses(
        client,
        network,
        network.org_b.id,
        webhooks=[{"url": hooks.url("/org-b"), "role": "hr_checker"}],
    )
    await set_addresses(
        client, network, network.secretariat.id, emails=[{"address": "secretariat@network.example"}]
    )
