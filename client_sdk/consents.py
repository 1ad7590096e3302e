"""A consent's details, sealed on the way out and opened on the way back (docs/api.md, "Consents").

The applicant's and the position's references, the signed form's SHA-256 and the applicant's
self-declaration are the hiring organisation's own records: `seal` puts them in one fixed-size
blob, signed with the organisation's Ed25519 key and sealed to its X25519 key
(`protocol.consent_details`), and `open_receipt` turns the server's receipt back into a
`Consent` with them. The server stores the blob and cannot read it, so a stolen database does not
tell which applicant a consent (or a check, or a match) was about.

Only the organisation's own keys are used, from the credentials: never the directory's copy,
which comes from the server.
"""

from __future__ import annotations

from datetime import datetime

from client_sdk.credentials import OrgKeys
from client_sdk.errors import CredentialsError, InvalidInput, InvalidResponse
from client_sdk.keystore import ed25519_public, x25519_public
from client_sdk.models import Consent, DetailsState
from protocol import consent_details
from protocol import messages as wire
from protocol.errors import DeserializeError, InvalidInputError, VerifyError

__all__ = ["open_receipt", "seal"]


def seal(
    org_keys: OrgKeys | None,
    *,
    applicant_ref: str,
    position_ref: str,
    form_sha256: str,
    self_declared_finding: bool,
    purpose: str,
    consented_at: datetime,
) -> str:
    """The details as `sealed_details` (hex) for `POST /v1/consents`; `InvalidInput` names a
    bad field (never its value), before any request."""
    if org_keys is None:
        raise CredentialsError(
            "these credentials hold no organisation keys (org_keys): a consent's details are "
            "sealed to the organisation's own X25519 key and signed with its Ed25519 key "
            "(refcheck login --org-keys-file)"
        )
    try:
        details = consent_details.ConsentDetails(
            applicant_ref=applicant_ref,
            position_ref=position_ref,
            form_sha256=form_sha256,
            self_declared_finding=self_declared_finding,
            purpose=purpose,
            consented_at=consented_at,
        )
    except InvalidInputError as exc:
        raise InvalidInput(f"invalid consent: {exc}") from None
    sealed = consent_details.seal_details(
        details,
        x25519_public(org_keys.x25519_private),
        signing_seed=org_keys.ed25519_private,
    )
    return sealed.hex()


def open_receipt(org_keys: OrgKeys | None, receipt: wire.ConsentOut) -> Consent:
    """The receipt with its details opened.

    A blob that does not open with our key reads as `unreadable` (the organisation's key changed
    since, or these credentials have none): the consent can still be read and withdrawn. One
    that opens but is not signed by our organisation, is malformed, or belongs to a consent of
    another purpose or time was made or moved by the server: `InvalidResponse`.
    """
    state: DetailsState = "unreadable"
    opened = None
    if org_keys is not None:
        try:
            opened = consent_details.open_details(
                bytes.fromhex(receipt.sealed_details),
                org_keys.x25519_private,
                ed25519_public(org_keys.ed25519_private),
                purpose=receipt.purpose,
                consented_at=receipt.consented_at,
            )
        except consent_details.NotSealedToThisKey:
            pass
        except VerifyError:
            raise InvalidResponse(
                "the consent's sealed details were not made by your organisation for this "
                "consent (a forged signature, or details moved from another consent)"
            ) from None
        except DeserializeError:
            raise InvalidResponse("the consent's sealed details are malformed") from None
    if opened is not None:
        state = "signed" if opened.signed else "unsigned"
    details = None if opened is None else opened.details
    return Consent(
        id=receipt.id,
        lookup_code=receipt.lookup_code,
        applicant_ref=None if details is None else details.applicant_ref,
        purpose=receipt.purpose,
        position_ref=None if details is None else details.position_ref,
        form_sha256=None if details is None else details.form_sha256,
        self_declared_finding=None if details is None else details.self_declared_finding,
        consented_at=receipt.consented_at,
        expires_on=receipt.expires_on,
        max_checks=receipt.max_checks,
        checks_used=receipt.checks_used,
        status=receipt.status,
        withdrawn_at=receipt.withdrawn_at,
        details=state,
    )
