"""`refcheck demo`: the whole story against a running server, told step by step.

It uses the demo principals that `refcheck-server init --demo` wrote under DATA_DIR/demo/ and
real calls only: org-a's focal point registers a case, org-b's HR records an applicant's
consent and checks the same person under another spelling, and the match appears. Then the
disclosure: org-b asks org-a (the applicant's details sealed to org-a), org-a opens them,
acknowledges and answers (signed, sealed to org-b), and org-b verifies the answer, reports the
hiring outcome and closes the request. After each step it prints what each party saw and what
it did not; for the server that is only ids, states and the sizes of ciphertexts, measured on
what it actually stored.

The story is the list `STEPS`, each step reading and extending the shared `Story`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from client_sdk._client import Client
from client_sdk.cli._common import handled, state
from client_sdk.credentials import Credentials
from client_sdk.errors import CredentialsError
from client_sdk.forms import render_form
from client_sdk.models import CaseRegistration, CheckResult, DisclosureAnswer, Match
from protocol.disclosure import SEALED_ANSWER_SIZE

# Invented people: no real person has these names and numbers.
REGISTERED_PERSON: dict[str, Any] = {
    "full_name": "Siti Nurhaliza Rahmawati",
    "date_of_birth": "1988-04-12",
    "nationality": "ID",
    "national_id": "3201234567890001",
    "email": "siti.rahmawati@example.org",
}
APPLICANT_AS_ORG_B_HAS_HER: dict[str, Any] = {
    "full_name": "Sity Nurhalizah Rahmawaty",
    "date_of_birth": "1988-04-12",
    "nationality": "ID",
    "national_id": "3201-2345-6789-0001",
}
UNRELATED_APPLICANT: dict[str, Any] = {
    "full_name": "Dewi Lestari Putri",
    "date_of_birth": "1990-09-30",
    "nationality": "ID",
    "national_id": "3174056509900002",
}


@dataclass
class Story:
    """What the steps share: the parties' clients and what happened so far."""

    console: Console
    focal_a: Client
    hr_b: Client
    focal_a_org: str
    hr_b_org: str
    case_id: str | None = None
    finding_date: date | None = None
    consent_id: str | None = None
    result: CheckResult | None = None
    request_id: str | None = None
    keys_per_check: int = 0
    facts: dict[str, Any] = field(default_factory=dict)

    def saw(self, party: str, saw: list[str], did_not: list[str]) -> None:
        table = Table(show_header=True, header_style="bold", expand=True)
        table.add_column(f"{party} saw")
        table.add_column(f"{party} did not see")
        for i in range(max(len(saw), len(did_not))):
            table.add_row(saw[i] if i < len(saw) else "", did_not[i] if i < len(did_not) else "")
        self.console.print(table)


def step_key(story: Story) -> None:
    key = story.hr_b.oprf_key()
    story.focal_a.oprf_key()
    network = story.hr_b.network
    assert network is not None
    story.keys_per_check = network.keys_per_check or 0
    story.console.print(
        f"The network [bold]{network.network_id}[/] announces its OPRF key [bold]{key.key_id}[/] "
        f"(seq {key.key_seq}), signed with its network signing key (SHA-256 "
        f"{network.fingerprint[:16]}...). Both organisations' credentials name that "
        "fingerprint, so a server showing another key is refused before anything is sent; "
        "every evaluation must carry a proof for the announced key, and every check and case "
        f"holds exactly {story.keys_per_check} elements."
    )


def step_register(story: Story) -> None:
    from protocol.identity import derive_keys

    keys = derive_keys(REGISTERED_PERSON)
    story.finding_date = date.today() - timedelta(days=60)
    registration = story.focal_a.register_case(
        REGISTERED_PERSON,
        CaseRegistration(
            category="sexual_abuse",
            finding="substantiated",
            finding_date=story.finding_date,
            sanction="dismissal",
            legal_basis="legitimate_interests",
            retention_until=date.today() + timedelta(days=5 * 365),
            mou_reference="MoU-2026-01",
            subject_notified_on=date.today() - timedelta(days=50),
        ),
    )
    story.case_id = registration.case_id
    count = len(registration.filter_values)
    story.console.print(
        f"{story.focal_a_org}'s focal point registered a concluded, substantiated case "
        f"([bold]{story.case_id}[/]) for a dismissed staff member. On org-a's machine the "
        f"record became {len(keys)} identifier keys, hashed to the group and sealed to the "
        "network's registration key with the hash of the case's metadata. The answer gave "
        f"org-a its case's {count} filter values; {count - len(keys)} of them are padding, "
        "each proven by the server (DLEQ) to be derived from the case id, so none was planted. "
        "org-a keeps them to check later that the server still publishes them "
        "(`refcheck case verify-live`)."
    )
    story.saw(
        "the server",
        [
            "in memory only, while registering: the keys' hashes to the group (one-way) with "
            "their kinds",
            f"stored: exactly {count} opaque entries, like every case, in random order",
            "category, sanction, dates, legal basis, MoU reference",
        ],
        [
            "the name, date of birth, NIK or e-mail",
            "anything that can be reversed to them",
            "a stored count of the person's keys (there is none)",
        ],
    )


def step_consent(story: Story) -> None:
    # Stands in for the scanned, signed form: the receipt records the SHA-256 of that file.
    form_digest = hashlib.sha256(render_form("id", "pdf")).hexdigest()
    receipt = story.hr_b.record_consent_receipt(
        applicant_ref="APP-2026-0042",
        purpose="recruitment",
        position_ref="POS-WASH-07",
        form_sha256=form_digest,
        self_declared_finding=False,
    )
    story.consent_id = receipt.id
    story.console.print(
        f"An applicant signed the declaration (answering 'no' to every question) and consented. "
        f"{story.hr_b_org}'s HR system recorded the receipt [bold]{receipt.id}[/]: one "
        f"recruitment check allowed, valid until {receipt.expires_on.isoformat()}."
    )
    story.saw(
        "the server",
        ["org-b's own applicant reference and position reference", "the signed form's SHA-256"],
        ["the applicant's name or any identifier"],
    )


def step_check(story: Story) -> None:
    assert story.consent_id is not None
    result = story.hr_b.check_applicant(APPLICANT_AS_ORG_B_HAS_HER, story.consent_id)
    story.result = result
    story.console.print(
        f"{story.hr_b_org}'s HR checked the applicant as its own file has her: "
        f"'{APPLICANT_AS_ORG_B_HAS_HER['full_name']}', NIK written with dashes. "
        f"Result: [bold]{result.status.value}[/] ({result.keys_checked} keys checked)."
    )
    if result.matches:
        table = Table("holder", "strongest matching key", "strength", "record reference")
        for m in result.by_case():
            table.add_row(m.holder_org, m.kind, m.strength, m.entry_id)
        story.console.print(table)
        kinds = sorted({m.kind for m in result.matches})
        story.console.print(
            f"{len(result.matches)} of the applicant's keys matched records of this case "
            f"({', '.join(kinds)}): her name as org-b spells it still led to org-a's record."
        )
    story.saw(
        "the server",
        [
            f"a check by {story.hr_b_org} under consent {story.consent_id}: exactly "
            f"{story.keys_per_check} blinded elements (the applicant's {result.keys_checked} "
            "keys, padded with random ones and shuffled)",
            "then, because some keys were in the filter, a claim (Schnorr proof) for each of "
            "those, and which entries they matched",
        ],
        [
            "the applicant's identifiers",
            "how many keys the applicant has, or which elements were padding",
        ],
    )
    story.saw(
        story.hr_b_org,
        [
            "the signed registry filter, in which it looked its applicant's keys up locally",
            "that its applicant matches a record, which member holds it, and how strongly",
        ],
        ["the category, finding or sanction (only the holder can disclose them)"],
    )
    story.saw(
        story.focal_a_org,
        ["nothing yet: it learns of the match only from a disclosure request"],
        ["that org-b checked anyone at all"],
    )


def step_no_match(story: Story) -> None:
    consent = story.hr_b.record_consent(
        applicant_ref="APP-2026-0043",
        purpose="recruitment",
        position_ref="POS-WASH-07",
        form_sha256=hashlib.sha256(render_form("en", "pdf")).hexdigest(),
        self_declared_finding=False,
    )
    result = story.hr_b.check_applicant(UNRELATED_APPLICANT, consent)
    story.console.print(
        f"Another applicant, checked the same way: [bold]{result.status.value}[/]. The check "
        f"sent the same {story.keys_per_check} elements and got an answer of the same shape; "
        "none of the applicant's keys was in the filter, so nothing more was sent: the "
        "server heard nothing about this applicant beyond the consented check itself."
    )


def _our_match(story: Story) -> Match:
    """The match on the case this run registered (a server that ran the demo before also
    holds the cases of earlier runs, which match the same invented person)."""
    assert story.result is not None
    return next(m for m in story.result.by_case() if m.case_id == story.case_id)


def _ciphertext_size(sealed_hex: str | None) -> int:
    return 0 if sealed_hex is None else len(sealed_hex) // 2


def step_request(story: Story) -> None:
    assert story.consent_id is not None
    match = _our_match(story)
    # In the same run as the check: the request names an entry this check claimed, so asking
    # now spends no second check of the consent.
    story.request_id = story.hr_b.request_disclosure(
        match, story.consent_id, applicant=APPLICANT_AS_ORG_B_HAS_HER
    )
    request = story.hr_b.get_disclosure(story.request_id)
    consent = story.hr_b.get_consent(story.consent_id)
    holder_keys = story.hr_b.org_keys(match.holder_org_id)  # pinned while sealing
    story.console.print(
        f"{story.hr_b_org}'s HR asked {match.holder_org} for its answer about record "
        f"{match.entry_id}: request [bold]{story.request_id}[/], state {request.state}, answer "
        f"due {request.due_at.date().isoformat()}. It attached the applicant's details as its "
        f"own file has them, signed with {story.hr_b_org}'s Ed25519 key and sealed to "
        f"{match.holder_org}'s X25519 key, which it pinned on first use (fingerprint "
        f"{holder_keys.fingerprint}): a key swapped in the directory would stop it here. "
        f"Consent checks used: {consent.checks_used} of {consent.max_checks} (the request "
        "came from the check's own match, not from a second check).",
        highlight=False,
    )
    story.saw(
        "the server",
        [
            f"a request from {story.hr_b_org} to {match.holder_org} about record "
            f"{match.entry_id}, naming check {match.check_id}",
            f"that this check, under consent {story.consent_id}, had claimed that record with "
            f"a verified proof: {story.hr_b_org} really matched it",
            "a sealed blob for the holder (its size in the next step); state: requested",
        ],
        [
            "the applicant's name, date of birth or NIK (sealed to org-a)",
            "which of the applicant's keys matched",
        ],
    )
    story.saw(
        story.focal_a_org,
        ["a new request waiting (it is notified)"],
        ["the details yet: it opens them in the next step"],
    )


def step_holder_reads(story: Story) -> None:
    assert story.request_id is not None
    incoming = story.focal_a.list_disclosures(role="holder", state="requested")
    request = next(d for d in incoming if d.id == story.request_id)
    details = story.focal_a.read_applicant_details(story.request_id)
    assert details is not None
    requester_keys = story.focal_a.org_keys(request.requester_org_id)
    acked = story.focal_a.acknowledge_disclosure(story.request_id)
    size = _ciphertext_size(request.sealed_applicant_details)
    story.console.print(
        f"{story.focal_a_org}'s focal point lists {len(incoming)} new request(s); "
        f"[bold]{request.id}[/] from {request.requester_org} is about its case "
        f"{request.case_id}. It opens the applicant's details with {story.focal_a_org}'s X25519 "
        f"private key; {request.requester_org}'s signature "
        f"{'verifies' if details.signed else 'is MISSING'} against its pinned key "
        f"(fingerprint {requester_keys.fingerprint}):",
        highlight=False,
    )
    table = Table("field", f"as {details.requester_org} has it")
    for name, value in details.applicant.items():
        table.add_row(name, value)
    story.console.print(table)
    story.console.print(
        "Comparing them with its own file of the dismissed staff member (same date of birth, "
        "same NIK written with dashes, the name spelt differently), the focal point "
        f"acknowledges: state {acked.state}; the deadline does not move.",
        highlight=False,
    )
    story.saw(
        story.focal_a_org,
        [
            f"that {request.requester_org} asks about its case {request.case_id}",
            f"the applicant's details as {request.requester_org} has them, signed by it",
        ],
        [
            f"{request.requester_org}'s other applicants, checks or consents",
            "the applicant reference or the position the applicant applied for",
        ],
    )
    story.saw(
        "the server",
        [f"a {size}-byte ciphertext, relayed to org-a", "state: requested -> acknowledged"],
        ["what the ciphertext holds (every details blob has this size)"],
    )


def step_holder_answers(story: Story) -> None:
    assert story.request_id is not None and story.finding_date is not None
    answered = story.focal_a.answer_disclosure(
        story.request_id,
        DisclosureAnswer(
            same_person="confirmed",
            category="sexual_abuse",
            finding_date=story.finding_date,
            sanction="dismissal",
            text="Dismissed after a substantiated investigation; the finding was not appealed.",
            contact="pseah-focal@org-a.example (demo)",
        ),
    )
    requester_keys = story.focal_a.org_keys(answered.requester_org_id)
    story.console.print(
        f"{story.focal_a_org} answers: confirmed, same person; sexual abuse, found on "
        f"{story.finding_date.isoformat()}, dismissal, a short note and a contact. The answer "
        f"names this request and both organisations, is signed with {story.focal_a_org}'s "
        f"Ed25519 key and sealed to {answered.requester_org}'s X25519 key (pinned, fingerprint "
        f"{requester_keys.fingerprint}). State: {answered.state}; the server "
        f"{'deleted' if answered.sealed_applicant_details is None else 'still holds'} the "
        "applicant's details, now that they have served.",
        highlight=False,
    )
    story.saw(
        "the server",
        [
            f"a {SEALED_ANSWER_SIZE}-byte ciphertext (every answer has exactly this size: a "
            "'not the same person' is as long as a confirmation)",
            "state: acknowledged -> answered, and that an answer was given (yearly figures)",
        ],
        [
            "the verdict, category, finding date, sanction, note or contact",
            "who signed it (the signature is inside the sealed box)",
        ],
    )
    story.saw(
        story.focal_a_org,
        ["what it chose to disclose, and to whom"],
        [f"what {answered.requester_org} will decide about the applicant"],
    )


def step_requester_reads(story: Story) -> None:
    assert story.request_id is not None
    stored = story.hr_b.get_disclosure(story.request_id)
    answer = story.hr_b.read_disclosure_answer(story.request_id)
    story.console.print(
        f"{story.hr_b_org}'s HR fetches the {_ciphertext_size(stored.sealed_answer)}-byte "
        f"answer, opens it with {story.hr_b_org}'s X25519 private key and verifies "
        f"{answer.holder_org}'s signature against its pinned key, and that it answers this "
        "very request (a forged, replayed or re-keyed answer is refused, never shown):",
        highlight=False,
    )
    table = Table("answer (signature verified)", "")
    for name, value in answer.as_dict().items():
        if value is not None and name not in ("request_id", "holder_org_id"):
            table.add_row(name, str(value))
    story.console.print(table)
    outcome = story.hr_b.report_outcome(story.request_id, "not_hired_disclosure")
    closed = story.hr_b.close_disclosure(story.request_id)
    story.console.print(
        f"The applicant is not hired; {story.hr_b_org} reports the outcome "
        f"({outcome.outcome}) and closes the request: state {closed.state} "
        f"({closed.close_reason}). The server "
        f"{'deleted' if closed.sealed_answer is None else 'still holds'} the answer's "
        "ciphertext.",
        highlight=False,
    )
    story.saw(
        story.hr_b_org,
        [
            f"{answer.holder_org}'s verified answer: {answer.same_person}, {answer.category}, "
            f"{answer.sanction}",
            "a contact for follow-up",
        ],
        [f"{answer.holder_org}'s investigation file, the survivor, anything not written"],
    )
    story.saw(
        "the server",
        [
            "state: answered -> closed (read); the ciphertext deleted",
            f"the outcome {outcome.outcome} (the one consequence MDS members publish)",
        ],
        ["the verdict or the finding: it never held them in the clear"],
    )


Step = Callable[[Story], None]
STEPS: list[tuple[str, Step]] = [
    ("The network's key", step_key),
    ("org-a's focal point registers a concluded case", step_register),
    ("org-b records an applicant's consent", step_consent),
    ("org-b checks the applicant under another spelling", step_check),
    ("org-b's HR asks org-a, the applicant's details sealed to org-a", step_request),
    ("org-a's focal point opens the request and acknowledges it", step_holder_reads),
    ("org-a answers, signed and sealed to org-b", step_holder_answers),
    ("org-b verifies the answer, reports the outcome and closes", step_requester_reads),
    ("A different applicant", step_no_match),
]


def find_demo_credentials(demo_dir: Path) -> tuple[Credentials, Credentials]:
    """The focal point of org-a and the HR checker of org-b among the demo credentials."""
    focal: Credentials | None = None
    hr: Credentials | None = None
    for path in sorted(demo_dir.glob("*.json")):
        try:
            creds = Credentials.load(path)
        except CredentialsError:
            continue
        if creds.org_short_name == "org-a" and "focal_point" in creds.roles:
            focal = focal or creds
        if creds.org_short_name == "org-b" and "hr_checker" in creds.roles:
            hr = hr or creds
    if focal is None or hr is None:
        raise CredentialsError(
            f"no demo credentials for org-a's focal point and org-b's HR in {demo_dir}; "
            "run `refcheck-server init --demo` (or `make run`) first"
        )
    return focal, hr


@handled
def demo(
    ctx: typer.Context,
    data_dir: Annotated[
        Path, typer.Option(help="The server's data directory (demo credentials in DIR/demo).")
    ] = Path("var"),
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="The running server (default: the demo credentials' server)."
        ),
    ] = None,
) -> None:
    """Tell the whole story against a running server, showing who saw what."""
    st = state(ctx)
    # None: each client takes the server its credentials file names (`init --demo --base-url`).
    base_url = base_url or st.base_url
    demo_dir = data_dir / "demo"
    focal_creds, hr_creds = find_demo_credentials(demo_dir)
    pins = demo_dir / "demo.pins.json"
    with (
        Client(focal_creds, base_url=base_url, pin_file=pins) as focal_a,
        Client(hr_creds, base_url=base_url, pin_file=pins) as hr_b,
    ):
        story = Story(
            console=st.console,
            focal_a=focal_a,
            hr_b=hr_b,
            focal_a_org=focal_creds.org_short_name or "org-a",
            hr_b_org=hr_creds.org_short_name or "org-b",
        )
        for number, (title, step) in enumerate(STEPS, start=1):
            st.console.print(Panel(f"Step {number}: {title}", style="bold"))
            step(story)
