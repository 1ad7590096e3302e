"""Verify the audit log: its signed tree heads, the tree its entries make, and the hash chain
of the entries written before the log; name the first thing tampered with.

The log (`verify_log`, what `refcheck-server audit verify` runs):

* every signed tree head's signature by the network key, and heads numbered without gaps
  (a head deleted from the middle leaves a gap);
* the entries' leaf indexes without gaps (a deleted entry), each entry's leaf hash against the
  stored tree (an edited entry), and the root the entries make at every head's size against
  that head (a rewritten tree, nodes and all: only the signature tells, and consecutive heads
  that both match are consistent with each other);
* sealed entries beyond the newest head (its head deleted), or a head counting more entries than
  there are (entries deleted);
* optionally heads kept outside the database (a witness's, a member's): an insider who deletes
  the newest entries together with their heads leaves nothing inside the database to notice,
  but such a head names a tree the database no longer holds.

The pre-log chain (`verify_chain`): what each kind of tampering looks like, and how it is told
apart:

* **altered** — a row's content no longer hashes to its `entry_hash`; or it was re-hashed, and the
  next row's `prev_hash` still names the old hash; or a whole tail was rewritten consistently,
  and a signed checkpoint no longer matches.
* **removed** — a gap in the contiguous sequence numbers.
* **inserted** — rows after an insertion point renumbered (their hash still verifies at their
  old number).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit.chain import GENESIS_HASH, digest_of, entry_digest
from server.audit.checkpoints import checkpoint_signature_valid
from server.audit.models import AuditCheckpoint, AuditEntry

FindingKind = Literal["altered", "removed", "inserted", "checkpoint", "tree-head"]
_PRIORITY = {"inserted": 0, "removed": 1, "altered": 2, "checkpoint": 3, "tree-head": 4}
#: How far back a renumbered row is searched for (rows inserted in one place).
_MAX_SHIFT = 64


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    seq: int
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class VerifyReport:
    entries: int = 0
    checkpoints: int = 0
    #: Signed tree heads read, and the leaves the newest one covers.
    heads: int = 0
    tree_size: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        if not self.findings:
            return None
        return min(self.findings, key=lambda f: (f.seq, _PRIORITY[f.kind]))


def _shift(entry: AuditEntry) -> int:
    """By how many places `entry` was renumbered upwards (0: it was not)."""
    for k in range(1, min(_MAX_SHIFT, entry.seq - 1) + 1):
        digest = entry_digest(
            seq=entry.seq - k,
            at=entry.at,
            actor_principal_id=entry.actor_principal_id,
            actor_org_id=entry.actor_org_id,
            action=entry.action,
            object_type=entry.object_type,
            object_id=entry.object_id,
            details=entry.details,
            prev_hash=entry.prev_hash or "",
        )
        if digest == entry.entry_hash:
            return k
    return 0


def verify_chain(
    entries: Iterable[AuditEntry],
    head: tuple[int, str] | None,
    checkpoints: list[AuditCheckpoint],
    audit_public_key: Ed25519PublicKey,
    audit_key_id: str,
) -> VerifyReport:
    report = VerifyReport(checkpoints=len(checkpoints))
    findings = report.findings
    wanted = {cp.seq for cp in checkpoints}
    hash_at: dict[int, str] = {0: GENESIS_HASH}
    recent: deque[str] = deque(maxlen=_MAX_SHIFT + 1)
    expected, prev_hash, shift = 1, GENESIS_HASH, 0
    last_seq, last_hash = 0, GENESIS_HASH

    for entry in entries:
        report.entries += 1
        if entry.seq > expected:
            missing = entry.seq - expected
            what = f"entry {expected}" if missing == 1 else f"entries {expected}-{entry.seq - 1}"
            findings.append(Finding("removed", expected, f"{what} removed (sequence gap)"))
            # Judge the rest of the chain from this entry's own link, so one gap is one finding.
            prev_hash = entry.prev_hash or ""
        if digest_of(entry) != entry.entry_hash:
            k = _shift(entry)
            if k and (k != shift or entry.prev_hash != prev_hash):
                if entry.prev_hash in recent or entry.prev_hash == prev_hash:
                    first = entry.seq - k
                    what = f"entry {first}" if k == 1 else f"entries {first}-{entry.seq - 1}"
                    findings.append(
                        Finding("inserted", first, f"{what} inserted (later entries renumbered)")
                    )
                else:
                    findings.append(
                        Finding("altered", entry.seq, f"entry {entry.seq} altered (renumbered)")
                    )
                shift = k
            elif not k:
                findings.append(
                    Finding(
                        "altered",
                        entry.seq,
                        f"entry {entry.seq} altered (its content no longer matches its hash)",
                    )
                )
        elif entry.prev_hash != prev_hash:
            target = max(1, entry.seq - 1)
            findings.append(
                Finding(
                    "altered",
                    target,
                    f"entry {target} altered (its hash no longer matches the link stored in "
                    f"entry {entry.seq})",
                )
            )
        entry_hash = entry.entry_hash or ""
        if entry.seq in wanted:
            hash_at[entry.seq] = entry_hash
        recent.append(entry_hash)
        prev_hash = entry_hash
        expected = entry.seq + 1
        last_seq, last_hash = entry.seq, entry_hash

    head_seq, head_hash = head if head is not None else (0, GENESIS_HASH)
    if head_seq > last_seq:
        what = (
            f"entry {last_seq + 1}"
            if head_seq == last_seq + 1
            else (f"entries {last_seq + 1}-{head_seq}")
        )
        findings.append(Finding("removed", last_seq + 1, f"{what} removed (the head counts more)"))
    elif head_seq < last_seq:
        what = (
            f"entry {head_seq + 1}"
            if last_seq == head_seq + 1
            else (f"entries {head_seq + 1}-{last_seq}")
        )
        findings.append(
            Finding("inserted", head_seq + 1, f"{what} inserted (beyond the recorded head)")
        )
    elif head_hash != last_hash and last_seq > 0:
        findings.append(
            Finding(
                "altered",
                last_seq,
                f"entry {last_seq} altered (its hash no longer matches the recorded head)",
            )
        )

    # A checkpoint that no longer matches is evidence on its own only when the chain walk found
    # nothing at or before it: then the chain was rewritten consistently (hashes and head), and
    # only the signature tells. Otherwise the chain finding already names the first entry.
    explained_from = min((f.seq for f in findings), default=None)
    good_before = 0
    for cp in sorted(checkpoints, key=lambda c: (c.seq, c.id)):
        if cp.key_id != audit_key_id or not checkpoint_signature_valid(cp, audit_public_key):
            findings.append(
                Finding(
                    "checkpoint",
                    cp.seq,
                    f"checkpoint {cp.id} (entry {cp.seq}) has no valid signature by the audit key",
                )
            )
            continue
        stored = hash_at.get(cp.seq)
        if stored != cp.entry_hash and explained_from is not None and explained_from <= cp.seq:
            continue
        if stored is None:
            findings.append(
                Finding("removed", cp.seq, f"entry {cp.seq} removed (checkpoint {cp.id} signs it)")
            )
        elif stored != cp.entry_hash:
            first = good_before + 1
            findings.append(
                Finding(
                    "altered",
                    first,
                    f"entry {first} altered: the chain between entries {first} and {cp.seq} was "
                    f"rewritten (signed checkpoint {cp.id} no longer matches)",
                )
            )
        else:
            good_before = max(good_before, cp.seq)
    return report


def _legacy_entries(session: Session, batch: int = 500) -> Iterable[AuditEntry]:
    last = 0
    while True:
        page = list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.seq > last, AuditEntry.entry_hash.is_not(None))
                .order_by(AuditEntry.seq)
                .limit(batch)
            )
        )
        if not page:
            return
        yield from page
        last = page[-1].seq
        for entry in page:
            session.expunge(entry)


def verify_legacy_chain(
    session: Session, audit_public_key: Ed25519PublicKey, audit_key_id: str
) -> VerifyReport:
    """The hash chain and signed checkpoints of the entries written before the log."""
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.entry_hash)
        .where(AuditEntry.entry_hash.is_not(None))
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    ).first()
    # The chain's end is bound by the tree now (its entries are the first leaves).
    head = None if last is None else (int(last[0]), str(last[1]))
    checkpoints = list(session.scalars(select(AuditCheckpoint)))
    return verify_chain(_legacy_entries(session), head, checkpoints, audit_public_key, audit_key_id)
