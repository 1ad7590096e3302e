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
from client_sdk.cli.i18n import N_, _
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
        table.add_column(_("{party} saw").format(party=party))
        table.add_column(_("{party} did not see").format(party=party))
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
        _(
            "The network [bold]{network}[/] announces its OPRF key [bold]{key}[/] (seq {seq}), "
            "signed with its network signing key (SHA-256 {fingerprint}...). Both "
            "organisations' credentials name that fingerprint, so a server showing another key "
            "is refused before anything is sent; every evaluation must carry a proof for the "
            "announced key, and every check and case holds exactly {elements} elements."
        ).format(
            network=network.network_id,
            key=key.key_id,
            seq=key.key_seq,
            fingerprint=network.fingerprint[:16],
            elements=story.keys_per_check,
        )
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
        _(
            "{org}'s focal point registered a concluded, substantiated case ([bold]{case}[/]) "
            "for a dismissed staff member. On org-a's machine the record became {keys} "
            "identifier keys, hashed to the group and sealed to the network's registration key "
            "with the hash of the case's metadata. The answer gave org-a its case's {count} "
            "filter values; {padding} of them are padding, each proven by the server (DLEQ) to "
            "be derived from the case id, so none was planted. org-a keeps them to check later "
            "that the server still publishes them (`refcheck case verify-live`)."
        ).format(
            org=story.focal_a_org,
            case=story.case_id,
            keys=len(keys),
            count=count,
            padding=count - len(keys),
        )
    )
    story.saw(
        _("the server"),
        [
            _(
                "in memory only, while registering: the keys' hashes to the group (one-way) "
                "with their kinds"
            ),
            _("stored: exactly {count} opaque entries, like every case, in random order").format(
                count=count
            ),
            _("category, sanction, dates, legal basis, MoU reference"),
        ],
        [
            _("the name, date of birth, NIK or e-mail"),
            _("anything that can be reversed to them"),
            _("a stored count of the person's keys (there is none)"),
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
        _(
            "An applicant signed the declaration (answering 'no' to every question) and "
            "consented. {org}'s HR system recorded the receipt [bold]{receipt}[/]: one "
            "recruitment check allowed, valid until {until}."
        ).format(org=story.hr_b_org, receipt=receipt.id, until=receipt.expires_on.isoformat())
    )
    story.saw(
        _("the server"),
        [
            _("org-b's own applicant reference and position reference"),
            _("the signed form's SHA-256"),
        ],
        [_("the applicant's name or any identifier")],
    )


def step_check(story: Story) -> None:
    assert story.consent_id is not None
    result = story.hr_b.check_applicant(APPLICANT_AS_ORG_B_HAS_HER, story.consent_id)
    story.result = result
    story.console.print(
        _(
            "{org}'s HR checked the applicant as its own file has her: '{name}', NIK written "
            "with dashes. Result: [bold]{status}[/] ({keys} keys checked)."
        ).format(
            org=story.hr_b_org,
            name=APPLICANT_AS_ORG_B_HAS_HER["full_name"],
            status=result.status.value,
            keys=result.keys_checked,
        )
    )
    if result.matches:
        table = Table(
            _("holder"), _("strongest matching key"), _("strength"), _("record reference")
        )
        for m in result.by_case():
            table.add_row(m.holder_org, m.kind, m.strength, m.entry_id)
        story.console.print(table)
        kinds = sorted({m.kind for m in result.matches})
        story.console.print(
            _(
                "{matched} of the applicant's keys matched records of this case ({kinds}): her "
                "name as org-b spells it still led to org-a's record."
            ).format(matched=len(result.matches), kinds=", ".join(kinds))
        )
    story.saw(
        _("the server"),
        [
            _(
                "a check by {org} under consent {consent}: exactly {elements} blinded elements "
                "(the applicant's {keys} keys, padded with random ones and shuffled)"
            ).format(
                org=story.hr_b_org,
                consent=story.consent_id,
                elements=story.keys_per_check,
                keys=result.keys_checked,
            ),
            _(
                "then, because some keys were in the filter, a claim (Schnorr proof) for each "
                "of those, and which entries they matched"
            ),
        ],
        [
            _("the applicant's identifiers"),
            _("how many keys the applicant has, or which elements were padding"),
        ],
    )
    story.saw(
        story.hr_b_org,
        [
            _("the signed registry filter, in which it looked its applicant's keys up locally"),
            _("that its applicant matches a record, which member holds it, and how strongly"),
        ],
        [_("the category, finding or sanction (only the holder can disclose them)")],
    )
    story.saw(
        story.focal_a_org,
        [_("nothing yet: it learns of the match only from a disclosure request")],
        [_("that org-b checked anyone at all")],
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
        _(
            "Another applicant, checked the same way: [bold]{status}[/]. The check sent the "
            "same {elements} elements and got an answer of the same shape; none of the "
            "applicant's keys was in the filter, so nothing more was sent: the server heard "
            "nothing about this applicant beyond the consented check itself."
        ).format(status=result.status.value, elements=story.keys_per_check)
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
        _(
            "{org}'s HR asked {holder} for its answer about record {entry}: request "
            "[bold]{request}[/], state {state}, answer due {due}. It attached the applicant's "
            "details as its own file has them, signed with {org}'s Ed25519 key and sealed to "
            "{holder}'s X25519 key, which it pinned on first use (fingerprint {fingerprint}): a "
            "key swapped in the directory would stop it here. Consent checks used: {used} of "
            "{allowed} (the request came from the check's own match, not from a second check)."
        ).format(
            org=story.hr_b_org,
            holder=match.holder_org,
            entry=match.entry_id,
            request=story.request_id,
            state=request.state,
            due=request.due_at.date().isoformat(),
            fingerprint=holder_keys.fingerprint,
            used=consent.checks_used,
            allowed=consent.max_checks,
        ),
        highlight=False,
    )
    story.saw(
        _("the server"),
        [
            _("a request from {org} to {holder} about record {entry}, naming check {check}").format(
                org=story.hr_b_org,
                holder=match.holder_org,
                entry=match.entry_id,
                check=match.check_id,
            ),
            _(
                "that this check, under consent {consent}, had claimed that record with a "
                "verified proof: {org} really matched it"
            ).format(consent=story.consent_id, org=story.hr_b_org),
            _("a sealed blob for the holder (its size in the next step); state: requested"),
        ],
        [
            _("the applicant's name, date of birth or NIK (sealed to org-a)"),
            _("which of the applicant's keys matched"),
        ],
    )
    story.saw(
        story.focal_a_org,
        [_("a new request waiting (it is notified)")],
        [_("the details yet: it opens them in the next step")],
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
    if details.signed:
        signature = _(
            "{requester}'s signature verifies against its pinned key (fingerprint {fingerprint}):"
        )
    else:
        signature = _(
            "{requester}'s signature is MISSING against its pinned key (fingerprint {fingerprint}):"
        )
    story.console.print(
        _(
            "{org}'s focal point lists {count} new request(s); [bold]{request}[/] from "
            "{requester} is about its case {case}. It opens the applicant's details with "
            "{org}'s X25519 private key; {signature}"
        ).format(
            org=story.focal_a_org,
            count=len(incoming),
            request=request.id,
            requester=request.requester_org,
            case=request.case_id,
            signature=signature.format(
                requester=request.requester_org, fingerprint=requester_keys.fingerprint
            ),
        ),
        highlight=False,
    )
    table = Table(_("field"), _("as {org} has it").format(org=details.requester_org))
    for name, value in details.applicant.items():
        table.add_row(name, value)
    story.console.print(table)
    story.console.print(
        _(
            "Comparing them with its own file of the dismissed staff member (same date of "
            "birth, same NIK written with dashes, the name spelt differently), the focal point "
            "acknowledges: state {state}; the deadline does not move."
        ).format(state=acked.state),
        highlight=False,
    )
    story.saw(
        story.focal_a_org,
        [
            _("that {requester} asks about its case {case}").format(
                requester=request.requester_org, case=request.case_id
            ),
            _("the applicant's details as {requester} has them, signed by it").format(
                requester=request.requester_org
            ),
        ],
        [
            _("{requester}'s other applicants, checks or consents").format(
                requester=request.requester_org
            ),
            _("the applicant reference or the position the applicant applied for"),
        ],
    )
    story.saw(
        _("the server"),
        [
            _("a {size}-byte ciphertext, relayed to org-a").format(size=size),
            _("state: requested -> acknowledged"),
        ],
        [_("what the ciphertext holds (every details blob has this size)")],
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
    if answered.sealed_applicant_details is None:
        details = _("the server deleted the applicant's details, now that they have served.")
    else:
        details = _("the server still holds the applicant's details, now that they have served.")
    story.console.print(
        _(
            "{org} answers: confirmed, same person; sexual abuse, found on {found}, dismissal, "
            "a short note and a contact. The answer names this request and both organisations, "
            "is signed with {org}'s Ed25519 key and sealed to {requester}'s X25519 key (pinned, "
            "fingerprint {fingerprint}). State: {state}; {details}"
        ).format(
            org=story.focal_a_org,
            found=story.finding_date.isoformat(),
            requester=answered.requester_org,
            fingerprint=requester_keys.fingerprint,
            state=answered.state,
            details=details,
        ),
        highlight=False,
    )
    story.saw(
        _("the server"),
        [
            _(
                "a {size}-byte ciphertext (every answer has exactly this size: a 'not the same "
                "person' is as long as a confirmation)"
            ).format(size=SEALED_ANSWER_SIZE),
            _("state: acknowledged -> answered, and that an answer was given (yearly figures)"),
        ],
        [
            _("the verdict, category, finding date, sanction, note or contact"),
            _("who signed it (the signature is inside the sealed box)"),
        ],
    )
    story.saw(
        story.focal_a_org,
        [_("what it chose to disclose, and to whom")],
        [
            _("what {requester} will decide about the applicant").format(
                requester=answered.requester_org
            )
        ],
    )


def step_requester_reads(story: Story) -> None:
    assert story.request_id is not None
    stored = story.hr_b.get_disclosure(story.request_id)
    answer = story.hr_b.read_disclosure_answer(story.request_id)
    story.console.print(
        _(
            "{org}'s HR fetches the {size}-byte answer, opens it with {org}'s X25519 private "
            "key and verifies {holder}'s signature against its pinned key, and that it answers "
            "this very request (a forged, replayed or re-keyed answer is refused, never shown):"
        ).format(
            org=story.hr_b_org,
            size=_ciphertext_size(stored.sealed_answer),
            holder=answer.holder_org,
        ),
        highlight=False,
    )
    table = Table(_("answer (signature verified)"), "")
    for name, value in answer.as_dict().items():
        if value is not None and name not in ("request_id", "holder_org_id"):
            table.add_row(name, str(value))
    story.console.print(table)
    outcome = story.hr_b.report_outcome(story.request_id, "not_hired_disclosure")
    closed = story.hr_b.close_disclosure(story.request_id)
    if closed.sealed_answer is None:
        ciphertext = _("The server deleted the answer's ciphertext.")
    else:
        ciphertext = _("The server still holds the answer's ciphertext.")
    story.console.print(
        _(
            "The applicant is not hired; {org} reports the outcome ({outcome}) and closes the "
            "request: state {state} ({reason}). {ciphertext}"
        ).format(
            org=story.hr_b_org,
            outcome=outcome.outcome,
            state=closed.state,
            reason=closed.close_reason,
            ciphertext=ciphertext,
        ),
        highlight=False,
    )
    story.saw(
        story.hr_b_org,
        [
            _("{holder}'s verified answer: {same_person}, {category}, {sanction}").format(
                holder=answer.holder_org,
                same_person=answer.same_person,
                category=answer.category,
                sanction=answer.sanction,
            ),
            _("a contact for follow-up"),
        ],
        [
            _("{holder}'s investigation file, the survivor, anything not written").format(
                holder=answer.holder_org
            )
        ],
    )
    story.saw(
        _("the server"),
        [
            _("state: answered -> closed (read); the ciphertext deleted"),
            _("the outcome {outcome} (the one consequence MDS members publish)").format(
                outcome=outcome.outcome
            ),
        ],
        [_("the verdict or the finding: it never held them in the clear")],
    )


Step = Callable[[Story], None]
#: The steps, titled in English (the catalog's source); `print_step_title` translates them.
STEPS: list[tuple[str, Step]] = [
    (N_("The network's key"), step_key),
    (N_("org-a's focal point registers a concluded case"), step_register),
    (N_("org-b records an applicant's consent"), step_consent),
    (N_("org-b checks the applicant under another spelling"), step_check),
    (N_("org-b's HR asks org-a, the applicant's details sealed to org-a"), step_request),
    (N_("org-a's focal point opens the request and acknowledges it"), step_holder_reads),
    (N_("org-a answers, signed and sealed to org-b"), step_holder_answers),
    (N_("org-b verifies the answer, reports the outcome and closes"), step_requester_reads),
    (N_("A different applicant"), step_no_match),
]


def print_step_title(console: Console, number: int, title: str) -> None:
    """The panel that opens step `number`, in the current language."""
    console.print(
        Panel(_("Step {number}: {title}").format(number=number, title=_(title)), style="bold")
    )


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
            _(
                "no demo credentials for org-a's focal point and org-b's HR in {directory}; "
                "run `refcheck-server init --demo` (or `make run`) first"
            ).format(directory=demo_dir)
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
            print_step_title(st.console, number, title)
            step(story)
