"""The network's vocabularies, each defined once (issue 21): the words a registration, an
answer and a disclosure request are made of. The server's schemas and policy, the SDK, the CLI
and the console import them from here; `tests/test_vocabularies.py` fails on a second copy.

Each is a `StrEnum`, so a member is its own wire string: it compares equal to the plain code,
serialises as it (JSON, pydantic) and parses from it (`Category("sexual_abuse")`).

Strength and kind are the identity layer's (`protocol.identity.keys`, where `derive_keys`
emits them) and are re-exported here, so this module is the one list.

Which codes a registration may use is the *policy in force*'s decision (a category or sanction
it leaves out, `under_investigation` findings unless it allows them): wire models therefore
carry these as plain codes (`protocol.messages.Code`) and the server names the rule it applied.
"""

from __future__ import annotations

from enum import StrEnum

from protocol.identity.keys import Kind, Strength

__all__ = [
    "Category",
    "DisclosureState",
    "Finding",
    "Kind",
    "Outcome",
    "Sanction",
    "Strength",
]


class Category(StrEnum):
    """What the misconduct was (domain.md)."""

    SEXUAL_EXPLOITATION = "sexual_exploitation"
    SEXUAL_ABUSE = "sexual_abuse"
    SEXUAL_HARASSMENT = "sexual_harassment"


class Finding(StrEnum):
    """Where the organisation's process stands. Only a substantiated finding is registered,
    unless the policy also admits findings under investigation."""

    SUBSTANTIATED = "substantiated"
    UNDER_INVESTIGATION = "under_investigation"


class Sanction(StrEnum):
    """What the organisation did."""

    DISMISSAL = "dismissal"
    CONTRACT_TERMINATION = "contract_termination"
    OTHER_DISCIPLINARY = "other_disciplinary"


class Outcome(StrEnum):
    """The hiring outcome the requester reports (the MDS yearly figures)."""

    HIRED = "hired"
    NOT_HIRED_DISCLOSURE = "not_hired_disclosure"
    NOT_HIRED_OTHER = "not_hired_other"


class DisclosureState(StrEnum):
    """Where a disclosure request stands: `requested → acknowledged → answered → closed`, plus
    `withdrawn` (by the requester, or by a cascade) and `expired` (the deadline job)."""

    REQUESTED = "requested"
    ACKNOWLEDGED = "acknowledged"
    ANSWERED = "answered"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
