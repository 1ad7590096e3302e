"""The demo network `make run` starts with: two members, their principals, credentials files.

`refcheck-server init --demo` calls `seed_demo` after creating the secretariat and the admin.
Every principal gets one credentials file under `<data-dir>/demo/` in the format of docs/api.md,
so the SDK and the `refcheck` CLI can sign in as any of them at once. Demo data only: the keys in
these files are as secret as any other, but the organisations are fictitious.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.public import PrivateKey as X25519PrivateKey
from sqlalchemy.orm import Session

from server.auth.permissions import Role
from server.bootstrap import Bootstrap
from server.context import AppContext
from server.credentials import credentials, ed25519_public_hex, org_keys_dict, write_credentials
from server.registry import services as registry
from server.registry.models import Membership, Organisation, OrgStatus, OrgType, PrincipalKind


@dataclass(frozen=True)
class DemoMember:
    short_name: str
    legal_name: str
    org_type: OrgType


#: Where the demo network's notifications go (issue 18): the secretariat's mailbox, and each
#: member's focal points (requests to answer) and HR (answers to its own requests).
SECRETARIAT_EMAIL = "secretariat@network.example"


def demo_notify_emails(short_name: str) -> list[dict[str, Any]]:
    return [
        {"address": f"focal-point@{short_name}.example", "role": "focal_point"},
        {"address": f"hr@{short_name}.example", "role": "hr_checker"},
    ]


DEMO_MEMBERS = (
    DemoMember("org-a", "Org A Humanitarian Relief (demo)", OrgType.INGO),
    DemoMember("org-b", "Org B United Nations Agency (demo)", OrgType.UN_AGENCY),
)


def write_demo_files(out_dir: Path, files: dict[str, dict[str, Any]]) -> list[Path]:
    """Write each credentials dict to `<out_dir>/<name>.json` (0600); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for name, data in files.items():
        path = out_dir / f"{name}.json"
        write_credentials(path, data)
        written.append(path)
    return written


def seed_demo(
    session: Session, ctx: AppContext, boot: Bootstrap, *, base_url: str
) -> dict[str, dict[str, Any]]:
    """Create org-a and org-b (active, valid MoU, may register and check), a focal point and an
    HR service account in each, and an auditor in the secretariat; the notification addresses
    focal-point@org-a.example, hr@org-a.example (and org-b's) and secretariat@network.example.

    Returns one credentials dict per principal, keyed by file name (admin, auditor, org-a-focal,
    org-a-hr, org-b-focal, org-b-hr); write them with `write_demo_files` once the transaction has
    committed, so no file names a principal the database does not hold.
    """
    issuer = ctx.settings.issuer
    today = ctx.now().date()
    boot.secretariat.notify_emails = [{"address": SECRETARIAT_EMAIL, "role": None}]
    files: dict[str, dict[str, Any]] = {
        "admin": credentials(
            base_url=base_url,
            issuer=issuer,
            principal=boot.admin,
            org=boot.secretariat,
            auth_key=boot.admin_key,
            org_keys=None,
            network=ctx.keys,
        )
    }
    auditor_key = Ed25519PrivateKey.generate()
    auditor = registry.create_principal(
        session,
        ctx,
        None,
        boot.secretariat.id,
        name="Network auditor (demo)",
        kind=PrincipalKind.PERSON,
        roles=[Role.AUDITOR],
        auth_public_key=ed25519_public_hex(auditor_key),
    )
    files["auditor"] = credentials(
        base_url=base_url,
        issuer=issuer,
        principal=auditor,
        org=boot.secretariat,
        auth_key=auditor_key,
        org_keys=None,
        network=ctx.keys,
    )
    for member in DEMO_MEMBERS:
        signing, sealing = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
        org: Organisation = registry.create_org(
            session,
            ctx,
            None,
            {
                "legal_name": member.legal_name,
                "short_name": member.short_name,
                "country": "ID",
                "org_type": member.org_type,
                "membership": Membership.MEMBER,
                "status": OrgStatus.ACTIVE,
                "mou_version": "MoU-2026-01",
                "mou_sha256": hashlib.sha256(
                    f"demo MoU signed by {member.short_name}".encode()
                ).hexdigest(),
                "mou_signed_on": today - timedelta(days=30),
                "mou_expires_on": today + timedelta(days=3 * 365),
                "data_sharing_agreement": True,
                "legal_basis": "legitimate_interests",
                "may_register": True,
                "may_check": True,
                "focal_points": [{"name": f"{member.short_name} PSEAH focal point (demo)"}],
                "notify_emails": demo_notify_emails(member.short_name),
                "x25519_public_key": bytes(sealing.public_key).hex(),
                "ed25519_public_key": ed25519_public_hex(signing),
            },
        )
        keys = org_keys_dict(signing, sealing)
        for suffix, name, kind, role in (
            ("focal", f"{member.short_name} focal point", PrincipalKind.PERSON, Role.FOCAL_POINT),
            ("hr", f"{member.short_name} HR system", PrincipalKind.SERVICE, Role.HR_CHECKER),
        ):
            auth_key = Ed25519PrivateKey.generate()
            principal = registry.create_principal(
                session,
                ctx,
                None,
                org.id,
                name=name,
                kind=kind,
                roles=[role],
                auth_public_key=ed25519_public_hex(auth_key),
            )
            files[f"{member.short_name}-{suffix}"] = credentials(
                base_url=base_url,
                issuer=issuer,
                principal=principal,
                org=org,
                auth_key=auth_key,
                org_keys=keys,
                network=ctx.keys,
            )
    return files
