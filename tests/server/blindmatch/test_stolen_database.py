"""A stolen database (issue 12, "Stolen database"): the thief has the SQLite file and a registered
person's record, but not the key files. Nothing in the file tells that person apart from anyone
else, and no handle opens.

Version 1 failed this: `bucket` was an unkeyed hash prefix of each key, so "are all of this
person's buckets occupied?" found 3 of 3 registered people and 0 of 1,000 others. Version 2 stores
only `(entry_id, case_id, key_seq, P̂, tag, sealed_handle)`, all functions of `skS` (and `w`),
exactly `keys_per_check` rows per case in random order (docs/protocol.md, "Pseudonyms, tags,
handles").

The database is built once for the module through the real API (a network, four registrations,
a check with a claim), then read with `sqlite3` alone, as a thief would. Only the tests marked
"control" use the key files, to show that what the thief cannot find is there.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from protocol.entry import (
    filler_input,
    hash_to_group,
    open_handle,
    pad_input,
    prefix,
    tag,
)
from protocol.hazmat.ristretto255 import scalar_mult
from protocol.identity import derive_keys
from server.app import create_app
from server.db import make_engine, make_session_factory
from server.keys import ServerKeys
from server.migrate import upgrade
from server.settings import Settings
from tests.blindflow import check_person, record_consent, register_person
from tests.conftest import MutableClock
from tests.factories import AppClient, build_network
from tests.server.blindmatch.people import OTHER, REGISTERED
from tests.server.blindmatch.stored import pseudonym

ENTRY_COLUMNS = {"id", "case_id", "key_seq", "p_hat", "tag", "sealed_handle"}


def _random_person(rng: random.Random) -> dict[str, object]:
    """An invented person with a varying number of keys (names, documents, e-mail or not)."""
    syllables = ["ka", "ri", "mo", "su", "an", "de", "wi", "lu", "ta", "ne", "ro", "ya"]

    def word() -> str:
        return "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))).capitalize()

    born = date(rng.randint(1960, 2000), rng.randint(1, 12), rng.randint(1, 28))
    person: dict[str, object] = {
        "full_name": " ".join(word() for _ in range(rng.randint(2, 3))),
        "date_of_birth": born.isoformat(),
    }
    if rng.random() < 0.5:
        person.update(nationality="ID", national_id=str(rng.randint(10**15, 10**16 - 1)))
    if rng.random() < 0.5:
        person["email"] = f"{word().lower()}.{word().lower()}@example.org"
    return person


@dataclass(frozen=True)
class Stolen:
    path: Path
    keys_per_check: int
    registered_case: str
    other_cases: list[str]
    file_bytes: bytes

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

    def rows(self, case_id: str) -> list[tuple[Any, ...]]:
        """The case's entries in the order they are stored (insertion order)."""
        with self.db() as db:
            return db.execute(
                "SELECT id, key_seq, p_hat, tag, sealed_handle FROM pseudonyms "
                "WHERE case_id = ? ORDER BY rowid",
                (case_id,),
            ).fetchall()

    @property
    def all_cases(self) -> list[str]:
        return [self.registered_case, *self.other_cases]


async def _build(path: Path, key_dir: Path) -> tuple[str, list[str], int]:
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(
        environment="test", data_dir=key_dir, database_url=url, run_background_jobs=False
    )
    clock = MutableClock()
    app = create_app(settings, bind=engine, clock=clock)
    ctx = app.state.ctx
    ctx.policy = ctx.policy.model_copy(update={"filter_publish_seconds": 0})
    try:
        async with AppClient(app) as client:
            with make_session_factory(engine)() as session:
                network = await build_network(session, client, clock.today())
            today = clock.today()
            registered = await register_person(
                client, network.a_focal.headers, REGISTERED, today=today
            )
            others = [await register_person(client, network.b_focal.headers, OTHER, today=today)]
            rng = random.Random(20261207)
            for _ in range(2):
                person = _random_person(rng)
                others.append(
                    await register_person(client, network.a_focal.headers, person, today=today)
                )
            consent = await record_consent(client, network.b_hr.headers, now=clock())
            outcome = await check_person(client, network.b_hr.headers, consent["id"], REGISTERED)
            assert outcome.case_ids == {registered["id"]}
            return registered["id"], [c["id"] for c in others], ctx.policy.keys_per_check
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def stolen(tmp_path_factory: pytest.TempPathFactory, key_dir: Path) -> Iterator[Stolen]:
    path = tmp_path_factory.mktemp("stolen") / "refcheck.db"
    registered, others, keys_per_check = anyio.run(_build, path, key_dir)
    # What a copy of the data directory's database holds: the file and any write-ahead log.
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        data += wal.read_bytes()
    yield Stolen(path, keys_per_check, registered, others, data)


def _unkeyed(value: bytes) -> dict[str, bytes]:
    """What anyone can compute from one of the person's keys without `skS`: plain hashes, the
    element a registration seals, version 1's derivations, and version 2's applied to the
    unkeyed element instead of `P`."""
    element = hash_to_group(value)
    return {
        "value": value,
        "sha256": hashlib.sha256(value).digest(),
        "sha512": hashlib.sha512(value).digest(),
        "v1-bucket-hash": hashlib.sha256(b"refcheck/v1/bucket" + value).digest(),
        "element": element,
        "v1-tag-of-element": hashlib.sha256(b"refcheck/v1/tag" + element).digest()[:16],
        "v2-tag-of-element": tag(element),
        "v2-tag-of-value-hash": hashlib.sha256(b"refcheck/v2/tag" + value).digest()[:16],
        "hmac-of-value": hmac.new(b"refcheck", value, hashlib.sha256).digest(),
    }


# --- what the file holds -----------------------------------------------------------------------


def test_entries_are_six_columns_and_nothing_counts_or_labels_a_persons_keys(
    stolen: Stolen,
) -> None:
    with stolen.db() as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        columns = {t: {r[1] for r in db.execute(f'PRAGMA table_info("{t}")')} for t in tables}
    assert columns["pseudonyms"] == ENTRY_COLUMNS
    for table, names in columns.items():
        for name in names:
            assert not {"bucket", "strength", "element"} & set(name.split("_")), (table, name)
    # No count of a person's keys on the case, the check or anywhere else.
    for table in ("cases", "checks", "pseudonyms", "check_claims"):
        assert not [n for n in columns[table] if "count" in n or n == "kind"], table


def test_every_case_has_keys_per_check_entries_of_one_length(stolen: Stolen) -> None:
    with stolen.db() as db:
        per_case = dict(db.execute("SELECT case_id, count(*) FROM pseudonyms GROUP BY case_id"))
        lengths = db.execute(
            "SELECT DISTINCT length(id), length(p_hat), length(tag), length(sealed_handle), "
            "key_seq FROM pseudonyms"
        ).fetchall()
    assert per_case == dict.fromkeys(stolen.all_cases, stolen.keys_per_check)
    # One length for every handle (a pad's and a long organisation name's alike).
    assert lengths == [(36, 32, 16, 296, 1)]


def test_a_registered_persons_case_looks_like_everyone_elses(stolen: Stolen) -> None:
    """REGISTERED has 28 keys, OTHER 20, the invented people other numbers: their cases are
    indistinguishable by anything the thief can measure."""
    counts = {len(derive_keys(REGISTERED)), len(derive_keys(OTHER))}
    assert len(counts) == 2

    def profile(case_id: str) -> tuple[Any, ...]:
        rows = stolen.rows(case_id)
        return (
            len(rows),
            tuple(sorted({(len(r[2]), len(r[3]), len(r[4])) for r in rows})),
            tuple(sorted({r[1] for r in rows})),
        )

    profiles = {profile(c) for c in stolen.all_cases}
    assert len(profiles) == 1
    with stolen.db() as db:
        audited = db.execute(
            "SELECT DISTINCT details FROM audit_entries WHERE action = 'case.register'"
        ).fetchall()
        evaluations = db.execute(
            "SELECT value FROM stat_counters WHERE name = 'registration_evaluations'"
        ).fetchall()
    assert len(audited) == 1, "every registration is audited alike"
    assert all(v % stolen.keys_per_check == 0 for (v,) in evaluations)


def test_no_unkeyed_function_of_the_persons_keys_is_in_the_file(stolen: Stolen) -> None:
    with stolen.db() as db:
        tags = [bytes(t) for (t,) in db.execute("SELECT tag FROM pseudonyms")]
    prefixes = {t[:6] for t in tags}
    found: list[str] = []
    for key in derive_keys(REGISTERED):
        for name, candidate in _unkeyed(key.value).items():
            if candidate in stolen.file_bytes or candidate.hex().encode() in stolen.file_bytes:
                found.append(f"{key.kind}/{name}")
            if candidate[:16] in tags or candidate[:6] in prefixes:
                found.append(f"{key.kind}/{name} as a tag")
    assert found == []
    # The search itself works: what is stored is found.
    assert tags[0] in stolen.file_bytes


def test_control_with_the_key_file_the_same_search_finds_the_person(
    stolen: Stolen, server_keys: ServerKeys
) -> None:
    """What the thief lacks is `skS`: with it, the person's tags are all in the file, in their
    own case. So the previous test finding nothing is the key's doing, not an empty search."""
    rows = stolen.rows(stolen.registered_case)
    stored = {bytes(r[3]) for r in rows}
    keys = derive_keys(REGISTERED)
    assert {tag(pseudonym(server_keys, k)) for k in keys} <= stored


def test_the_rows_of_a_case_are_not_in_derivation_order(
    stolen: Stolen, server_keys: ServerKeys
) -> None:
    """Insertion order would tell strong keys from variants and real entries from pads. (The
    test needs the key to know which row is which; the thief sees only the order.)"""
    rows = stolen.rows(stolen.registered_case)
    position = {bytes(r[3]): i for i, r in enumerate(rows)}
    keys = derive_keys(REGISTERED)
    order = [position[tag(pseudonym(server_keys, k))] for k in keys]
    assert order != sorted(order), "real entries stored in derivation order"
    assert set(order) != set(range(len(keys))), "real entries stored before the pads"


def test_no_handle_opens_with_anything_computable_from_the_database(stolen: Stolen) -> None:
    with stolen.db() as db:
        entries = db.execute(
            "SELECT case_id, p_hat, tag, sealed_handle FROM pseudonyms WHERE case_id = ?",
            (stolen.registered_case,),
        ).fetchall()
        p_hats = [bytes(p) for (p,) in db.execute("SELECT p_hat FROM pseudonyms")]
        evaluated = db.execute("SELECT evaluated FROM checks WHERE evaluated IS NOT NULL")
        zs = [bytes(blob)[i : i + 32] for (blob,) in evaluated for i in range(0, len(blob), 32)]
    candidates = [*p_hats, *zs]
    candidates += [hash_to_group(k.value) for k in derive_keys(REGISTERED)]
    candidates += [
        hash_to_group(pad_input(stolen.registered_case, i)) for i in range(stolen.keys_per_check)
    ]
    candidates += [hash_to_group(filler_input(k)) for k in range(1, 9)]
    opened = [
        (i, j)
        for i, (_case, _p_hat, _tag, sealed) in enumerate(entries)
        for j, candidate in enumerate(candidates)
        if open_handle(candidate, bytes(sealed)) is not None
    ]
    assert opened == []


def test_control_with_the_key_file_every_handle_opens(
    stolen: Stolen, server_keys: ServerKeys
) -> None:
    rows = stolen.rows(stolen.registered_case)
    handles = [
        open_handle(scalar_mult(server_keys.oprf_unwrap, bytes(r[2])), bytes(r[4])) for r in rows
    ]
    assert all(h is not None and h.case_id == stolen.registered_case for h in handles)
    kinds = {h.kind for h in handles if h is not None}
    assert "padding" in kinds and "national_id" in kinds
    assert prefix(scalar_mult(server_keys.oprf_unwrap, bytes(rows[0][2]))) == int.from_bytes(
        bytes(rows[0][3])[:6], "big"
    )


def test_the_stolen_file_is_dated_and_complete(stolen: Stolen) -> None:
    """The fixture's own check: the file holds the four cases and the check that claimed one."""
    with stolen.db() as db:
        cases = db.execute("SELECT count(*) FROM cases").fetchone()[0]
        claims = db.execute("SELECT count(*) FROM check_claims").fetchone()[0]
        created = db.execute("SELECT max(created_at) FROM cases").fetchone()[0]
    assert cases == 4 and claims > 0
    assert str(datetime.now(UTC).year) in str(created)
