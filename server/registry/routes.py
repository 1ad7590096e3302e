"""Registry routes: the MoU registry (secretariat), principals, and the members' directory."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from server.auth.deps import Ctx, Db, require
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.registry import services
from server.registry.errors import RoleNotAllowed
from server.registry.models import OrgType
from server.registry.schemas import (
    Directory,
    DirectoryEntry,
    NotificationAddresses,
    NotificationAddressesUpdate,
    NotifyEmail,
    OrgCreate,
    OrgList,
    OrgOut,
    OrgUpdate,
    PrincipalCreate,
    PrincipalList,
    PrincipalOut,
    Webhook,
)

router = APIRouter(tags=["registry"])

OrgId = Annotated[str, Path(max_length=36)]
PrincipalId = Annotated[str, Path(max_length=36)]


@router.post("/v1/orgs", response_model=OrgOut, status_code=status.HTTP_201_CREATED)
def create_org(
    body: OrgCreate,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.ORG_CREATE))],
) -> OrgOut:
    if body.org_type == OrgType.NETWORK_SECRETARIAT:
        # Created once, by `refcheck-server init`; never through the API.
        raise RoleNotAllowed("the network secretariat exists already")
    org = services.create_org(session, ctx, caller, body.column_values())
    return OrgOut.model_validate(org)


@router.get("/v1/orgs", response_model=OrgList)
def list_orgs(
    session: Db, _caller: Annotated[Caller, Depends(require(Permission.ORG_READ_ALL))]
) -> OrgList:
    return OrgList(items=[OrgOut.model_validate(o) for o in services.list_orgs(session)])


@router.get("/v1/orgs/{org_id}", response_model=OrgOut)
def read_org(
    org_id: OrgId,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.ORG_READ_OWN))],
) -> OrgOut:
    read_all = caller.has(Permission.ORG_READ_ALL)
    return OrgOut.model_validate(
        services.get_visible_org(session, caller, org_id, read_all=read_all)
    )


@router.patch("/v1/orgs/{org_id}", response_model=OrgOut)
def update_org(
    org_id: OrgId,
    body: OrgUpdate,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.ORG_UPDATE))],
) -> OrgOut:
    org = services.update_org(session, ctx, caller, org_id, body.changes())
    return OrgOut.model_validate(org)


@router.patch("/v1/orgs/{org_id}/notification-addresses", response_model=NotificationAddresses)
def update_notification_addresses(
    org_id: OrgId,
    body: NotificationAddressesUpdate,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.ORG_NOTIFY_ADDRESSES))],
) -> NotificationAddresses:
    """Where the network's notifications to the organisation go: the network admin sets any
    organisation's, a focal point its own organisation's."""
    org = services.set_notification_addresses(
        session,
        ctx,
        caller,
        org_id,
        emails=None if body.emails is None else [e.model_dump() for e in body.emails],
        webhooks=None if body.webhooks is None else [w.model_dump() for w in body.webhooks],
    )
    return NotificationAddresses(
        org_id=org.id,
        short_name=org.short_name,
        emails=[NotifyEmail.model_validate(e) for e in org.notify_emails],
        webhooks=[Webhook.model_validate(w) for w in org.webhooks],
    )


@router.post(
    "/v1/orgs/{org_id}/principals",
    response_model=PrincipalOut,
    status_code=status.HTTP_201_CREATED,
)
def create_principal(
    org_id: OrgId,
    body: PrincipalCreate,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.PRINCIPAL_MANAGE))],
) -> PrincipalOut:
    principal = services.create_principal(
        session,
        ctx,
        caller,
        org_id,
        name=body.name,
        kind=body.kind,
        roles=body.roles,
        auth_public_key=body.auth_public_key,
    )
    return PrincipalOut.model_validate(principal)


@router.get("/v1/orgs/{org_id}/principals", response_model=PrincipalList)
def list_principals(
    org_id: OrgId,
    session: Db,
    _caller: Annotated[Caller, Depends(require(Permission.PRINCIPAL_MANAGE))],
) -> PrincipalList:
    principals = services.list_principals(session, org_id)
    return PrincipalList(items=[PrincipalOut.model_validate(p) for p in principals])


@router.post("/v1/principals/{principal_id}/deactivate", response_model=PrincipalOut)
def deactivate_principal(
    principal_id: PrincipalId,
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require(Permission.PRINCIPAL_MANAGE))],
) -> PrincipalOut:
    principal = services.deactivate_principal(session, ctx, caller, principal_id)
    return PrincipalOut.model_validate(principal)


@router.get("/v1/directory", response_model=Directory)
def read_directory(
    session: Db, _caller: Annotated[Caller, Depends(require(Permission.DIRECTORY_READ))]
) -> Directory:
    return Directory(items=[DirectoryEntry.model_validate(o) for o in services.directory(session)])
