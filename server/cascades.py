"""Events that cross domains, in one module above them: a withdrawn consent stops the
unanswered disclosure requests made under it, and a withdrawn case closes the open requests about
it (their unread answers deleted).

`server.consents` and `server.cases` record their own change and never import
`server.disclosures` (the domains below never import a domain above, style.md); the routes call
these functions, which add the disclosure side in the request's one transaction, so the
withdrawal and its consequences are stored together or not at all. The retention sweeper, itself
above every domain, calls `server.disclosures.services.close_for_case` directly when it purges.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from server.auth.tokens import Caller
from server.cases import services as cases
from server.cases.models import Case
from server.consents import services as consents
from server.consents.models import Consent
from server.context import AppContext
from server.disclosures.services import close_for_case, withdraw_for_consent


def withdraw_consent(session: Session, ctx: AppContext, caller: Caller, consent_id: str) -> Consent:
    """`server.consents.services.withdraw_consent`, and the unanswered disclosure requests under
    the consent stop. Repeating it changes nothing (no request is left waiting under it)."""
    consent = consents.withdraw_consent(session, ctx, caller, consent_id)
    withdraw_for_consent(session, ctx, caller, consent.id)
    return consent


def withdraw_case(
    session: Session, ctx: AppContext, caller: Caller, case_id: str, reason: str, note: str | None
) -> Case:
    """`server.cases.services.withdraw_case`, and the open disclosure requests about the case
    close, unread answers deleted: a finding overturned on appeal must not reach a requester
    afterwards. Repeating it changes nothing."""
    case = cases.withdraw_case(session, ctx, caller, case_id, reason, note)
    close_for_case(session, ctx, caller, case.id, "record_withdrawn")
    return case
