"""The SDK's view of the transparency log: a head it verified, then the server's later answers.
A log that shrank, was rewritten, or is shown to this client as a fork raises LogInconsistent."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from client_sdk import LogInconsistent
from client_sdk.transparency import TreeHeadStore, averify_log, averify_signed_object_logged
from server.audit.models import AuditEntry
from server.audit.services import record
from server.transparency.models import MerkleNode, TreeHead
from server.transparency.sealer import seal
from server.transparency.services import log_signed_object
from tests.server.test_transparency import _signed_filter

pytestmark = pytest.mark.anyio


def _grow(session, ctx, n: int) -> TreeHead:
    for i in range(n):
        record(session, ctx, None, "test.event", details={"i": i})
    session.commit()
    head = seal(session, ctx)
    session.commit()
    assert head is not None
    return head


async def test_a_growing_log_verifies_and_the_newest_head_is_kept(
    sdk_for, network, session, ctx, tmp_path
):
    store = TreeHeadStore(tmp_path / "heads.json")
    sdk = sdk_for(network.a_hr)
    first = _grow(session, ctx, 3)
    assert (await averify_log(sdk, store)).size == first.tree_size
    second = _grow(session, ctx, 4)
    assert (await averify_log(sdk, store)).size == second.tree_size
    assert (tmp_path / "heads.json").stat().st_mode & 0o077 == 0


async def test_deleting_the_newest_entries_with_their_head_is_caught(
    sdk_for, network, session, ctx
):
    store = TreeHeadStore()
    sdk = sdk_for(network.a_hr)
    older = _grow(session, ctx, 3)
    newer = _grow(session, ctx, 3)
    await averify_log(sdk, store)
    session.execute(delete(AuditEntry).where(AuditEntry.leaf_index >= older.tree_size))
    session.execute(delete(MerkleNode).where(MerkleNode.position >= older.tree_size))
    session.execute(delete(TreeHead).where(TreeHead.id == newer.id))
    session.commit()
    with pytest.raises(LogInconsistent) as caught:
        await averify_log(sdk, store)
    assert (caught.value.first_size, caught.value.second_size) == (newer.tree_size, older.tree_size)
    assert "secretariat" in str(caught.value)


async def test_a_forked_log_is_caught(sdk_for, network, session, ctx):
    """The server shows this client a head, then rewrites an entry under it and re-signs
    (a split view, or an insider with the key file)."""
    store = TreeHeadStore()
    sdk = sdk_for(network.a_hr)
    seen = _grow(session, ctx, 5)
    await averify_log(sdk, store)
    victim = session.scalars(select(AuditEntry).where(AuditEntry.leaf_index == 1)).one()
    victim.details = {"rewritten": True}
    session.execute(delete(MerkleNode))
    session.execute(delete(TreeHead))
    session.execute(update(AuditEntry).values(leaf_index=None))
    session.commit()
    _grow(session, ctx, 2)
    with pytest.raises(LogInconsistent) as caught:
        await averify_log(sdk, store)
    assert caught.value.first_size == seen.tree_size


async def test_a_logged_filter_header_is_proven_included(sdk_for, network, session, ctx):
    obj = _signed_filter(ctx)
    log_signed_object(session, ctx, obj)
    session.commit()
    _grow(session, ctx, 1)
    sdk = sdk_for(network.b_hr)
    head = await averify_log(sdk, TreeHeadStore())
    assert await averify_signed_object_logged(sdk, head, obj) >= 0
    with pytest.raises(LogInconsistent):
        await averify_signed_object_logged(sdk, head, _signed_filter(ctx, revision=7))
