"""The MoU registry: organisations, their principals, and the MoU gate every action passes.

Services take plain values, raise domain errors and record every change in the audit trail in the
same transaction; routes only translate.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, Literal

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.audit.services import record
from server.auth.permissions import MEMBER_ROLES, NETWORK_ROLES, Permission, Role
from server.auth.tokens import Caller
from server.context import AppContext
from server.errors import InvalidRequest, NotFound, PolicyViolation
from server.policy.schema import NetworkPolicy
from server.registry.addresses import (
    AddressRefused,
    check_email,
    check_webhook_url,
    normalise_role,
)
from server.registry.errors import (
    LastAdmin,
    MouInactive,
    OrgStatusTransition,
    RoleNotAllowed,
    ShortNameTaken,
)
from server.registry.models import (
    MOU_TERMS,
    MouTerms,
    Organisation,
    OrgStatus,
    OrgType,
    Principal,
    PrincipalKind,
    mou_refusal,
)

MouAction = Literal["register", "check"]

#: Allowed status changes. Withdrawal is final: a withdrawn member's cases are purged, and a
#: returning organisation signs a new MoU under a new registration.
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    OrgStatus.PENDING: frozenset({OrgStatus.ACTIVE, OrgStatus.WITHDRAWN}),
    OrgStatus.ACTIVE: frozenset({OrgStatus.SUSPENDED, OrgStatus.WITHDRAWN}),
    OrgStatus.SUSPENDED: frozenset({OrgStatus.ACTIVE, OrgStatus.WITHDRAWN}),
    OrgStatus.WITHDRAWN: frozenset(),
}


def matching_org_statuses(policy: NetworkPolicy) -> tuple[str, ...]:
    """Holder statuses whose cases are answered. A suspended member's cases stay stored but do
    not match; a withdrawn member's match until purged only if the policy keeps them."""
    if policy.withdrawn_org_cases == "keep_until_retention":
        return (OrgStatus.ACTIVE, OrgStatus.WITHDRAWN)
    return (OrgStatus.ACTIVE,)


def org_names(session: Session, org_ids: Iterable[str]) -> dict[str, str]:
    """Short names of organisations, for showing requests (one query per page)."""
    ids = sorted(set(org_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(Organisation.id, Organisation.short_name).where(Organisation.id.in_(ids))
    )
    return {org_id: name for org_id, name in rows}


def require_mou(session: Session, org_id: str, action: MouAction, today: date) -> None:
    """Refuse unless the MoU of organisation `org_id` allows `action` ("register" or "check")
    today.

    Raises `MouInactive` whose detail says why not (status, missing or expired MoU, no
    data-sharing agreement or legal basis, the MoU not permitting this action). Every route that
    registers or checks calls this, so they all refuse for the same reasons with the same words.
    It reads the MoU's columns only, on the session's connection: a check asks this twice, and
    loading the whole organisation through the ORM was the largest single cost of a check after
    its cryptography (loadtests/README.md).
    """
    _refuse_unless_allowed(
        session.connection().execute(_MOU_TERMS, {"org_id": org_id}).first(), action, today
    )


def org_under_mou(session: Session, org_id: str, action: MouAction, today: date) -> Organisation:
    """`require_mou` for a service that uses the organisation itself: read once, as a whole."""
    org = session.get(Organisation, org_id)
    _refuse_unless_allowed(org, action, today)
    assert org is not None
    return org


def _refuse_unless_allowed(terms: MouTerms | None, action: MouAction, today: date) -> None:
    if action not in ("register", "check"):
        raise ValueError(f"unknown MoU action {action!r}")
    if terms is None:
        raise MouInactive("the organisation is not in the registry")
    refusal = mou_refusal(terms, today, action=action)
    if refusal is not None:
        raise MouInactive(refusal)


_MOU_TERMS = select(*(Organisation.__table__.c[name] for name in MOU_TERMS)).where(
    Organisation.__table__.c.id == bindparam("org_id")
)


# --- organisations -------------------------------------------------------------------------


def get_org(session: Session, org_id: str) -> Organisation:
    org = session.get(Organisation, org_id)
    if org is None:
        raise NotFound()
    return org


def get_visible_org(
    session: Session, caller: Caller, org_id: str, *, read_all: bool
) -> Organisation:
    """An organisation the caller may read: any for the secretariat, else only its own.

    A foreign id answers exactly like an unknown one (404): whether an id exists is itself
    something another member must not learn.
    """
    if not read_all and org_id != caller.org_id:
        raise NotFound()
    return get_org(session, org_id)


def list_orgs(session: Session) -> list[Organisation]:
    return list(session.scalars(select(Organisation).order_by(Organisation.short_name)))


def directory(session: Session) -> list[Organisation]:
    """Members (not the secretariat) with their public keys, for sealing and verifying."""
    query = (
        select(Organisation)
        .where(Organisation.org_type != OrgType.NETWORK_SECRETARIAT)
        .order_by(Organisation.short_name)
    )
    return list(session.scalars(query))


def secretariat(session: Session) -> Organisation | None:
    query = select(Organisation).where(Organisation.org_type == OrgType.NETWORK_SECRETARIAT)
    return session.scalars(query).first()


def _check_legal_basis(ctx: AppContext, legal_basis: str | None) -> None:
    if legal_basis is not None and legal_basis not in ctx.policy.allowed_legal_bases:
        raise PolicyViolation(
            "the network policy does not allow this legal basis", rule="legal_basis"
        )


def _check_mou_dates(org: Organisation) -> None:
    if (
        org.mou_signed_on is not None
        and org.mou_expires_on is not None
        and org.mou_expires_on < org.mou_signed_on
    ):
        raise PolicyViolation("the MoU cannot expire before it was signed", rule="mou_dates")


def create_org(
    session: Session, ctx: AppContext, caller: Caller | None, values: dict[str, Any]
) -> Organisation:
    """Register an organisation. `values` are `Organisation` columns (validated by the schema).

    Only `refcheck-server init` creates the secretariat (with `caller=None`): a second one
    would be a second set of administrators nobody agreed to.
    """
    if values.get("org_type") == OrgType.NETWORK_SECRETARIAT and (
        caller is not None or secretariat(session) is not None
    ):
        raise RoleNotAllowed("the network secretariat exists already")
    _check_legal_basis(ctx, values.get("legal_basis"))
    org = Organisation(**values)
    _check_mou_dates(org)
    session.add(org)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise ShortNameTaken() from exc
    record(
        session,
        ctx,
        caller,
        "org.create",
        object_type="organisation",
        object_id=org.id,
        details={"status": org.status, "membership": org.membership, "org_type": org.org_type},
    )
    return org


def update_org(
    session: Session, ctx: AppContext, caller: Caller, org_id: str, changes: dict[str, Any]
) -> Organisation:
    """Apply a partial update; records which fields changed (and the status move) in the trail."""
    org = get_org(session, org_id)
    if "status" in changes and changes["status"] != org.status:
        if org.org_type == OrgType.NETWORK_SECRETARIAT:
            raise OrgStatusTransition("the secretariat's status does not change")
        if changes["status"] not in STATUS_TRANSITIONS[org.status]:
            raise OrgStatusTransition(
                f"an organisation cannot move from {org.status} to {changes['status']}"
            )
    if "legal_basis" in changes:
        _check_legal_basis(ctx, changes["legal_basis"])
    old_status = org.status
    changed = sorted(k for k, v in changes.items() if getattr(org, k) != v)
    for key in changed:
        setattr(org, key, changes[key])
    _check_mou_dates(org)
    if not changed:
        return org
    session.flush()
    details: dict[str, Any] = {"fields": changed}
    if org.status != old_status:
        details["status"] = {"from": old_status, "to": org.status}
    record(
        session,
        ctx,
        caller,
        "org.update",
        object_type="organisation",
        object_id=org.id,
        details=details,
    )
    return org


def set_notification_addresses(
    session: Session,
    ctx: AppContext,
    caller: Caller,
    org_id: str,
    *,
    emails: list[dict[str, Any]] | None,
    webhooks: list[dict[str, Any]] | None,
) -> Organisation:
    """Replace an organisation's notification e-mail addresses and/or webhook URLs (a list
    given as None stays as it is); in the caller's transaction.

    The network admin sets any organisation's; a focal point only its own (another's answers
    404, as if it did not exist). Every address is checked (`server.registry.addresses`); the
    trail records how many there are, not the addresses.
    """
    if not caller.has(Permission.ORG_UPDATE) and org_id != caller.org_id:
        raise NotFound()
    org = session.get(Organisation, org_id, with_for_update=True)
    if org is None:
        raise NotFound()
    try:
        if emails is not None:
            org.notify_emails = [
                {"address": check_email(e["address"]), "role": normalise_role(e.get("role"))}
                for e in emails
            ]
        if webhooks is not None:
            environment = ctx.settings.environment
            org.webhooks = [
                {
                    "url": check_webhook_url(w["url"], environment=environment),
                    "role": normalise_role(w.get("role")),
                }
                for w in webhooks
            ]
    except AddressRefused as exc:
        raise InvalidRequest(str(exc)) from exc
    session.flush()
    record(
        session,
        ctx,
        caller,
        "org.notification_addresses",
        object_type="organisation",
        object_id=org.id,
        details={"emails": len(org.notify_emails), "webhooks": len(org.webhooks)},
    )
    return org


# --- principals ----------------------------------------------------------------------------


def check_roles(org: Organisation, roles: list[Role]) -> None:
    """Network roles (admin, auditor) only in the secretariat; member roles only in members.

    An admin or auditor sees across organisations, so a member organisation holding one would
    read other members' data; a secretariat principal that registers or checks would be IT staff
    reading what it holds.
    """
    if not roles:
        raise RoleNotAllowed("a principal needs at least one role")
    is_secretariat = org.org_type == OrgType.NETWORK_SECRETARIAT
    for role in roles:
        if role in NETWORK_ROLES and not is_secretariat:
            raise RoleNotAllowed(f"only the network secretariat may hold the role {role.value}")
        if role in MEMBER_ROLES and is_secretariat:
            raise RoleNotAllowed(f"the network secretariat may not hold the role {role.value}")


def create_principal(
    session: Session,
    ctx: AppContext,
    caller: Caller | None,
    org_id: str,
    *,
    name: str,
    kind: PrincipalKind,
    roles: list[Role],
    auth_public_key: str,
) -> Principal:
    org = get_org(session, org_id)
    unique_roles = sorted(set(roles))
    check_roles(org, unique_roles)
    principal = Principal(
        org_id=org.id,
        name=name,
        kind=kind.value,
        roles=[r.value for r in unique_roles],
        auth_public_key=auth_public_key,
        active=True,
    )
    session.add(principal)
    session.flush()
    record(
        session,
        ctx,
        caller,
        "principal.create",
        object_type="principal",
        object_id=principal.id,
        details={"org_id": org.id, "kind": principal.kind, "roles": principal.roles},
    )
    return principal


def list_principals(session: Session, org_id: str) -> list[Principal]:
    get_org(session, org_id)
    query = select(Principal).where(Principal.org_id == org_id).order_by(Principal.created_at)
    return list(session.scalars(query))


def still_active_unless_last_admin(session: Session, principal: Principal) -> bool:
    """Whether `principal` is still active; `LastAdmin` if it is the last active network admin.

    Locking out the last admin would leave nobody able to manage the registry. The active
    principals of its organisation (admins exist only in the secretariat) are locked, in id
    order, before counting: two admins deactivating each other at once would otherwise each
    see the other still active, and both succeed (PostgreSQL; SQLite has one writer anyway).
    """
    if Role.NETWORK_ADMIN not in principal.roles:
        return True
    active = session.scalars(
        select(Principal)
        .where(Principal.active.is_(True), Principal.org_id == principal.org_id)
        .order_by(Principal.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    if principal not in active:
        session.refresh(principal)  # deactivated meanwhile by a concurrent request
        return False
    others = [p for p in active if p.id != principal.id and Role.NETWORK_ADMIN in p.roles]
    if not others:
        raise LastAdmin()
    return True


def deactivate_principal(
    session: Session, ctx: AppContext, caller: Caller, principal_id: str
) -> Principal:
    """Deactivate a principal: its tokens stop working at once (`server.auth.deps`)."""
    principal = session.get(Principal, principal_id)
    if principal is None:
        raise NotFound()
    if not principal.active:
        return principal
    if not still_active_unless_last_admin(session, principal):
        return principal
    principal.active = False
    principal.deactivated_at = ctx.now()
    session.flush()
    record(
        session,
        ctx,
        caller,
        "principal.deactivate",
        object_type="principal",
        object_id=principal.id,
        details={"org_id": principal.org_id},
    )
    return principal
