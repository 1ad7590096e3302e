"""Filling a registry with many version-2 entries fast, straight into the database.

Registering 31,250 cases (a million entries at `keys_per_check` = 32) through the API would take
an hour of sealed registrations; what a benchmark needs is a registry of that size whose rows
are what registration stores (docs/protocol.md, "Pseudonyms, tags, handles"). So this module
computes real version-2 entries with the network's own key file and inserts them in bulk:

* every case has exactly `keys_per_check` entries `(entry_id, case_id, key_seq, P̂, tag,
  sealed_handle)`, with `P̂ = w·P` under the key file's `w`, `tag(P)` and the handle sealed
  under `handle_key(P)` by `protocol.entry` (RFC 8785 JSON padded to 256 bytes): an entry opens
  with its `P` and a claim against it would verify, exactly like a registered one;
* the handles' kinds and strengths are those `protocol.identity.derive_keys` gives synthetic
  people (`loadtests.people`), the remaining slots `padding`, in random order within the case;
* what is not real: the points. A registered `P` is `skS·HashToGroup(value)` (a hash to the
  group and a scalar multiplication, then another for `w·P`: some 180 µs an entry, three
  minutes for a million on this machine). Here `P` walks the group by random steps
  (`P += D_j`, `P̂ += w·D_j` for a table of random `D_j` with their `w·D_j`): two point
  additions an entry, and the results are valid points with `P̂ = w·P` exactly. Nobody knows a
  value behind them, as nobody would for another member's registrations. The filter the server
  publishes from them is then a set of uniformly distributed prefixes, as a real one is.

Work is split over worker processes (the machine's cores); the parent inserts each chunk as it
comes. Secondary indexes are dropped during the load and re-created from their own definitions
afterwards (building an index once is much faster than updating it a million times), so the
registry ends with exactly the schema the migrations made. Entry and case ids are version-4
UUIDs whose top bits count up, so each insert appends to the primary-key B-tree instead of
splitting pages all over it (real ids are random: that changes the physical order of the index,
not what a lookup by tag costs).

The filter is not published here: the caller does that once the load is done
(`server.filter.services.publish`, as `refcheck-server filter publish` does).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import os
import random
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text

from server.cases.models import Case
from server.consents.models import Consent

#: Cases per unit of work: about 16,000 entries at 32 a case, a few seconds of one core.
_CASES_PER_JOB = 500
#: Random steps of the walk (`D_j` and `w·D_j`), drawn per job.
_STEPS = 16
#: Synthetic people whose key kinds label the seeded handles, cycled.
_LABEL_PEOPLE = 64
#: Entry and case ids of one job count up from `job index << _ID_JOB_BITS`.
_ID_JOB_BITS = 20
_MAX_JOBS = 1 << (48 - 16 - _ID_JOB_BITS)

PSEUDONYM_COLUMNS = ("id", "case_id", "key_seq", "p_hat", "tag", "sealed_handle")
# docs/protocol.md, "Pseudonyms, tags, handles" (checked against protocol.entry per job).
_TAG_PREFIX = b"refcheck/v2/tag"
_HANDLE_INFO = b"refcheck/v2/handle"
_HKDF_SALT = bytes(32)
_HANDLE_SIZE = 256


@dataclass(frozen=True)
class Holder:
    """An organisation whose focal point "registered" the seeded cases."""

    org_id: str
    principal_id: str


@dataclass(frozen=True)
class EntryKeys:
    """What computing entries needs from the network: the key file's `w` and `key_seq`, and the
    policy's `keys_per_check`."""

    wrap: bytes
    key_seq: int
    keys_per_check: int

    @classmethod
    def of_network(cls, data_dir: Path, policy_file: Path) -> EntryKeys:
        from server.keys import load_keys
        from server.policy.schema import load_policy

        keys = load_keys(data_dir / "server")
        return cls(keys.oprf_wrap, keys.oprf_key_seq, load_policy(policy_file).keys_per_check)


@dataclass(frozen=True)
class SeedResult:
    entries: int
    cases: int
    seconds: float


@dataclass(frozen=True)
class _Holder:
    org_id: str
    principal_id: str
    name: str


@dataclass(frozen=True)
class _Job:
    index: int
    cases: int
    seed: int
    id_base: int
    keys: EntryKeys
    holders: tuple[_Holder, ...]
    labels: tuple[tuple[tuple[str, str], ...], ...]
    today: date
    now: datetime


def key_labels(
    keys_per_check: int, people: int = _LABEL_PEOPLE
) -> list[tuple[tuple[str, str], ...]]:
    """(kind, strength) of the keys `derive_keys` gives synthetic people, cut to
    `keys_per_check` by its fixed priority, then `padding` up to `keys_per_check`."""
    from loadtests.people import person
    from protocol.codes import PADDING_KIND
    from protocol.identity import derive_keys

    out = []
    for i in range(people):
        real = [(k.kind, str(k.strength.value)) for k in derive_keys(person(i, seed=7))]
        real = real[:keys_per_check]
        out.append(tuple(real + [(PADDING_KIND, "variant")] * (keys_per_check - len(real))))
    return out


class _Ids:
    """UUID-4-shaped ids counting up from `base` in their top bits (see the module doc)."""

    def __init__(self, rng: random.Random, base: int) -> None:
        self._rng = rng
        self._next = base

    def __call__(self) -> str:
        self._next += 1
        return str(uuid.UUID(int=(self._next << 80) | self._rng.getrandbits(80), version=4))


def _case_row(case_id: str, holder: _Holder, today: date, now: datetime) -> dict[str, Any]:
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
        "status": "active",
        "created_at": now,
        "withdrawn_at": None,
        "withdrawal_reason": None,
        "withdrawal_note": None,
    }


def _run_job(job: _Job) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """One job's case rows and entry rows (in `PSEUDONYM_COLUMNS` order).

    The tag, the handle's plaintext, its key and its box are computed here with the standard
    library and libsodium directly (a quarter of what `protocol.entry`'s checked, general
    functions cost an entry); the first entry of every job is compared byte for byte with
    `protocol.entry` (`_same_as_protocol`), and the smoke test opens every seeded handle with it.
    """
    import rbcl
    from nacl.bindings import crypto_secretbox

    from protocol.hazmat.ristretto255 import scalar_mult

    rng = random.Random(job.seed)
    shuffle = random.SystemRandom().shuffle
    new_id = _Ids(rng, job.id_base)
    wrap = job.keys.wrap
    key_seq = job.keys.key_seq
    add = rbcl.crypto_core_ristretto255_add
    sha256 = hashlib.sha256
    hmac_digest = hmac.digest
    urandom = os.urandom
    steps = [rbcl.crypto_core_ristretto255_random() for _ in range(_STEPS)]
    wrapped_steps = [scalar_mult(wrap, d) for d in steps]
    p = rbcl.crypto_core_ristretto255_random()
    p_hat = scalar_mult(wrap, p)
    cases: list[dict[str, Any]] = []
    entries: list[tuple[Any, ...]] = []
    for c in range(job.cases):
        holder = job.holders[c % len(job.holders)]
        org_id, org_name = json.dumps(holder.org_id), json.dumps(holder.name, ensure_ascii=False)
        case_id = new_id()
        cases.append(_case_row(case_id, holder, job.today, job.now))
        labels = list(job.labels[(job.index * job.cases + c) % len(job.labels)])
        shuffle(labels)
        for kind, strength in labels:
            j = rng.randrange(_STEPS)
            p = add(p, steps[j])
            p_hat = add(p_hat, wrapped_steps[j])
            entry_id = new_id()
            # RFC 8785: these keys in this order, ids and codes plain ASCII, no spaces.
            plaintext = (
                f'{{"case_id":"{case_id}","entry_id":"{entry_id}","holder_org_id":{org_id},'
                f'"holder_org_name":{org_name},"kind":"{kind}","strength":"{strength}"}}'
            ).encode()
            plaintext += b" " * (_HANDLE_SIZE - len(plaintext))
            prk = hmac_digest(_HKDF_SALT, p, "sha256")
            handle_key = hmac_digest(prk, _HANDLE_INFO + b"\x01", "sha256")
            nonce = urandom(24)
            sealed = nonce + crypto_secretbox(plaintext, nonce, handle_key)
            entry = (
                entry_id,
                case_id,
                key_seq,
                p_hat,
                sha256(_TAG_PREFIX + p).digest()[:16],
                sealed,
            )
            if len(entries) == 0:
                _same_as_protocol(entry, p, holder, kind, strength)
            entries.append(entry)
    return cases, entries


def _same_as_protocol(
    entry: tuple[Any, ...], p: bytes, holder: _Holder, kind: str, strength: str
) -> None:
    """Refuse to go on if an entry computed by `_run_job` is not what `protocol.entry` makes
    and opens: a seeded registry must be one the server can serve."""
    from protocol.entry import Handle, open_handle, tag

    entry_id, case_id, _key_seq, _p_hat, entry_tag, sealed = entry
    expected = Handle(
        entry_id=entry_id,
        case_id=case_id,
        holder_org_id=holder.org_id,
        holder_org_name=holder.name,
        kind=kind,
        strength=strength,
    )
    if entry_tag != tag(p) or open_handle(p, sealed) != expected:
        raise RuntimeError("seeded entry differs from protocol.entry's: fix loadtests.seed")


def _jobs(
    cases: int,
    holders: Sequence[_Holder],
    keys: EntryKeys,
    seed: int,
    per_job: int,
) -> list[_Job]:
    rng = random.Random(seed)
    # The top 48 bits of an id: 16 random bits (two loads into one registry do not interleave),
    # the job's index, and a counter of the job's ids.
    base = rng.getrandbits(16) << (48 - 16)
    if cases > _MAX_JOBS * per_job:
        raise ValueError(f"at most {_MAX_JOBS * per_job:,} cases in one load")
    labels = tuple(key_labels(keys.keys_per_check))
    now = datetime.now(UTC)
    jobs = []
    for index, start in enumerate(range(0, cases, per_job)):
        jobs.append(
            _Job(
                index=index,
                cases=min(per_job, cases - start),
                seed=rng.getrandbits(64),
                id_base=base | (index << _ID_JOB_BITS),
                keys=keys,
                holders=tuple(holders),
                labels=labels,
                today=now.date(),
                now=now,
            )
        )
    return jobs


def _results(
    jobs: list[_Job], workers: int
) -> Iterator[tuple[list[dict[str, Any]], list[tuple[Any, ...]]]]:
    """Each job's rows, in job order; computed by `workers` processes when there is more than
    one job (spawned, not forked: nothing of the parent's engine or threads is copied)."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _run_job(job)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_run_job, jobs)


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


def _copy(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
    """PostgreSQL COPY: several times faster than batched INSERTs for a million rows."""
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _insert_sqlite(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """The DB-API's executemany with plain tuples (every column is text, integer or bytes, so
    there is nothing for SQLAlchemy's type processing to do but cost time)."""
    marks = ", ".join("?" for _ in PSEUDONYM_COLUMNS)
    sql = f"INSERT INTO pseudonyms ({', '.join(PSEUDONYM_COLUMNS)}) VALUES ({marks})"
    raw: Any = conn.connection.driver_connection
    raw.executemany(sql, rows)


def _named_holders(conn: Connection, holders: Sequence[Holder]) -> list[_Holder]:
    from server.registry.models import Organisation

    names = dict(
        conn.execute(
            select(Organisation.id, Organisation.short_name).where(
                Organisation.id.in_([h.org_id for h in holders])
            )
        ).all()
    )
    return [_Holder(h.org_id, h.principal_id, str(names[h.org_id])) for h in holders]


def seed_entries(
    engine: Engine,
    count: int,
    *,
    holders: Sequence[Holder],
    keys: EntryKeys,
    seed: int | None = None,
    workers: int | None = None,
    cases_per_job: int = _CASES_PER_JOB,
) -> SeedResult:
    """Add cases of `keys.keys_per_check` entries each to the registry of `engine`: as many as
    hold `count` entries, rounded up to whole cases. `workers` processes compute them (default:
    the machine's cores, at most 4), `cases_per_job` cases at a time."""
    if count <= 0:
        return SeedResult(0, 0, 0.0)
    started = time.perf_counter()
    seed = seed if seed is not None else int.from_bytes(os.urandom(8), "big")
    workers = workers if workers is not None else max(1, min(os.cpu_count() or 1, 4))
    cases = -(-count // keys.keys_per_check)
    entries_total = 0
    cases_total = 0
    with engine.begin() as conn:
        named = _named_holders(conn, holders)
        jobs = _jobs(cases, named, keys, seed, cases_per_job)
        postgres = conn.dialect.name == "postgresql"
        indexes = _secondary_indexes(conn)
        for name, _sql in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
        for case_rows, entry_rows in _results(jobs, workers):
            if postgres:
                columns = list(case_rows[0])
                _copy(conn, "cases", columns, [[r[c] for c in columns] for r in case_rows])
                _copy(conn, "pseudonyms", PSEUDONYM_COLUMNS, entry_rows)
            else:
                conn.execute(insert(Case), case_rows)
                _insert_sqlite(conn, entry_rows)
            cases_total += len(case_rows)
            entries_total += len(entry_rows)
        for _name, sql in indexes:
            conn.execute(text(sql))
        if postgres:
            conn.execute(text("ANALYZE pseudonyms"))
            conn.execute(text("ANALYZE cases"))
        else:
            conn.execute(text("ANALYZE"))
    if not postgres:
        # The load went through the write-ahead log in one transaction; a registry built over
        # months has no such log, and reads would look every page up in it until a checkpoint.
        # Through the driver: SQLAlchemy would open a transaction, inside which SQLite refuses.
        raw = engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
        finally:
            raw.close()
    return SeedResult(entries_total, cases_total, time.perf_counter() - started)


def seed_consents(
    engine: Engine,
    count: int,
    *,
    org_id: str,
    principal_id: str,
    org_keys: Mapping[str, str] | None = None,
    purpose: str = "rescreening",
    max_checks: int = 53,
    validity_days: int = 364,
) -> list[str]:
    """Insert `count` live consent receipts of one organisation in one statement; returns their
    ids. A nightly re-screening finds its consents already recorded (a re-screening consent is
    valid for a year and covers weekly checks), so a benchmark of checks starts from there too.

    Where the schema keeps what the HR system knows of a consent sealed to its organisation
    (`sealed_details`), each receipt's details are sealed and signed with `org_keys` (the
    credentials file's `org_keys`: `x25519_private` and `ed25519_private`), as the SDK does.
    """
    now = datetime.now(UTC)
    columns = set(Consent.__table__.c.keys())
    form_sha256 = hashlib.sha256(b"refcheck benchmark declaration form").hexdigest()
    ids = [str(uuid.uuid4()) for _ in range(count)]
    rows = []
    for i, consent_id in enumerate(ids):
        row: dict[str, Any] = {
            "id": consent_id,
            "org_id": org_id,
            "recorded_by": principal_id,
            "applicant_ref": f"BENCH-{i:06d}",
            "purpose": purpose,
            "position_ref": "benchmark",
            "form_sha256": form_sha256,
            "self_declared_finding": False,
            "consented_at": now,
            "expires_on": now.date() + timedelta(days=validity_days),
            "max_checks": max_checks,
            "checks_used": 0,
            "withdrawn_at": None,
            "lookup_code_sha256": os.urandom(32).hex(),
            "created_at": now,
        }
        if "sealed_details" in columns:
            row["sealed_details"] = _sealed_details(row, org_keys)
        rows.append({k: v for k, v in row.items() if k in columns})
    with engine.begin() as conn:
        conn.execute(insert(Consent), rows)
    return ids


def _sealed_details(row: Mapping[str, Any], org_keys: Mapping[str, str] | None) -> bytes:
    from nacl.public import PrivateKey

    from protocol import consent_details

    if org_keys is None:
        raise ValueError("this schema seals consent details: pass the organisation's org_keys")
    details = consent_details.ConsentDetails(
        applicant_ref=row["applicant_ref"],
        position_ref=row["position_ref"],
        form_sha256=row["form_sha256"],
        self_declared_finding=row["self_declared_finding"],
        purpose=row["purpose"],
        consented_at=row["consented_at"],
    )
    public = bytes(PrivateKey(bytes.fromhex(org_keys["x25519_private"])).public_key)
    seed = bytes.fromhex(org_keys["ed25519_private"])
    return consent_details.seal_details(details, public, signing_seed=seed)


__all__ = [
    "PSEUDONYM_COLUMNS",
    "EntryKeys",
    "Holder",
    "SeedResult",
    "key_labels",
    "seed_consents",
    "seed_entries",
]
