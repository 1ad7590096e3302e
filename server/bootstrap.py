"""First start of a network: the secretariat and its first admin (`refcheck-server init`)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from server.audit.services import record
from server.auth.permissions import Role
from server.context import AppContext
from server.credentials import ed25519_public_hex
from server.oprf.services import current_key
from server.registry import services as registry
from server.registry.errors import RoleNotAllowed
from server.registry.models import (
    Membership,
    Organisation,
    OrgStatus,
    OrgType,
    Principal,
    PrincipalKind,
)


class AlreadyInitialised(RoleNotAllowed):
    slug, title = "already-initialised", "This network is initialised already"


@dataclass(frozen=True)
class Bootstrap:
    secretariat: Organisation
    admin: Principal
    admin_key: Ed25519PrivateKey


def is_initialised(session: Session) -> bool:
    return registry.secretariat(session) is not None


def init_network(
    session: Session,
    ctx: AppContext,
    *,
    secretariat_name: str,
    secretariat_short_name: str,
    country: str,
    admin_name: str,
) -> Bootstrap:
    """Create the secretariat and its first network admin, whose private key is returned once.

    Refuses a second run: a new admin on an existing network would be an unaudited back door.
    """
    if is_initialised(session):
        raise AlreadyInitialised("this database already holds an initialised network")
    org = registry.create_org(
        session,
        ctx,
        None,
        {
            "legal_name": secretariat_name,
            "short_name": secretariat_short_name,
            "country": country,
            "org_type": OrgType.NETWORK_SECRETARIAT,
            "membership": Membership.MEMBER,
            "status": OrgStatus.ACTIVE,
            "data_sharing_agreement": False,
            "may_register": False,
            "may_check": False,
            "focal_points": [],
        },
    )
    admin_key = Ed25519PrivateKey.generate()
    admin = registry.create_principal(
        session,
        ctx,
        None,
        org.id,
        name=admin_name,
        kind=PrincipalKind.PERSON,
        roles=[Role.NETWORK_ADMIN],
        auth_public_key=ed25519_public_hex(admin_key),
    )
    record(
        session,
        ctx,
        None,
        "network.init",
        object_type="organisation",
        object_id=org.id,
        details={
            "policy_version": ctx.policy.version,
            "oprf_key_id": ctx.keys.oprf_key_id,
            "token_key_id": ctx.keys.token_key_id,
            "audit_key_id": ctx.keys.audit_key_id,
        },
    )
    # Announce OPRF key 1 now, in this write: left to the first request that reads the key,
    # the announcement ran inside a check's read transaction, and on SQLite a read that turns
    # into a write does not queue for the lock, so the first concurrent checks of a new network
    # got 503 `busy`.
    current_key(session, ctx)
    return Bootstrap(secretariat=org, admin=admin, admin_key=admin_key)
