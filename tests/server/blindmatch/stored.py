"""Reading a case's stored entries back with the server's key file, as only the server can.

The tests use it to show what registration stored (exactly `keys_per_check` entries, each
`P̂ = w·P`, tagged and sealed under `P`), and that a migrated database holds the same:

    opened = open_entries(session, ctx.keys, case_id)
    assert {e.handle.kind for e in opened} >= {"national_id", "padding"}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.entry import Handle, evaluate_inputs, hash_to_group, open_handle, pad_input, tag
from protocol.hazmat.ristretto255 import scalar_invert, scalar_mult
from protocol.identity import Key
from server.cases.models import Pseudonym
from server.keys import ServerKeys


@dataclass(frozen=True)
class OpenedEntry:
    row: Pseudonym
    p: bytes
    handle: Handle


def pseudonym(keys: ServerKeys, key: Key) -> bytes:
    """`P = skS·HashToGroup(value)`: what a check of `key` unblinds to."""
    return scalar_mult(keys.oprf_secret, hash_to_group(key.value))


def pad_points(keys: ServerKeys, case_id: str, indexes: Sequence[int]) -> list[bytes]:
    """The verifiable pads of slots `indexes` of `case_id`."""
    return evaluate_inputs(keys.oprf_secret, [pad_input(case_id, i) for i in indexes])


def entry_rows(session: Session, case_id: str) -> list[Pseudonym]:
    session.expire_all()
    return list(session.scalars(select(Pseudonym).where(Pseudonym.case_id == case_id)))


def open_entries(session: Session, keys: ServerKeys, case_id: str) -> list[OpenedEntry]:
    """Every entry of the case, unwrapped with `w⁻¹` and opened; fails if one does not open
    or its tag is not the tag of its `P`."""
    unwrap = scalar_invert(keys.oprf_wrap)
    opened: list[OpenedEntry] = []
    for row in entry_rows(session, case_id):
        p = scalar_mult(unwrap, bytes(row.p_hat))
        assert bytes(row.tag) == tag(p), "an entry's tag is the tag of its P"
        handle = open_handle(p, bytes(row.sealed_handle))
        assert handle is not None, "an entry's handle opens with its P"
        opened.append(OpenedEntry(row=row, p=p, handle=handle))
    return opened
