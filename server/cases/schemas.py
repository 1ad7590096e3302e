"""Wire shapes of the case endpoints: the shared `protocol.messages` models, and the mapping
from rows to them."""

from __future__ import annotations

from protocol.messages import (
    CaseCreate,
    CaseList,
    CaseMetadata,
    CaseOut,
    CaseRegistered,
    CaseRekey,
    CaseUpdate,
    CaseWithdraw,
    FilterValues,
    PadOut,
)
from server.cases.models import Case

__all__ = [
    "CaseCreate",
    "CaseList",
    "CaseOut",
    "CaseUpdate",
    "CaseWithdraw",
    "CaseMetadata",
    "CaseRegistered",
    "CaseRekey",
    "FilterValues",
    "PadOut",
    "case_out",
]


def case_out(case: Case) -> CaseOut:
    return CaseOut(
        id=case.id,
        org_id=case.org_id,
        category=case.category,
        child_victim=case.child_victim,
        finding=case.finding,
        sanction=case.sanction,
        finding_date=case.finding_date,
        legal_basis=case.legal_basis,
        retention_until=case.retention_until,
        mou_reference=case.mou_reference,
        subject_notified_on=case.subject_notified_on,
        status="withdrawn" if case.status == "withdrawn" else "active",
        created_at=case.created_at,
        withdrawn_at=case.withdrawn_at,
        withdrawal_reason=case.withdrawal_reason,
        withdrawal_note=case.withdrawal_note,
    )
