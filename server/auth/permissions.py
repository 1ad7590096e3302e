"""Roles and permissions: the one table that says who may do what.

Permissions are `scope:resource:action` strings. Every route declares exactly one; the role table
below is the only place that grants them, so the authorisation matrix test can walk it.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    NETWORK_ADMIN = "network_admin"
    FOCAL_POINT = "focal_point"
    HR_CHECKER = "hr_checker"
    AUDITOR = "auditor"
    # Runs `refcheck-witness`: cosigns tree heads, filter headers and key announcements.
    WITNESS = "witness"


class Permission(StrEnum):
    # every signed-in principal: who am I, what may I do (the SDK reads it after sign-in)
    SELF_READ = "auth:self:read"
    # registry (network secretariat)
    ORG_CREATE = "registry:org:create"
    ORG_UPDATE = "registry:org:update"
    ORG_READ_ALL = "registry:org:read_all"
    ORG_READ_OWN = "registry:org:read_own"
    DIRECTORY_READ = "registry:directory:read"
    PRINCIPAL_MANAGE = "registry:principal:manage"
    # where the network's notifications go: the admin for any organisation, a focal point
    # for its own
    ORG_NOTIFY_ADDRESSES = "registry:notify:update"
    # policy and audit
    POLICY_READ = "policy:policy:read"
    AUDIT_READ = "audit:entry:read"
    AUDIT_EXPORT = "audit:entry:export"
    # the transparency log (heads and proofs; entries themselves need AUDIT_READ)
    TRANSPARENCY_READ = "transparency:log:read"
    TRANSPARENCY_COSIGN = "transparency:cosignature:create"
    # the notification outbox (network admin): what was sent, what is still undeliverable
    NOTIFICATION_READ = "notifications:outbox:read"
    # statistics
    STATS_NETWORK = "stats:network:read"
    STATS_OWN = "stats:org:read"
    # blind-match protocol
    CASE_REGISTER = "cases:case:register"
    CASE_READ = "cases:case:read"
    CASE_UPDATE = "cases:case:update"
    CASE_WITHDRAW = "cases:case:withdraw"
    CONSENT_RECORD = "consents:consent:record"
    CONSENT_READ = "consents:consent:read"
    CONSENT_WITHDRAW = "consents:consent:withdraw"
    CONSENT_LOOKUP = "consents:lookup:read"
    CHECK_RUN = "checks:check:run"
    RETENTION_RUN = "retention:sweep:run"
    # disclosure workflow
    DISCLOSURE_REQUEST = "disclosures:request:create"
    DISCLOSURE_READ = "disclosures:request:read"
    DISCLOSURE_ANSWER = "disclosures:request:answer"
    DISCLOSURE_WITHDRAW = "disclosures:request:withdraw"
    DISCLOSURE_OUTCOME = "disclosures:outcome:report"
    DISCLOSURE_OVERSIGHT = "disclosures:request:oversee"


_EVERY_MEMBER = {
    Permission.SELF_READ,
    Permission.TRANSPARENCY_READ,
    Permission.POLICY_READ,
    Permission.ORG_READ_OWN,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    # The secretariat manages the network but never registers, checks or reads disclosures:
    # IT staff who hold data must not read it.
    Role.NETWORK_ADMIN: frozenset(
        _EVERY_MEMBER
        | {
            Permission.ORG_CREATE,
            Permission.ORG_UPDATE,
            Permission.ORG_READ_ALL,
            Permission.DIRECTORY_READ,
            Permission.PRINCIPAL_MANAGE,
            Permission.ORG_NOTIFY_ADDRESSES,
            Permission.NOTIFICATION_READ,
            Permission.AUDIT_READ,
            Permission.AUDIT_EXPORT,
            Permission.STATS_NETWORK,
            Permission.STATS_OWN,
            Permission.CONSENT_LOOKUP,
            Permission.RETENTION_RUN,
            Permission.DISCLOSURE_OVERSIGHT,
        }
    ),
    Role.FOCAL_POINT: frozenset(
        _EVERY_MEMBER
        | {
            Permission.DIRECTORY_READ,
            Permission.STATS_OWN,
            Permission.ORG_NOTIFY_ADDRESSES,
            Permission.CASE_REGISTER,
            Permission.CASE_READ,
            Permission.CASE_UPDATE,
            Permission.CASE_WITHDRAW,
            Permission.DISCLOSURE_READ,
            Permission.DISCLOSURE_ANSWER,
        }
    ),
    Role.HR_CHECKER: frozenset(
        _EVERY_MEMBER
        | {
            Permission.DIRECTORY_READ,
            Permission.STATS_OWN,
            Permission.CONSENT_RECORD,
            Permission.CONSENT_READ,
            Permission.CONSENT_WITHDRAW,
            Permission.CONSENT_LOOKUP,
            Permission.CHECK_RUN,
            Permission.DISCLOSURE_REQUEST,
            Permission.DISCLOSURE_READ,
            Permission.DISCLOSURE_WITHDRAW,
            Permission.DISCLOSURE_OUTCOME,
        }
    ),
    # Auditors read the trail and the figures and change nothing.
    Role.AUDITOR: frozenset(
        {
            Permission.SELF_READ,
            Permission.POLICY_READ,
            Permission.ORG_READ_OWN,
            Permission.AUDIT_READ,
            Permission.AUDIT_EXPORT,
            Permission.STATS_NETWORK,
            Permission.TRANSPARENCY_READ,
        }
    ),
    # A witness reads the log and the signed objects and adds its cosignatures; with the
    # auditor role beside it, it also reads the entries it checks the filter's size against.
    Role.WITNESS: frozenset(
        {
            Permission.SELF_READ,
            Permission.POLICY_READ,
            Permission.TRANSPARENCY_READ,
            Permission.TRANSPARENCY_COSIGN,
        }
    ),
}


#: Roles of the secretariat: they see across organisations, so only principals of the
#: `network_secretariat` organisation may hold them.
NETWORK_ROLES = frozenset({Role.NETWORK_ADMIN, Role.AUDITOR, Role.WITNESS})
#: Roles that act for one member organisation; the secretariat never registers or checks.
MEMBER_ROLES = frozenset({Role.FOCAL_POINT, Role.HR_CHECKER})


def permissions_for(roles: frozenset[Role] | set[Role]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS[role]
    return frozenset(granted)
