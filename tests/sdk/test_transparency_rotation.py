"""The transparency log across a rotation of the network signing key (`refcheck-server keys
rotate-signing`, run in-process as `server.signing_rotation` does it): a head kept before the
rotation was signed by the old key, and the session check and the witness still compare the
log with it. Each test has a data directory of its own, because a rotation writes key files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from client_sdk import LogInconsistent
from client_sdk.witness import WitnessState
from server.keys import create_keys
from server.signing_rotation import rotate_network_signing_key
from server.transparency.models import TreeHead
from tests.sdk.test_client_app import case_fields
from tests.sdk.test_signing_key_rotation import client_naming
from tests.sdk.test_transparency import _grow, _named_witness, _witness_run
from tests.server.blindmatch.people import REGISTERED

pytestmark = pytest.mark.anyio


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """A data directory of this test's own (overrides the session's shared one)."""
    create_keys(tmp_path / "data" / "server")
    return tmp_path / "data"


async def _kept_before_rotation(app, sdk_for, network, session, ctx, clock, pins: Path) -> Any:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    _grow(session, ctx, 1)
    old_fingerprint = ctx.keys.signing_key_sha256
    async with client_naming(
        app, network, clock, network.b_hr, old_fingerprint, pin_file=pins
    ) as before:
        await before.me()
        assert before.tree_head is not None
        saved = before.tree_head
    saved.signed.verify(ctx.keys.audit_public, network_id=ctx.keys.network_id, type="tree-head")
    rotate_network_signing_key(ctx)
    return saved, old_fingerprint


async def test_a_session_after_a_rotation_extends_the_head_kept_under_the_old_key(
    app, sdk_for, network, session, ctx, clock, tmp_path
):
    pins = tmp_path / "pins.json"
    saved, old = await _kept_before_rotation(app, sdk_for, network, session, ctx, clock, pins)
    async with client_naming(app, network, clock, network.b_hr, old, pin_file=pins) as after:
        await after.me()
        assert after.tree_head is not None and after.tree_head.size > saved.size
    after.tree_head.signed.verify(
        ctx.keys.audit_public, network_id=ctx.keys.network_id, type="tree-head"
    )


async def test_a_log_gone_after_a_rotation_is_caught_against_the_head_kept_under_the_old_key(
    app, sdk_for, network, session, ctx, clock, tmp_path
):
    pins = tmp_path / "pins.json"
    saved, old = await _kept_before_rotation(app, sdk_for, network, session, ctx, clock, pins)
    session.execute(delete(TreeHead))
    session.commit()
    async with client_naming(app, network, clock, network.b_hr, old, pin_file=pins) as after:
        with pytest.raises(LogInconsistent) as caught:
            await after.me()
    assert (caught.value.first_size, caught.value.second_size) == (saved.size, 0)


async def test_the_witness_goes_on_across_a_rotation_and_cosigns_under_the_new_key(
    app, sdk_for, network, session, ctx, clock
):
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    key, witness = _named_witness(session, ctx, network)  # its credentials name the old key
    before = _grow(session, ctx, 1)
    state = WitnessState()
    first = await _witness_run(app, witness, key, state)
    assert f"tree-head {before.tree_size}" in first.cosigned

    rotate_network_signing_key(ctx)  # re-announces the OPRF key, publishes, seals
    second = await _witness_run(app, witness, key, state)
    assert not second.refused, second.refused
    assert second.tree_size > before.tree_size
    assert f"tree-head {second.tree_size}" in second.cosigned
    assert any(c.startswith("oprf-key ") for c in second.cosigned)
    assert any(c.startswith("filter ") for c in second.cosigned)
