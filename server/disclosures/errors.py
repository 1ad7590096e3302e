"""Errors of the disclosure workflow."""

from __future__ import annotations

from server.errors import Conflict, InvalidRequest


class UnclaimedEntry(InvalidRequest):
    """The entry was not claimed by this check (`POST /v1/checks/{id}/entries`), the check is
    not the caller's organisation's, or the entry is no longer live.

    All answer the same: telling them apart would let a client probe which record references
    exist without having matched any.
    """

    slug, title = "entry-not-claimed", "No verified claim of this check names this entry"

    def __init__(self) -> None:
        super().__init__(
            "this check did not claim this entry: run the check under the applicant's consent "
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
