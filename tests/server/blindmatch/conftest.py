"""Fixtures of the blind-match tests: a focal point's view of the network before it registers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from protocol.identity import Key, derive_keys
from tests.blindflow import ServerKey, fetch_key
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import REGISTERED


@dataclass(frozen=True)
class Prepared:
    """What org-a's focal point holds before `POST /v1/cases`: the announced key (with the
    registration key keys are sealed to) and REGISTERED's keys."""

    server_key: ServerKey
    keys: list[Key]


@pytest.fixture
async def prepared(client: AppClient, network: Network) -> Prepared:
    server_key = await fetch_key(client, network.a_focal.headers)
    return Prepared(server_key, derive_keys(REGISTERED))
