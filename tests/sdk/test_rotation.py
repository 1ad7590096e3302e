"""The SDK across an OPRF key rotation (the server's `rotate`): a client whose pin file names the
old key is refused once (`key-mismatch`), reads the signed announcements again, and checks under
the new key; the old key's filter is not reused; the pin file keeps both announcements.

Each test has a data directory of its own, because a rotation writes key files. (Re-running a
check caught by the switch, `key-rotated` and `rerun_of`, is the next step of the SDK.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from client_sdk import CheckStatus
from server.keys import create_keys
from server.oprf.rotation import rotate
from tests.factories import Network
from tests.sdk.conftest import Counting, SdkFactory
from tests.sdk.test_client_app import case_fields, consent
from tests.server.blindmatch.people import REGISTERED

pytestmark = pytest.mark.anyio


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """A data directory of this test's own (overrides the session's shared one)."""
    create_keys(tmp_path / "server")
    return tmp_path


async def test_a_warm_client_follows_a_rotation_once_and_matches_under_the_new_key(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any, tmp_path: Path
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, **case_fields(clock.today()))
    pins, filter_file = tmp_path / "pins.json", tmp_path / "org-b.filter"
    before = sdk_for(network.b_hr, pin_file=pins, filter_file=filter_file)
    first = await before.check_applicant(REGISTERED, await consent(before))
    assert first.status is CheckStatus.MATCH
    old = await before.oprf_key()

    rotate(ctx)

    counting = Counting(httpx.ASGITransport(app=app))
    after = sdk_for(network.b_hr, pin_file=pins, filter_file=filter_file, transport=counting)
    result = await after.check_applicant(REGISTERED, await consent(before, applicant_ref="A2"))
    assert result.status is CheckStatus.MATCH
    assert {m.case_id for m in result.matches} == {m.case_id for m in first.matches}
    # Refused once under the old key, keys and policy read again, checked under the new one.
    assert counting.calls[("POST", "/v1/checks")] == 2
    assert counting.calls[("GET", "/v1/network/keys")] == 1
    assert after.network is not None
    new = after.network.current
    assert new.key_seq == old.key_seq + 1 and new.prev_key_id == old.key_id
    assert [k.key_seq for k in after.network.keys] == [old.key_seq, new.key_seq]
    # The old key's filter cannot hold the new pseudonyms: fetched whole, not as a delta.
    snapshot = after._core.filters.snapshot
    assert snapshot is not None and snapshot.key_id == new.key_id
