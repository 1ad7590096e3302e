"""Wire shapes of the registry (docs/api.md, "Registry (network admin) and directory").

Requests forbid unknown fields, so a misspelt field is refused rather than silently ignored.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from server.auth.permissions import Role
from server.policy.schema import LegalBasis
from server.registry.addresses import MAX_EMAILS, MAX_URL_LENGTH, MAX_WEBHOOKS, AddressRole
from server.registry.models import Membership, OrgStatus, OrgType, PrincipalKind

Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""32 bytes, lower-case hex: public keys and SHA-256 digests."""
ShortName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
MouVersion = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/ -]{1,40}$")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FocalPoint(_Request):
    """A member's named PSEAH focal point, as a contact for the secretariat."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}$")] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{4,32}$")] | None = None


def _not_zero(value: str | None) -> str | None:
    # The all-zero X25519 key is a low-order point: anything "sealed" to it is readable by all.
    if value is not None and value == "0" * 64:
        raise ValueError("the all-zero key is not a valid public key")
    return value


class _OrgFields(_Request):
    mou_version: MouVersion | None = None
    mou_sha256: Hex32 | None = None
    mou_signed_on: date | None = None
    mou_expires_on: date | None = None
    legal_basis: LegalBasis | None = None
    x25519_public_key: Hex32 | None = None
    ed25519_public_key: Hex32 | None = None

    _keys_not_zero = field_validator("x25519_public_key", "ed25519_public_key")(_not_zero)


class OrgCreate(_OrgFields):
    legal_name: Name
    short_name: ShortName
    country: CountryCode = "ID"
    org_type: OrgType
    membership: Membership = Membership.MEMBER
    status: OrgStatus = OrgStatus.PENDING
    data_sharing_agreement: bool = False
    may_register: bool = False
    may_check: bool = False
    focal_points: list[FocalPoint] = Field(default_factory=list, max_length=20)

    def column_values(self) -> dict[str, Any]:
        values = self.model_dump(mode="json")
        values["mou_signed_on"] = self.mou_signed_on
        values["mou_expires_on"] = self.mou_expires_on
        return values


#: Columns that hold a value whatever happens; PATCH may change but never null them.
_NOT_NULL = frozenset(
    {
        "legal_name",
        "membership",
        "status",
        "data_sharing_agreement",
        "may_register",
        "may_check",
        "focal_points",
    }
)


class OrgUpdate(_OrgFields):
    """PATCH: only the fields sent change; `null` clears a nullable field (e.g. the expiry)."""

    legal_name: Name | None = None
    membership: Membership | None = None
    status: OrgStatus | None = None
    data_sharing_agreement: bool | None = None
    may_register: bool | None = None
    may_check: bool | None = None
    focal_points: list[FocalPoint] | None = Field(default=None, max_length=20)

    @model_validator(mode="after")
    def _no_null_for_required(self) -> OrgUpdate:
        nulled = sorted(k for k in self.model_fields_set & _NOT_NULL if getattr(self, k) is None)
        if nulled:
            raise ValueError(f"these fields cannot be null: {', '.join(nulled)}")
        return self

    def changes(self) -> dict[str, Any]:
        dumped = self.model_dump(mode="json", include=self.model_fields_set)
        for key in ("mou_signed_on", "mou_expires_on"):
            if key in dumped:
                dumped[key] = getattr(self, key)
        return dumped


class OrgOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    legal_name: str
    short_name: str
    country: str
    org_type: str
    membership: str
    status: str
    mou_version: str | None
    mou_sha256: str | None
    mou_signed_on: date | None
    mou_expires_on: date | None
    data_sharing_agreement: bool
    legal_basis: str | None
    may_register: bool
    may_check: bool
    focal_points: list[dict[str, Any]]
    x25519_public_key: str | None
    ed25519_public_key: str | None
    notify_emails: list[dict[str, Any]] = Field(default_factory=list)
    webhooks: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class OrgList(BaseModel):
    items: list[OrgOut]


class DirectoryEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    short_name: str
    legal_name: str
    status: str
    x25519_public_key: str | None
    ed25519_public_key: str | None


class Directory(BaseModel):
    items: list[DirectoryEntry]


class PrincipalCreate(_Request):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    kind: PrincipalKind
    roles: list[Role] = Field(min_length=1, max_length=len(Role))
    auth_public_key: Hex32

    _key_not_zero = field_validator("auth_public_key")(_not_zero)


class PrincipalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    org_id: str
    name: str
    kind: str
    roles: list[str]
    auth_public_key: str
    active: bool
    created_at: datetime
    deactivated_at: datetime | None


class PrincipalList(BaseModel):
    items: list[PrincipalOut]


class NotifyEmail(_Request):
    """An e-mail address for one role's notifications, or (no role) for all of them."""

    address: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254)]
    role: AddressRole | None = None


class Webhook(_Request):
    """An HTTPS endpoint of the organisation's own system, for one role's events or all."""

    url: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_URL_LENGTH)]
    role: AddressRole | None = None


class NotificationAddressesUpdate(_Request):
    """PATCH: a list sent replaces the one on record (`[]` clears it); one not sent stays."""

    emails: list[NotifyEmail] | None = Field(default=None, max_length=MAX_EMAILS)
    webhooks: list[Webhook] | None = Field(default=None, max_length=MAX_WEBHOOKS)

    @model_validator(mode="after")
    def _something_and_no_repeats(self) -> NotificationAddressesUpdate:
        if self.emails is None and self.webhooks is None:
            raise ValueError("send emails, webhooks or both")
        for name, items in (
            ("emails", [(e.address.lower(), e.role) for e in self.emails or []]),
            ("webhooks", [(w.url, w.role) for w in self.webhooks or []]),
        ):
            if len(set(items)) != len(items):
                raise ValueError(f"{name} lists an entry twice")
        return self


class NotificationAddresses(BaseModel):
    org_id: str
    short_name: str
    emails: list[NotifyEmail]
    webhooks: list[Webhook]
