"""Errors of checks and their entries calls."""

from __future__ import annotations

from server.errors import Conflict, InvalidRequest


class WrongElementCount(InvalidRequest):
    """A check carries exactly `keys_per_check` elements: any other count would tell the server
    something about the applicant (docs/protocol.md, "Check")."""

    slug, title, status = (
        "wrong-element-count",
        "A check carries exactly keys_per_check elements",
        422,
    )


class EntryWindowClosed(Conflict):
    """The check's evaluations are kept for `entry_fetch_window_seconds` only; after that no
    claim can be verified, and the check must be run again under the consent."""

    slug, title = "entry-window-closed", "The check's entry window has closed"


class KeyRotated(Conflict):
    """The OPRF key changed after the check ran; the SDK re-runs the check once, naming
    `rerun_of`, which spends no consent budget."""

    slug, title = "key-rotated", "The OPRF key was rotated after this check"


class ClaimInvalid(InvalidRequest):
    """A claim's index is out of range or repeated, or its proof does not verify. One problem
    for each cause, with the claim's position, so a prober learns nothing about entries."""

    slug, title, status = "claim-invalid", "A claim does not hold for this check", 422
