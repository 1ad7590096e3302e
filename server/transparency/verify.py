"""`verify_log`: the signed tree heads, and the tree the stored entries make, checked against
each other (see `server.audit.verify` for what each finding means); `verify_trail`: the log and
the pre-log chain, what `refcheck-server audit verify` runs.

The tree is recomputed from the entries alone, streaming, keeping only its right edge: the
stored nodes are consulted only to name which entry was edited.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol import merkle
from protocol.errors import ProtocolError
from protocol.signed import SignedObject, parse
from server.audit.chain import canonical_entry
from server.audit.models import AuditEntry
from server.audit.verify import Finding, VerifyReport, verify_legacy_chain
from server.transparency.models import MerkleNode, TreeHead
from server.transparency.sealer import Edge

_BATCH = 1000


def _span(first: int, last: int, what: str = "leaf") -> str:
    plural = "leaves" if what == "leaf" else f"{what}s"
    return f"{what} {first}" if first == last else f"{plural} {first}-{last}"


def _verify_by_any(obj: SignedObject, public_keys: Sequence[bytes], network_id: str) -> None:
    """Signed by one of the network's signing keys (the current one, or one it replaced: a head
    signed before a rotation stays valid), else the last key's VerifyError."""
    error: ProtocolError | None = None
    for key in reversed(public_keys):
        try:
            obj.verify(key, network_id=network_id, type="tree-head")
            return
        except ProtocolError as exc:
            error = exc
    assert error is not None
    raise error


def _signed_heads(
    session: Session, public_key: Sequence[bytes], network_id: str, report: VerifyReport
) -> dict[int, list[tuple[str, bytes]]]:
    """Every stored head whose signature verifies, by tree size: `[(name, root)]`."""
    wanted: dict[int, list[tuple[str, bytes]]] = {}
    previous_id, previous_size = 0, 0
    for head in session.scalars(select(TreeHead).order_by(TreeHead.id)):
        report.heads += 1
        name = f"tree head {head.id} ({head.tree_size} leaves)"
        if head.id != previous_id + 1:
            report.findings.append(
                Finding(
                    "tree-head",
                    previous_size,
                    f"{_span(previous_id + 1, head.id - 1, 'tree head')} removed (heads are "
                    "numbered without gaps)",
                )
            )
        previous_id = head.id
        try:
            obj = parse(head.signed)
            _verify_by_any(obj, public_key, network_id)
            size, root = int(obj.fields["tree_size"]), bytes.fromhex(str(obj.fields["root_hash"]))
        except (ProtocolError, ValueError, KeyError, TypeError):
            report.findings.append(
                Finding(
                    "tree-head",
                    head.tree_size,
                    f"{name} has no valid signature by the network key",
                )
            )
            continue
        if size < previous_size:
            report.findings.append(
                Finding("tree-head", size, f"{name} is smaller than the head before it")
            )
        previous_size = max(previous_size, size)
        report.tree_size = max(report.tree_size, size)
        wanted.setdefault(size, []).append((name, root))
    return wanted


def _known(
    heads: Sequence[bytes], public_key: Sequence[bytes], network_id: str, report: VerifyReport
) -> dict[int, list[tuple[str, bytes]]]:
    wanted: dict[int, list[tuple[str, bytes]]] = {}
    for framed in heads:
        try:
            obj: SignedObject = parse(framed)
            _verify_by_any(obj, public_key, network_id)
            size, root = int(obj.fields["tree_size"]), bytes.fromhex(str(obj.fields["root_hash"]))
        except (ProtocolError, ValueError, KeyError, TypeError):
            report.findings.append(
                Finding("tree-head", 0, "a tree head given to compare with is not validly signed")
            )
            continue
        wanted.setdefault(size, []).append((f"the given tree head of {size} leaves", root))
    return wanted


def _stored_leaves(session: Session, first: int, last: int) -> dict[int, bytes]:
    rows = session.execute(
        select(MerkleNode.position, MerkleNode.hash).where(
            MerkleNode.level == 0, MerkleNode.position >= first, MerkleNode.position <= last
        )
    )
    return {int(position): bytes(h) for position, h in rows}


def verify_log(
    session: Session,
    public_key: bytes | Sequence[bytes],
    *,
    network_id: str,
    known_heads: Sequence[bytes] = (),
) -> VerifyReport:
    """`public_key`: the network signing key, or every key of its history (oldest first)."""
    if isinstance(public_key, bytes):
        public_key = [public_key]
    report = VerifyReport()
    findings = report.findings
    wanted = _signed_heads(session, public_key, network_id, report)
    newest_signed = report.tree_size
    for size, names in _known(known_heads, public_key, network_id, report).items():
        wanted.setdefault(size, []).extend(names)
    edge: Edge = []
    size = 0
    # A root that no longer matches is evidence on its own only when nothing before it already
    # explains it (one edited entry is one finding, not one per later head).
    explained = False

    def check_roots(at_size: int) -> None:
        nonlocal explained
        names = wanted.pop(at_size, [])
        if not names:
            return
        root = merkle.root_from_frontier([h for _, _, h in edge])
        for name, signed_root in names:
            if root != signed_root and not explained:
                findings.append(
                    Finding(
                        "altered",
                        at_size,
                        f"the entries of the first {at_size} leaves were rewritten: {name} no "
                        "longer matches the tree they make",
                    )
                )
                explained = True

    if 0 in wanted:
        check_roots(0)
    after = -1
    while True:
        batch = list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.leaf_index > after)
                .order_by(AuditEntry.leaf_index)
                .limit(_BATCH)
            )
        )
        if not batch:
            break
        after = int(batch[-1].leaf_index or 0)
        stored = _stored_leaves(session, size, after)
        for entry in batch:
            index = int(entry.leaf_index or 0)
            report.entries += 1
            if index > size:
                findings.append(
                    Finding(
                        "removed",
                        size,
                        f"{_span(size, index - 1)} removed (a gap in the leaf indexes)",
                    )
                )
                explained = True
                # Carry on with the stored leaf hashes, so later heads are still checked.
                while size < index:
                    missing = stored.get(size, b"\x00" * 32)
                    merkle_extend(edge, size, missing)
                    size += 1
                    check_roots(size)
            leaf = merkle.leaf_hash(canonical_entry(entry))
            if index in stored and stored[index] != leaf:
                findings.append(
                    Finding(
                        "altered",
                        index,
                        f"leaf {index} (entry {entry.seq}) altered: its content no longer "
                        "matches its leaf in the tree",
                    )
                )
                explained = True
            merkle_extend(edge, size, leaf)
            size += 1
            check_roots(size)
        session.expunge_all()
    unsigned = any(f.kind == "tree-head" for f in findings)
    if size > newest_signed and not unsigned:
        findings.append(
            Finding(
                "tree-head",
                newest_signed,
                f"{_span(newest_signed, size - 1)} sealed but no signed tree head covers them "
                "(the newest head was removed)",
            )
        )
    for missing_size, names in sorted(wanted.items()):
        for name in names:
            findings.append(
                Finding(
                    "removed",
                    size,
                    f"{_span(size, missing_size - 1)} removed: {name} covers {missing_size}, the "
                    f"log holds {size}",
                )
            )
    return report


def merkle_extend(edge: Edge, position: int, leaf: bytes) -> None:
    """Add one leaf to a right edge (no nodes are kept: verification needs only roots)."""
    edge.append((0, position, leaf))
    while len(edge) > 1 and edge[-1][0] == edge[-2][0]:
        level, left_position, left = edge[-2]
        edge[-2:] = [(level + 1, left_position >> 1, merkle.node_hash(left, edge[-1][2]))]


def verify_trail(
    session: Session,
    audit_public_key: Ed25519PublicKey,
    audit_key_id: str,
    *,
    network_id: str,
    known_heads: Sequence[bytes] = (),
    earlier_keys: Sequence[bytes] = (),
) -> VerifyReport:
    """Verify the whole trail in `session`'s database (read-only): the log, and the pre-log
    chain inside it. `known_heads` are framed signed tree heads kept outside the database;
    `earlier_keys` the network signing keys the current one replaced (their heads verify)."""
    report = verify_log(
        session,
        [*earlier_keys, audit_public_key.public_bytes_raw()],
        network_id=network_id,
        known_heads=known_heads,
    )
    legacy = verify_legacy_chain(session, audit_public_key, audit_key_id)
    report.checkpoints = legacy.checkpoints
    report.findings.extend(legacy.findings)
    return report
