"""Registry errors. `MouInactive` lives in `server.errors` (every domain refuses with it) and is
re-exported here so callers of `server.registry.services.require_mou` import it from one place."""

from __future__ import annotations

from server.errors import Conflict, InvalidRequest, MouInactive

__all__ = [
    "LastAdmin",
    "MouInactive",
    "OrgStatusTransition",
    "RoleNotAllowed",
    "ShortNameTaken",
]


class ShortNameTaken(Conflict):
    slug, title = "short-name-taken", "Another organisation already uses this short name"


class OrgStatusTransition(Conflict):
    slug, title = "status-transition", "This status change is not allowed"


class RoleNotAllowed(InvalidRequest):
    slug, title = "role-not-allowed", "This role is not allowed for this organisation"


class LastAdmin(Conflict):
    slug, title = "last-admin", "The last active network admin cannot be deactivated"
