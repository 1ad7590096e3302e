"""Errors of the disclosure workflow."""

from __future__ import annotations

from server.errors import Conflict, InvalidRequest


class MatchProofInvalid(InvalidRequest):
    """The match proof does not verify against the record named, or no such live record exists.

    Both answer the same (type, status, detail and the same HMAC work): telling them apart would
    let a client probe which record references exist without having matched any.
    """

    slug, title = "match-proof-invalid", "The match proof does not verify"

    def __init__(self) -> None:
        super().__init__(
            "the match proof does not verify for this record and consent: run the check again "
            "and use the match it returns"
        )


class InvalidTransition(Conflict):
    """The request is not in a state that allows this action; `state` names the current one."""

    slug, title = "invalid-transition", "The request's state does not allow this"

    def __init__(self, detail: str, *, state: str) -> None:
        super().__init__(detail, state=state)


class HolderCannotAnswer(Conflict):
    """The record's holder is no longer an active member (withdrawn, and the policy keeps its
    cases matching until their retention date): it could never answer, so no applicant details
    are sent to an organisation outside the network's MoU."""

    slug, title = "holder-inactive", "The holder of this record cannot answer requests"
