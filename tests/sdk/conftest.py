"""SDK fixtures: real SDK clients for the standard test network, over the real FastAPI app.

`sdk_for(actor, **kwargs)` builds an `AsyncClient` signed in as one of `network`'s actors, over
`httpx.ASGITransport(app=app)` (or over `transport=` for tests that tamper with the network).
Its credentials name the network and its signing key's fingerprint, as the files the server
writes do (the SDK refuses credentials without them). The SDK's clock
follows the app's `clock`, so a test that moves time moves both.

Transport wrappers (`Tamper`, `FailFirst`) change or drop *real* server answers in flight: that
is an attack on the network, not a mock of the SDK's own checks.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from client_sdk import AsyncClient, CaseRegistration, Credentials, OrgKeys, RetryPolicy
from tests.factories import Actor, Network, ed25519_seed_hex

FAST_RETRY = RetryPolicy(backoff_factor=0, max_attempts=4)


def credentials_for(
    actor: Actor, network: Network | None = None, *, server_keys: Any = None
) -> Credentials:
    """`server_keys`: the server's `ServerKeys`, whose network id and signing key fingerprint a real
    credentials file names."""
    org_keys = None
    if network is not None:
        keys = {network.org_a.id: network.org_a_keys, network.org_b.id: network.org_b_keys}.get(
            actor.org_id
        )
        if keys is not None:
            org_keys = OrgKeys.from_dict(keys.credentials_dict())
    return Credentials(
        client_id=actor.id,
        auth_private_key=bytes.fromhex(ed25519_seed_hex(actor.key)),
        issuer="refcheck",
        # Loopback: the SDK refuses plain http:// to any other host (the app is in-process).
        base_url="http://127.0.0.1",
        principal_name=actor.principal.name,
        roles=tuple(actor.principal.roles),
        org_id=actor.org_id,
        org_short_name=actor.org.short_name,
        org_keys=org_keys,
        network_id=None if server_keys is None else server_keys.network_id,
        network_signing_key_sha256=(
            None if server_keys is None else server_keys.signing_key_sha256
        ),
    )


class Counting(httpx.AsyncBaseTransport):
    """Passes everything through and counts requests per (method, path)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.calls: Counter[tuple[str, str]] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls[(request.method, request.url.path)] += 1
        return await self.inner.handle_async_request(request)


class FailFirst(Counting):
    """Answers the first `times` requests to `path` with `status` (problem+json) itself."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        path: str,
        status: int = 503,
        times: int = 2,
        headers: dict[str, str] | None = None,
        slug: str = "service-unavailable",
    ) -> None:
        super().__init__(inner)
        self.path, self.status, self.times = path, status, times
        self.headers = headers or {}
        self.slug = slug

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path and self.times > 0:
            self.times -= 1
            self.calls[(request.method, request.url.path)] += 1
            body = {"type": f"urn:refcheck:problem:{self.slug}", "title": "x", "detail": "x"}
            return httpx.Response(
                self.status,
                headers={"Content-Type": "application/problem+json", **self.headers},
                content=json.dumps(body).encode(),
            )
        return await super().handle_async_request(request)


class Tamper(Counting):
    """Rewrites the JSON of real successful (2xx) answers to `path` with `edit`."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        path: str,
        edit: Callable[[dict[str, Any]], None],
    ) -> None:
        super().__init__(inner)
        self.path, self.edit = path, edit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.url.path != self.path or not response.is_success:
            return response
        await response.aread()
        body = json.loads(response.content)
        self.edit(body)
        return httpx.Response(
            response.status_code,
            headers={"Content-Type": "application/json"},
            content=json.dumps(body).encode(),
        )


def flip_bit(hex_value: str, bit: int = 0) -> str:
    raw = bytearray(bytes.fromhex(hex_value))
    raw[bit // 8] ^= 1 << (bit % 8)
    return raw.hex()


SdkFactory = Callable[..., AsyncClient]


def sdk_clock(clock: Callable[[], Any]) -> Callable[[], float]:
    """The SDK's clock (seconds) following the app's `MutableClock`."""
    return lambda: float(clock().timestamp())


@pytest.fixture
async def sdk_for(app: FastAPI, network: Network, clock: Any) -> AsyncIterator[SdkFactory]:
    made: list[AsyncClient] = []

    def make(actor: Actor, **kwargs: Any) -> AsyncClient:
        kwargs.setdefault("transport", httpx.ASGITransport(app=app))
        kwargs.setdefault("retry", FAST_RETRY)
        kwargs.setdefault("clock", sdk_clock(clock))
        # The test app shares one database connection (savepoint isolation), which cannot
        # serve concurrent requests; concurrency is exercised against a real server instead.
        kwargs.setdefault("max_concurrency", 1)
        server_keys = app.state.ctx.keys
        client = AsyncClient(credentials_for(actor, network, server_keys=server_keys), **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


class Recording(httpx.AsyncBaseTransport):
    """Passes everything through and keeps every request, in order, as the server saw it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    def seen(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


class TamperBody(Counting):
    """Rewrites the bytes of real successful answers to `path` with `edit` (binary bodies)."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, *, path: str, edit: Callable[[bytes], bytes]
    ) -> None:
        super().__init__(inner)
        self.path, self.edit = path, edit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.url.path != self.path or response.status_code != 200:
            return response
        await response.aread()
        return httpx.Response(
            200,
            headers={"Content-Type": response.headers.get("Content-Type", "")},
            content=self.edit(response.content),
        )


def case_fields(today: date) -> CaseRegistration:
    """A registration's fields as a focal point files a case found 60 days before `today`."""
    return CaseRegistration(
        category="sexual_abuse",
        finding_date=today - timedelta(days=60),
        sanction="dismissal",
        legal_basis="legitimate_interests",
        retention_until=today + timedelta(days=5 * 365),
        mou_reference="MoU-2026-01",
        subject_notified_on=today - timedelta(days=50),
    )
