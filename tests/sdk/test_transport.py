"""Transport (issue 14, item 7): the SDK refuses plain `http://` to any host but this machine
unless told `allow_insecure_http=True`, before any request; `https://` is never refused for its
scheme. (`ca_file=` against a server with a certificate of the network's own CA is tested
against a real TLS server in tests/server/ops/test_tls_and_workers.py.)"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from client_sdk import AsyncClient, Client, InvalidInput
from tests.factories import Network
from tests.sdk.conftest import FAST_RETRY, Recording, credentials_for

pytestmark = pytest.mark.anyio


def _creds(app: FastAPI, network: Network, url: str) -> Any:
    creds = credentials_for(network.b_hr, network, server_keys=app.state.ctx.keys)
    return dataclasses.replace(creds, base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "http://refcheck.example.org",
        "http://10.0.0.5:8000",
        "http://127.0.0.1.example.org",
        "http://[2001:db8::1]:8000",
        "ftp://127.0.0.1",
        "refcheck.example.org",
    ],
)
async def test_a_url_anyone_on_the_way_could_read_is_refused_before_any_request(
    app: FastAPI, network: Network, url: str
) -> None:
    recording = Recording(httpx.ASGITransport(app=app))
    with pytest.raises(InvalidInput, match="https://"):
        AsyncClient(_creds(app, network, url), transport=recording, retry=FAST_RETRY)
    with pytest.raises(InvalidInput):  # the same for the sync client, and base_url=
        Client(_creds(app, network, "https://ok.example.org"), base_url=url)
    assert recording.requests == []


async def test_plain_http_to_another_host_only_when_allowed(app: FastAPI, network: Network) -> None:
    recording = Recording(httpx.ASGITransport(app=app))
    async with AsyncClient(
        _creds(app, network, "http://refcheck-test.internal"),
        transport=recording,
        retry=FAST_RETRY,
        allow_insecure_http=True,
    ) as hr:
        assert (await hr.me())["principal_id"] == network.b_hr.id
    assert ("GET", "/v1/me") in [(r.method, r.url.path) for r in recording.requests]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://127.9.9.9",
        "http://localhost:8000/",
        "http://[::1]:8000",
        "https://refcheck.example.org",
    ],
)
async def test_loopback_and_https_need_no_permission(
    app: FastAPI, network: Network, url: str
) -> None:
    async with AsyncClient(
        _creds(app, network, url), transport=httpx.ASGITransport(app=app), retry=FAST_RETRY
    ) as hr:
        assert (await hr.me())["principal_id"] == network.b_hr.id
