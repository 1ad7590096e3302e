"""Fixtures of the blind-match tests: pseudonyms computed through the real blind flow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from protocol.identity import derive_keys
from tests.blindflow import evaluate_for_registration, pseudonyms_payload
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import REGISTERED


@dataclass(frozen=True)
class Prepared:
    """What a focal point holds after the OPRF step, ready for `POST /v1/cases`."""

    key_id: str
    pseudonyms: list[dict[str, Any]]


@pytest.fixture
async def prepared(client: AppClient, network: Network) -> Prepared:
    """REGISTERED's pseudonyms, evaluated for org-a's focal point."""
    keys = derive_keys(REGISTERED)
    server_key, elements = await evaluate_for_registration(client, network.a_focal.headers, keys)
    bits = client.ctx.policy.bucket_bits
    return Prepared(server_key.key_id, pseudonyms_payload(keys, elements, bits))
