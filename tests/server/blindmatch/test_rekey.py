"""`POST /v1/cases/{id}/rekey`: a focal point swaps its case's entries for keys derived again
from the records it holds (issue 16: the identity tables changed, so a case gains the new key
forms only when its keys are derived again). One transaction, audited, the holder's only."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.identity import derive_keys
from server.audit.models import AuditEntry
from server.cases.models import Pseudonym
from tests.blindflow import (
    check_person,
    fetch_filter,
    fetch_key,
    record_consent,
    register_person,
    sealed_keys_for,
)
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import OTHER, REGISTERED

pytestmark = pytest.mark.anyio


def _metadata(case: dict[str, Any]) -> dict[str, Any]:
    names = (
        "category",
        "child_victim",
        "finding",
        "sanction",
        "finding_date",
        "legal_basis",
        "retention_until",
        "mou_reference",
        "subject_notified_on",
    )
    return {n: case[n] for n in names}


async def _rekey(
    client: AppClient, headers: dict[str, str], case: dict[str, Any], person: dict[str, Any]
) -> Any:
    key = await fetch_key(client, headers)
    sealed = sealed_keys_for(key, derive_keys(person), _metadata(case))
    return await client.post(
        f"/v1/cases/{case['id']}/rekey",
        headers=headers,
        json={"key_id": key.key_id, "sealed_keys": sealed},
    )


async def test_a_rekeyed_case_matches_its_new_keys_and_not_its_old_ones(
    client: AppClient, network: Network, clock: Any, session: Session
) -> None:
    # The registration was made from a wrong record; the focal point rekeys from the right one.
    case = await register_person(client, network.a_focal.headers, OTHER, today=clock.today())
    old_ids = set(session.scalars(select(Pseudonym.id).where(Pseudonym.case_id == case["id"])))
    response = await _rekey(client, network.a_focal.headers, case, dict(REGISTERED))
    assert response.status_code == 200, response.text
    values = response.json()
    assert len(values["filter_values"]) == client.ctx.policy.keys_per_check
    session.expire_all()
    new_ids = set(session.scalars(select(Pseudonym.id).where(Pseudonym.case_id == case["id"])))
    assert len(new_ids) == client.ctx.policy.keys_per_check and not new_ids & old_ids
    key = await fetch_key(client, network.a_focal.headers)
    _header, published = await fetch_filter(client, network.a_focal.headers, key)
    assert set(values["filter_values"]) <= published

    consent = await record_consent(client, network.b_hr.headers, now=clock(), max_checks=2)
    now = await check_person(client, network.b_hr.headers, consent["id"], REGISTERED)
    assert now.case_ids == {case["id"]}
    before = await check_person(client, network.b_hr.headers, consent["id"], OTHER)
    assert before.case_ids == set()
    audited = session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "case.rekey")
    )
    assert audited == 1


async def test_rekey_is_refused_for_other_metadata_another_member_and_a_withdrawn_case(
    client: AppClient, network: Network, clock: Any, session: Session
) -> None:
    case = await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    before = set(session.scalars(select(Pseudonym.tag).where(Pseudonym.case_id == case["id"])))
    wrong = {**case, "sanction": "contract_termination"}
    refused = await _rekey(client, network.a_focal.headers, wrong, dict(OTHER))
    assert refused.status_code == 422
    assert refused.json()["type"].endswith(":sealed-keys-invalid")
    foreign = await _rekey(client, network.b_focal.headers, case, dict(OTHER))
    assert foreign.status_code == 404
    hr = await _rekey(client, network.a_hr.headers, case, dict(OTHER))
    assert hr.status_code == 403
    session.expire_all()
    after = set(session.scalars(select(Pseudonym.tag).where(Pseudonym.case_id == case["id"])))
    assert after == before  # nothing changed on any refusal
    await client.post(
        f"/v1/cases/{case['id']}/withdraw",
        headers=network.a_focal.headers,
        json={"reason": "rectification"},
    )
    gone = await _rekey(client, network.a_focal.headers, case, dict(OTHER))
    assert gone.status_code == 404
