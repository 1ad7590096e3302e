"""Filling a registry with many pseudonyms fast, straight into the database.

Registering 1,000,000 pseudonyms through the API would take hours of blind evaluations; what a
benchmark of checks needs is only a registry of that size with realistic rows. So this module
inserts rows in bulk, with the shapes registration produces:

* each filler case has `KEYS_PER_CASE` pseudonyms (a person has about that many keys: name and
  date of birth, variants, a document number, an e-mail address), spread uniformly over the
  policy's buckets, as bucket prefixes of real keys are;
* elements are valid ristretto255 points (`rbcl.crypto_core_ristretto255_random`), drawn from a
  pool because 1,000,000 draws would cost a minute on a small machine: an element repeats across
  cases, never within one (the table's unique constraint), and no check reads it;
* tags are random 16 bytes and sealed handles random blobs of exactly the length `seal_handle`
  gives a real handle, so a bucket answer has the real size. A filler entry can never match a
  real key (a tag collision has probability 2^-128).

Secondary indexes are dropped during the load and re-created from their own definitions
afterwards (building an index once is much faster than updating it a million times), so the
registry ends with exactly the schema the migrations made.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import rbcl
from sqlalchemy import Connection, Engine, insert, text

from protocol.pseudonym import Handle, seal_handle
from server.cases.models import Case
from server.consents.models import Consent

KEYS_PER_CASE = 5
_ELEMENT_POOL = 4096
_CHUNK = 20_000


@dataclass(frozen=True)
class Holder:
    """An organisation whose focal point "registered" the filler cases."""

    org_id: str
    principal_id: str


@dataclass(frozen=True)
class SeedResult:
    pseudonyms: int
    cases: int
    seconds: float


def sealed_handle_size() -> int:
    """Length of a real sealed handle (nonce, MAC and the JSON of a typical handle)."""
    handle = Handle(
        entry_id=str(uuid.uuid4()),
        case_id=str(uuid.uuid4()),
        holder_org_id=str(uuid.uuid4()),
        holder_org_name="Org A Humanitarian Relief (demo)",
        kind="name_dob_variant",
        strength="variant",
    )
    return len(seal_handle(rbcl.crypto_core_ristretto255_random(), handle))


class _Ids:
    """Version-4-shaped UUIDs whose top bits count up: unique, and each new id lands at the end
    of the primary-key and unique indexes, so the load appends to B-trees instead of splitting
    pages all over them (real ids are random, which changes the physical order of the indexes,
    not what a lookup by bucket costs)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._next = rng.getrandbits(40) << 8

    def __call__(self) -> str:
        self._next += 1
        return str(uuid.UUID(int=(self._next << 80) | self._rng.getrandbits(80), version=4))


def _case_row(case_id: str, holder: Holder, key_id: str, today: date, now: datetime) -> dict:
    finding = today - timedelta(days=400)
    return {
        "id": case_id,
        "org_id": holder.org_id,
        "registered_by": holder.principal_id,
        "category": "sexual_abuse",
        "child_victim": False,
        "finding": "substantiated",
        "sanction": "dismissal",
        "finding_date": finding,
        "legal_basis": "legitimate_interests",
        "retention_until": finding + timedelta(days=5 * 365),
        "mou_reference": "MoU-2026-01",
        "subject_notified_on": finding + timedelta(days=7),
        "key_id": key_id,
        "status": "active",
        "pseudonym_count": KEYS_PER_CASE,
        "created_at": now,
        "withdrawn_at": None,
        "withdrawal_reason": None,
        "withdrawal_note": None,
    }


_KINDS = (
    ("name_dob", "exact"),
    ("name_dob_variant", "variant"),
    ("name_dob_variant", "variant"),
    ("national_id", "strong"),
    ("email", "strong"),
)


def _rows(
    count: int, holders: Sequence[Holder], key_id: str, bucket_bits: int, seed: int
) -> Iterator[tuple[list[dict], list[dict]]]:
    """Chunks of (case rows, pseudonym rows) adding up to `count` pseudonyms."""
    rng = random.Random(seed)
    new_id = _Ids(rng)
    pool = [rbcl.crypto_core_ristretto255_random() for _ in range(_ELEMENT_POOL)]
    handle_size = sealed_handle_size()
    now = datetime.now(UTC)
    today = now.date()
    buckets = 1 << bucket_bits
    made = 0
    while made < count:
        cases: list[dict] = []
        pseudonyms: list[dict] = []
        while made < count and len(pseudonyms) < _CHUNK:
            holder = holders[len(cases) % len(holders)]
            case_id = new_id()
            n = min(KEYS_PER_CASE, count - made)
            row = _case_row(case_id, holder, key_id, today, now)
            row["pseudonym_count"] = n
            cases.append(row)
            start = rng.randrange(_ELEMENT_POOL)
            for i in range(n):
                kind, strength = _KINDS[i]
                pseudonyms.append(
                    {
                        "id": new_id(),
                        "case_id": case_id,
                        "org_id": holder.org_id,
                        "key_id": key_id,
                        "kind": kind,
                        "strength": strength,
                        "bucket": rng.randrange(buckets),
                        "element": pool[(start + i) % _ELEMENT_POOL],
                        "tag": rng.randbytes(16),
                        "sealed_handle": rng.randbytes(handle_size),
                    }
                )
            made += n
        yield cases, pseudonyms


def _secondary_indexes(conn: Connection) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the pseudonyms and cases indexes that back no
    constraint."""
    if conn.dialect.name == "sqlite":
        rows = conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name IN ('pseudonyms', 'cases') AND sql IS NOT NULL"
            )
        ).all()
    else:
        rows = conn.execute(
            text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "WHERE i.tablename IN ('pseudonyms', 'cases')"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
            )
        ).all()
    return [(str(name), str(sql)) for name, sql in rows]


def _copy(conn: Connection, table: str, rows: list[dict]) -> None:
    """PostgreSQL COPY: several times faster than batched INSERTs for a million rows."""
    columns = list(rows[0])
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])


def _insert_sqlite(conn: Connection, rows: list[dict]) -> None:
    """The DB-API's executemany with plain tuples (every column is text, integer or bytes, so
    there is nothing for SQLAlchemy's type processing to do but cost time)."""
    columns = list(rows[0])
    sql = (
        f"INSERT INTO pseudonyms ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    )
    raw: Any = conn.connection.driver_connection
    raw.executemany(sql, [tuple(row[c] for c in columns) for row in rows])


def seed_pseudonyms(
    engine: Engine,
    count: int,
    *,
    holders: Sequence[Holder],
    key_id: str,
    bucket_bits: int,
    seed: int | None = None,
) -> SeedResult:
    """Add `count` filler pseudonyms (in cases of `KEYS_PER_CASE`) to the registry of `engine`."""
    if count <= 0:
        return SeedResult(0, 0, 0.0)
    started = time.perf_counter()
    seed = seed if seed is not None else int.from_bytes(os.urandom(8), "big")
    cases_total = 0
    with engine.begin() as conn:
        indexes = _secondary_indexes(conn)
        for name, _sql in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
        for cases, pseudonyms in _rows(count, holders, key_id, bucket_bits, seed):
            if conn.dialect.name == "postgresql":
                _copy(conn, "cases", cases)
                _copy(conn, "pseudonyms", pseudonyms)
            else:
                conn.execute(insert(Case), cases)
                _insert_sqlite(conn, pseudonyms)
            cases_total += len(cases)
        for _name, sql in indexes:
            conn.execute(text(sql))
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE pseudonyms"))
            conn.execute(text("ANALYZE cases"))
        else:
            conn.execute(text("ANALYZE"))
    return SeedResult(count, cases_total, time.perf_counter() - started)


def seed_consents(
    engine: Engine,
    count: int,
    *,
    org_id: str,
    principal_id: str,
    purpose: str = "rescreening",
    max_checks: int = 53,
    validity_days: int = 364,
) -> list[str]:
    """Insert `count` live consent receipts of one organisation in one statement; returns their
    ids. A nightly re-screening finds its consents already recorded (a re-screening consent is
    valid for a year and covers weekly checks), so a benchmark of checks starts from there too."""
    now = datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    rows = [
        {
            "id": consent_id,
            "org_id": org_id,
            "recorded_by": principal_id,
            "applicant_ref": f"BENCH-{i:06d}",
            "purpose": purpose,
            "position_ref": "benchmark",
            "form_sha256": hashlib.sha256(b"refcheck benchmark declaration form").hexdigest(),
            "self_declared_finding": False,
            "consented_at": now,
            "expires_on": now.date() + timedelta(days=validity_days),
            "max_checks": max_checks,
            "checks_used": 0,
            "withdrawn_at": None,
            "lookup_code_sha256": os.urandom(32).hex(),
            "created_at": now,
        }
        for i, consent_id in enumerate(ids)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Consent), rows)
    return ids


__all__ = [
    "KEYS_PER_CASE",
    "Holder",
    "SeedResult",
    "sealed_handle_size",
    "seed_consents",
    "seed_pseudonyms",
]
