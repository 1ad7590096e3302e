"""Disclosure requests: who asked whom about which record, when, and where it stands.

What the row deliberately does not hold: the holder's verdict. The server needs to know that a
request was *answered* (for the deadline and for the MDS figure "responses given"), never whether
the answer confirmed the person: that stays inside `sealed_answer`, which only the requester can
open, and whose fixed size hides it too (`protocol.disclosure`). The ciphertexts are deleted as
soon as they have served (read, withdrawn, expired, record withdrawn): the server is a relay,
not an archive of findings.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from protocol.vocabulary import DisclosureState
from server.db import UUIDPK, Base, CreatedAt

#: States in which a request still waits for the holder.
UNANSWERED = (DisclosureState.REQUESTED, DisclosureState.ACKNOWLEDGED)
#: States from which a request can still move (the others are final).
OPEN = (*UNANSWERED, DisclosureState.ANSWERED)
#: Final states; `closed_at` says when the request got there (the retention sweeper's clock).
ENDED = (DisclosureState.CLOSED, DisclosureState.WITHDRAWN, DisclosureState.EXPIRED)


class DisclosureRequest(Base):
    __tablename__ = "disclosure_requests"
    __table_args__ = (
        # Each side lists its own requests by state; the deadline job scans open ones by due date.
        Index("ix_disclosure_requests_holder_org_id_state", "holder_org_id", "state"),
        Index("ix_disclosure_requests_requester_org_id_state", "requester_org_id", "state"),
        Index("ix_disclosure_requests_state_due_at", "state", "due_at"),
        # The retention sweeper finds ended requests by when they ended.
        Index("ix_disclosure_requests_state_closed_at", "state", "closed_at"),
    )

    id: Mapped[UUIDPK]
    requester_org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    requester_principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id"))
    holder_org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    # SET NULL: the retention sweeper deletes cases; the request's metadata (dates, state,
    # outcome) is what the yearly figures and the applicant's lookup still need.
    case_id: Mapped[str | None] = mapped_column(
        ForeignKey("cases.id", ondelete="SET NULL"), index=True
    )
    # The matched pseudonym's id (the record reference the handle carried). No foreign key:
    # pseudonyms are deleted when their case is withdrawn or purged.
    entry_id: Mapped[str] = mapped_column(String(36))
    consent_id: Mapped[str] = mapped_column(ForeignKey("consents.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    # Sealed to the holder (applicant details) and to the requester (answer); fixed sizes.
    sealed_applicant_details: Mapped[bytes | None] = mapped_column(LargeBinary)
    sealed_answer: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[CreatedAt]
    # created_at + the policy's response deadline, fixed at creation: a later policy change
    # does not move the deadline of requests already made.
    due_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    # When the request reached a final state (closed, withdrawn or expired).
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str | None] = mapped_column(String(32))
    # When the deadline job (or a late answer) first counted the request as overdue, so the
    # yearly "overdue" figure counts each request once.
    overdue_flagged_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(32))
    outcome_at: Mapped[datetime | None]
