"""The MoU registry: member organisations and the principals (people, service accounts) of each."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Boolean, Date, ForeignKey, String, text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import UUIDPK, Base, CreatedAt, UTCDateTime, utcnow


class OrgType(StrEnum):
    UN_AGENCY = "un_agency"
    RED_CROSS_RED_CRESCENT = "red_cross_red_crescent"
    INGO = "ingo"
    NATIONAL_NGO = "national_ngo"
    CSO = "cso"
    GOVERNMENT = "government"
    # The secretariat that runs the server; it never registers or checks.
    NETWORK_SECRETARIAT = "network_secretariat"


class Membership(StrEnum):
    MEMBER = "member"
    OBSERVER = "observer"


class OrgStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    WITHDRAWN = "withdrawn"


class PrincipalKind(StrEnum):
    PERSON = "person"
    SERVICE = "service"


class Organisation(Base):
    __tablename__ = "organisations"
    # Server defaults are read back when first used, not with RETURNING on every insert.
    __mapper_args__ = {"eager_defaults": False}

    id: Mapped[UUIDPK]
    legal_name: Mapped[str] = mapped_column(String(300))
    short_name: Mapped[str] = mapped_column(String(64), unique=True)
    country: Mapped[str] = mapped_column(String(2))
    org_type: Mapped[str] = mapped_column(String(32))
    membership: Mapped[str] = mapped_column(String(16), default=Membership.MEMBER)
    status: Mapped[str] = mapped_column(String(16), default=OrgStatus.PENDING)
    mou_version: Mapped[str | None] = mapped_column(String(40))
    mou_sha256: Mapped[str | None] = mapped_column(String(64))
    mou_signed_on: Mapped[date | None] = mapped_column(Date)
    mou_expires_on: Mapped[date | None] = mapped_column(Date)
    data_sharing_agreement: Mapped[bool] = mapped_column(Boolean, default=False)
    legal_basis: Mapped[str | None] = mapped_column(String(32))
    may_register: Mapped[bool] = mapped_column(Boolean, default=False)
    may_check: Mapped[bool] = mapped_column(Boolean, default=False)
    # The organisation's named PSEAH focal points as contacts ({name, email, phone}) for the
    # secretariat: staff contacts of a member, never data about a subject of a case.
    focal_points: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    # Public keys only: private keys never leave the organisation's machines.
    x25519_public_key: Mapped[str | None] = mapped_column(String(64))
    ed25519_public_key: Mapped[str | None] = mapped_column(String(64))
    # Where the network's notifications to this organisation go (server.registry.addresses):
    # [{"address": ..., "role": "focal_point" | "hr_checker" | None}] and [{"url": ..., "role":
    # ...}]. Staff mailboxes and the organisation's own systems, never a subject's contact.
    # The database's default (as the migration adds them), not the ORM's: an insert that does
    # not name them works on a schema from before them too.
    notify_emails: Mapped[list[dict[str, Any]]] = mapped_column(server_default=text("'[]'"))
    webhooks: Mapped[list[dict[str, Any]]] = mapped_column(server_default=text("'[]'"))
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    def mou_refusal(self, today: date, *, action: str) -> str | None:
        """Why this organisation may not `register` or `check` today, or None if it may
        (`mou_refusal`)."""
        return mou_refusal(self, today, action=action)


class MouTerms(Protocol):
    """What the MoU gate reads of an organisation: an `Organisation`, or a row of those columns
    (`server.registry.services.require_mou` reads only them)."""

    status: str
    membership: str
    mou_sha256: str | None
    mou_signed_on: date | None
    mou_expires_on: date | None
    data_sharing_agreement: bool
    legal_basis: str | None
    may_register: bool
    may_check: bool


#: The columns `MouTerms` names, in its order.
MOU_TERMS = tuple(MouTerms.__annotations__)


def mou_refusal(org: MouTerms, today: date, *, action: str) -> str | None:
    """Why `org` may not `register` or `check` today, or None if it may.

    One function decides, so every route refuses for the same reasons with the same words.
    """
    if org.status != OrgStatus.ACTIVE:
        return f"organisation status is {org.status}"
    if org.membership != Membership.MEMBER:
        return "observers may neither register nor check"
    if not org.mou_sha256 or not org.mou_signed_on:
        return "no signed MoU is on record"
    if org.mou_expires_on is not None and org.mou_expires_on < today:
        return f"MoU expired on {org.mou_expires_on.isoformat()}"
    if not org.data_sharing_agreement:
        return "no data-sharing agreement is on record"
    if not org.legal_basis:
        return "no legal basis is declared"
    if action == "register" and not org.may_register:
        return "the MoU does not permit registering cases"
    if action == "check" and not org.may_check:
        return "the MoU does not permit checks"
    return None


class Principal(Base):
    """A caller: a named person or a service account, always of exactly one organisation."""

    __tablename__ = "principals"

    id: Mapped[UUIDPK]
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    roles: Mapped[list[str]]
    # Ed25519 key that signs this principal's client assertions (RFC 7523 private_key_jwt):
    # the server stores no shared secret that a database thief could replay.
    auth_public_key: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[CreatedAt]
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
