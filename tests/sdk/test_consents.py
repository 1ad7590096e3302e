"""Consent details sealed to the hiring organisation (issue 13, "Consent details sealed").

The SDK seals the applicant's and the position's references, the signed form's SHA-256 and the
self-declaration to its own organisation's X25519 key, signed with its Ed25519 key
(`protocol.consent_details`); the server keeps the blob and what it enforces. Here: the round
trip through the real app, what the requests carry, that no other key opens the details, what
the SDK does with details the server made or moved, and the stolen database: given the SQLite
file and the HR system's applicant list, no consent row tells which applicant matched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from client_sdk import (
    AsyncClient,
    CheckStatus,
    CredentialsError,
    InvalidInput,
    InvalidResponse,
)
from client_sdk.consents import open_receipt
from client_sdk.credentials import OrgKeys
from protocol import messages as wire
from protocol.consent_details import (
    SEALED_SIZE,
    ConsentDetails,
    NotSealedToThisKey,
    open_details,
    seal_details,
)
from server.app import create_app
from server.db import make_engine, make_session_factory
from server.migrate import upgrade
from server.settings import Settings
from tests.conftest import MutableClock
from tests.factories import AppClient, Network, build_network
from tests.sdk.conftest import (
    FAST_RETRY,
    Recording,
    SdkFactory,
    Tamper,
    case_fields,
    credentials_for,
    sdk_clock,
)
from tests.server.blindmatch.people import REGISTERED

pytestmark = pytest.mark.anyio

FORM = hashlib.sha256(b"the signed declaration of APP-2026-0042").hexdigest()
DETAILS: dict[str, Any] = {
    "applicant_ref": "APP-2026-0042",
    "position_ref": "POS-WASH-07",
    "form_sha256": FORM,
    "self_declared_finding": True,
}


def _org_keys(network: Network, which: str) -> OrgKeys:
    keys = network.org_a_keys if which == "a" else network.org_b_keys
    return OrgKeys.from_dict(keys.credentials_dict())


async def test_details_are_sealed_on_the_way_out_and_opened_on_the_way_back(
    sdk_for: SdkFactory, network: Network, app: Any
) -> None:
    recording = Recording(httpx.ASGITransport(app=app))
    hr = sdk_for(network.b_hr, transport=recording)
    receipt = await hr.record_consent_receipt(purpose="recruitment", max_checks=2, **DETAILS)
    assert receipt.lookup_code
    assert receipt.details == "signed"
    assert {k: getattr(receipt, k) for k in DETAILS} == DETAILS

    read = await hr.get_consent(receipt.id)
    assert read.lookup_code is None
    assert read.details == "signed"
    assert read.model_dump(exclude={"lookup_code"}) == receipt.model_dump(exclude={"lookup_code"})

    withdrawn = await hr.withdraw_consent(receipt.id)
    assert withdrawn.status == "withdrawn"
    assert {k: getattr(withdrawn, k) for k in DETAILS} == DETAILS

    # The server was sent the details only sealed, in a blob of the one fixed size.
    [posted] = [r for r in recording.requests if r.url.path == "/v1/consents"]
    body = json.loads(posted.content)
    assert set(body) == {"purpose", "consented_at", "max_checks", "sealed_details"}
    assert len(bytes.fromhex(body["sealed_details"])) == SEALED_SIZE
    for value in ("APP-2026-0042", "POS-WASH-07", FORM, FORM.upper()):
        assert value.encode() not in posted.content


async def test_the_blob_has_one_size_whatever_the_details(
    sdk_for: SdkFactory, network: Network, app: Any
) -> None:
    recording = Recording(httpx.ASGITransport(app=app))
    hr = sdk_for(network.b_hr, transport=recording)
    await hr.record_consent(
        applicant_ref="A",
        purpose="recruitment",
        position_ref="P",
        form_sha256=FORM,
        self_declared_finding=False,
    )
    await hr.record_consent(
        applicant_ref="A" * 128,
        purpose="rescreening",
        position_ref="P" * 128,
        form_sha256=FORM,
        self_declared_finding=True,
    )
    sizes = {
        len(json.loads(r.content)["sealed_details"])
        for r in recording.requests
        if r.url.path == "/v1/consents"
    }
    assert sizes == {2 * SEALED_SIZE}


async def test_another_organisation_cannot_open_the_details(
    sdk_for: SdkFactory, network: Network
) -> None:
    hr = sdk_for(network.b_hr)
    receipt = await hr.record_consent_receipt(purpose="recruitment", **DETAILS)
    raw = await hr.request("GET", f"/v1/consents/{receipt.id}")
    wire_receipt = wire.ConsentOut.model_validate(raw.json())
    sealed = bytes.fromhex(wire_receipt.sealed_details)
    other = network.org_a_keys
    with pytest.raises(NotSealedToThisKey):
        open_details(
            sealed,
            bytes(other.x25519),
            bytes.fromhex(other.ed25519_public_hex),
            purpose="recruitment",
            consented_at=wire_receipt.consented_at,
        )
    # Through the SDK, with the other organisation's keys: nothing is shown.
    seen = open_receipt(_org_keys(network, "a"), wire_receipt)
    assert seen.details == "unreadable"
    assert (seen.applicant_ref, seen.position_ref, seen.form_sha256) == (None, None, None)
    assert seen.self_declared_finding is None
    # And the other organisation's HR system cannot even read the receipt.
    foreign = await sdk_for(network.a_hr).request("GET", f"/v1/consents/{receipt.id}")
    assert foreign.status_code == 404


async def test_credentials_without_organisation_keys_record_nothing(
    app: Any, network: Network, clock: Any
) -> None:
    counting = Recording(httpx.ASGITransport(app=app))
    credentials = dataclasses.replace(
        credentials_for(network.b_hr, network, server_keys=app.state.ctx.keys), org_keys=None
    )
    async with AsyncClient(
        credentials, transport=counting, retry=FAST_RETRY, clock=sdk_clock(clock)
    ) as hr:
        with pytest.raises(CredentialsError, match="org_keys"):
            await hr.record_consent(purpose="recruitment", **DETAILS)
    assert counting.requests == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("applicant_ref", "Siti Rahmawati"),
        ("applicant_ref", "siti@example.org"),
        ("position_ref", ""),
        ("form_sha256", "ab" * 31),
        ("purpose", "Recruitment"),
    ],
)
async def test_bad_details_are_refused_before_anything_is_sent(
    app: Any, network: Network, clock: Any, field: str, value: str
) -> None:
    counting = Recording(httpx.ASGITransport(app=app))
    async with AsyncClient(
        credentials_for(network.b_hr, network, server_keys=app.state.ctx.keys),
        transport=counting,
        retry=FAST_RETRY,
        clock=sdk_clock(clock),
    ) as hr:
        fields: dict[str, Any] = {"purpose": "recruitment", **DETAILS, field: value}
        with pytest.raises(InvalidInput) as caught:
            await hr.record_consent(**fields)
    assert field in str(caught.value)
    if value:
        assert value not in str(caught.value)
    assert counting.requests == []


def _swap_details(sealed: str) -> Any:
    def edit(body: dict[str, Any]) -> None:
        body["sealed_details"] = sealed

    return edit


async def test_details_forged_by_the_server_are_refused(
    app: Any, sdk_for: SdkFactory, network: Network
) -> None:
    """The server holds the organisation's public X25519 key (the directory): it can seal to
    it, but not sign as the organisation."""
    receipt = await sdk_for(network.b_hr).record_consent_receipt(purpose="recruitment", **DETAILS)
    forged = seal_details(
        ConsentDetails(
            **{**DETAILS, "applicant_ref": "APP-2026-9999"},
            purpose="recruitment",
            consented_at=receipt.consented_at,
        ),
        bytes(network.org_b_keys.x25519.public_key),
        signing_seed=bytes(32),
    )
    tamper = Tamper(
        httpx.ASGITransport(app=app),
        path=f"/v1/consents/{receipt.id}",
        edit=_swap_details(forged.hex()),
    )
    with pytest.raises(InvalidResponse, match="not made by your organisation"):
        await sdk_for(network.b_hr, transport=tamper).get_consent(receipt.id)


async def test_details_moved_from_another_consent_are_refused(
    app: Any, sdk_for: SdkFactory, network: Network
) -> None:
    hr = sdk_for(network.b_hr)
    earlier = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    first = await hr.record_consent_receipt(purpose="recruitment", consented_at=earlier, **DETAILS)
    second = await hr.record_consent_receipt(
        purpose="recruitment", **{**DETAILS, "applicant_ref": "APP-2026-0043"}
    )
    first_blob = (await hr.request("GET", f"/v1/consents/{first.id}")).json()["sealed_details"]
    tamper = Tamper(
        httpx.ASGITransport(app=app),
        path=f"/v1/consents/{second.id}",
        edit=_swap_details(first_blob),
    )
    with pytest.raises(InvalidResponse, match="moved from another consent"):
        await sdk_for(network.b_hr, transport=tamper).get_consent(second.id)


async def test_details_sealed_by_the_upgrade_read_as_unsigned(
    app: Any, sdk_for: SdkFactory, network: Network
) -> None:
    """Rows sealed by the migration carry no signature (the server never held the signing key):
    the SDK shows them, and says so."""
    receipt = await sdk_for(network.b_hr).record_consent_receipt(purpose="recruitment", **DETAILS)
    unsigned = seal_details(
        ConsentDetails(**DETAILS, purpose="recruitment", consented_at=receipt.consented_at),
        bytes(network.org_b_keys.x25519.public_key),
        signing_seed=None,
    )
    tamper = Tamper(
        httpx.ASGITransport(app=app),
        path=f"/v1/consents/{receipt.id}",
        edit=_swap_details(unsigned.hex()),
    )
    read = await sdk_for(network.b_hr, transport=tamper).get_consent(receipt.id)
    assert read.details == "unsigned"
    assert read.applicant_ref == DETAILS["applicant_ref"]


# --- the stolen database ----------------------------------------------------------------------

POSITIONS = ("POS-WASH-07", "POS-HEALTH-02", "POS-LOG-11")


@dataclass(frozen=True)
class Applicant:
    """One line of the HR system's applicant list."""

    ref: str
    position: str
    form_sha256: str
    self_declared: bool
    person: dict[str, object]


@dataclass(frozen=True)
class Stolen:
    path: Path
    data: bytes  # the file and its write-ahead log, as a copy of the data directory has them
    applicants: list[Applicant]
    matched: Applicant
    org_b_x25519: bytes
    org_b_ed25519_public: bytes


def _person(rng: random.Random) -> dict[str, object]:
    syllables = ["ka", "ri", "mo", "su", "an", "de", "wi", "lu", "ta", "ne", "ro", "ya"]

    def word() -> str:
        return "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))).capitalize()

    return {
        "full_name": f"{word()} {word()}",
        "date_of_birth": f"{rng.randint(1960, 2004)}-{rng.randint(1, 12):02d}-"
        f"{rng.randint(1, 28):02d}",
        "nationality": "ID",
        "national_id": "".join(rng.choice("0123456789") for _ in range(16)),
    }


def _applicant_list() -> list[Applicant]:
    rng = random.Random(20261208)
    out = []
    for i in range(12):
        ref = f"APP-2026-{i + 1:04d}"
        out.append(
            Applicant(
                ref=ref,
                position=POSITIONS[i % len(POSITIONS)],
                form_sha256=hashlib.sha256(f"signed declaration of {ref}".encode()).hexdigest(),
                # Two said "yes" on the declaration: that answer must not single them out either.
                self_declared=i in (3, 8),
                person=REGISTERED if i == 7 else _person(rng),
            )
        )
    return out


async def _build(path: Path, key_dir: Path, applicants: list[Applicant]) -> Network:
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

            def sdk(actor: Any) -> AsyncClient:
                return AsyncClient(
                    credentials_for(actor, network, server_keys=ctx.keys),
                    transport=httpx.ASGITransport(app=app),
                    retry=FAST_RETRY,
                    clock=sdk_clock(clock),
                    max_concurrency=1,
                )

            async with sdk(network.a_focal) as focal, sdk(network.b_hr) as hr:
                await focal.register_case(REGISTERED, case_fields(clock.today()))
                for applicant in applicants:
                    consent_id = await hr.record_consent(
                        applicant_ref=applicant.ref,
                        purpose="recruitment",
                        position_ref=applicant.position,
                        form_sha256=applicant.form_sha256,
                        self_declared_finding=applicant.self_declared,
                    )
                    result = await hr.check_applicant(applicant.person, consent_id)
                    expected = CheckStatus.MATCH if applicant.person is REGISTERED else None
                    assert (result.status == CheckStatus.MATCH) == (expected is not None)
            return network
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def stolen(tmp_path_factory: pytest.TempPathFactory, key_dir: Path) -> Iterator[Stolen]:
    path = tmp_path_factory.mktemp("stolen-consents") / "refcheck.db"
    applicants = _applicant_list()
    network = anyio.run(_build, path, key_dir, applicants)
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        data += wal.read_bytes()
    [matched] = [a for a in applicants if a.person is REGISTERED]
    yield Stolen(
        path=path,
        data=data,
        applicants=applicants,
        matched=matched,
        org_b_x25519=bytes(network.org_b_keys.x25519),
        org_b_ed25519_public=bytes.fromhex(network.org_b_keys.ed25519_public_hex),
    )


def _rows(stolen: Stolen, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(f"file:{stolen.path}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql).fetchall()


def _matched_consent(stolen: Stolen) -> sqlite3.Row:
    """What the thief can tell: which consent's check claimed an entry."""
    [row] = _rows(
        stolen,
        "SELECT DISTINCT c.* FROM consents c JOIN checks k ON k.consent_id = c.id "
        "JOIN check_claims m ON m.check_id = k.id",
    )
    return row


def _findable(applicant: Applicant) -> dict[str, bytes]:
    """Everything the HR list gives about an applicant, and unkeyed hashes of it, as the bytes
    a search of the file would look for."""
    out: dict[str, bytes] = {}
    for name, text in (
        ("ref", applicant.ref),
        ("position", applicant.position),
        ("form", applicant.form_sha256),
    ):
        out[name] = text.encode()
        out[f"{name}-upper"] = text.upper().encode()
        digest = hashlib.sha256(text.encode()).digest()
        out[f"sha256-of-{name}"] = digest
        out[f"sha256-of-{name}-hex"] = digest.hex().encode()
    out["form-raw"] = bytes.fromhex(applicant.form_sha256)
    return out


def test_a_check_matched_and_the_file_tells_under_which_consent(stolen: Stolen) -> None:
    """The premise: a thief sees which consent's check matched (the claim), so everything
    rests on the consent row not naming its applicant."""
    consents = _rows(stolen, "SELECT id FROM consents")
    assert len(consents) == len(stolen.applicants)
    assert _matched_consent(stolen)["id"] in {r["id"] for r in consents}


def test_consent_rows_hold_only_what_the_server_enforces(stolen: Stolen) -> None:
    columns = {r["name"] for r in _rows(stolen, "PRAGMA table_info(consents)")}
    assert columns == {
        "id",
        "org_id",
        "recorded_by",
        "purpose",
        "consented_at",
        "expires_on",
        "max_checks",
        "checks_used",
        "withdrawn_at",
        "lookup_code_sha256",
        "sealed_details",
        "created_at",
    }


def test_every_sealed_blob_has_the_same_size(stolen: Stolen) -> None:
    sizes = {r[0] for r in _rows(stolen, "SELECT length(sealed_details) FROM consents")}
    assert sizes == {SEALED_SIZE}


def test_nothing_on_the_applicant_list_is_in_the_file(stolen: Stolen) -> None:
    # Control: the same search finds what the file does hold in the clear.
    assert b"org-b" in stolen.data and b"recruitment" in stolen.data
    found = [
        (applicant.ref, name)
        for applicant in stolen.applicants
        for name, needle in _findable(applicant).items()
        if needle in stolen.data
    ]
    assert found == []


def test_the_matched_consent_looks_like_every_other(stolen: Stolen) -> None:
    """Its clear columns are those of every consent of the same purpose and budget: nothing in
    the row picks out the matched applicant, nor those who declared a finding."""
    matched = _matched_consent(stolen)
    rows = _rows(stolen, "SELECT purpose, max_checks, checks_used, withdrawn_at FROM consents")
    assert {tuple(r) for r in rows} == {
        (matched["purpose"], matched["max_checks"], matched["checks_used"], None)
    }


def test_control_the_organisations_own_key_opens_the_matched_applicant(stolen: Stolen) -> None:
    """With the hiring organisation's private key (which the server never has) the same row
    names the applicant: what the thief cannot read is there, sealed."""
    matched = _matched_consent(stolen)
    opened = open_details(
        bytes(matched["sealed_details"]),
        stolen.org_b_x25519,
        stolen.org_b_ed25519_public,
        purpose=matched["purpose"],
        consented_at=datetime.fromisoformat(matched["consented_at"]).replace(tzinfo=UTC),
    )
    assert opened.signed
    assert opened.details.applicant_ref == stolen.matched.ref
    assert opened.details.form_sha256 == stolen.matched.form_sha256
