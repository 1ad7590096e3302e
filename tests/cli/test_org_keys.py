"""Organisations' public keys are pinned on first use: a key swapped in the directory (here by
the network admin through `PATCH /v1/orgs/{id}`, as a compromised server would serve it) stops
`refcheck` with exit 6 before anything is sealed to it or believed from it, and
`refcheck keys trust ORG --fingerprint FP` accepts it once confirmed out of band."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import pytest

from client_sdk import Client, org_key_fingerprint
from client_sdk.cli import ExitCode
from client_sdk.keystore import Keystore
from tests.cli.conftest import Run, fresh_person
from tests.cli.test_commands import PersonFile, register
from tests.cli.test_disclosures import consent_receipt
from tests.sdk.live import LiveServer

pytestmark = pytest.mark.slow


@contextmanager
def swapped_keys(live: LiveServer, org_id: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Registers new public keys for `org_id` and puts the old ones back afterwards (the
    server is shared by the session's other tests)."""
    with Client.from_credentials_file(
        live.admin_credentials, pin_file=tmp_path / "admin-pins.json"
    ) as admin:
        before = next(o for o in admin.list_orgs() if o["id"] == org_id)
        public = Keystore.generate().public_keys()
        new = {k: public[k] for k in ("x25519_public_key", "ed25519_public_key")}
        admin.update_org(org_id, **new)
        try:
            yield new
        finally:
            admin.update_org(
                org_id,
                x25519_public_key=before["x25519_public_key"],
                ed25519_public_key=before["ed25519_public_key"],
            )


def test_swapped_key_is_refused_until_trusted_with_its_fingerprint(
    run: Run, live: LiveServer, tmp_path: Path, person_file: PersonFile
) -> None:
    run.env["REFCHECK_PIN_FILE"] = str(tmp_path / "pins.json")  # pins of this test only
    pinned = run.json("keys", "trust", "org-a", as_="org-b-hr")
    assert pinned["status"] == "pinned" and pinned["org"] == "org-a"

    # Before the swap: org-b asks (details sealed to org-a) and org-a answers, signed.
    person = fresh_person()
    register(run, person_file, person)
    first = consent_receipt(run, "APP-K1", max_checks=1)
    asked = run.json(
        "check", "--consent", first["id"], "--person", person_file(person),
        "--request-disclosure", "--attach-details",
        as_="org-b-hr", code=ExitCode.MATCH,
    )  # fmt: skip
    (request,) = asked["disclosure_requests"]
    finding = (date.today() - timedelta(days=10)).isoformat()
    run.json(
        "disclosures", "answer", request["id"], "--same-person", "confirmed",
        "--category", "sexual_harassment", "--finding-date", finding, "--sanction", "dismissal",
        as_="org-a-focal",
    )  # fmt: skip

    second = consent_receipt(run, "APP-K2", max_checks=1)
    with swapped_keys(live, pinned["org_id"], tmp_path) as new:
        new_fingerprint = org_key_fingerprint(
            bytes.fromhex(new["x25519_public_key"]), bytes.fromhex(new["ed25519_public_key"])
        )
        # Reading the answer: refused, the holder's signing key is not the pinned one.
        read = run("disclosures", "show", request["id"], as_="org-b-hr")
        assert read.exit_code == ExitCode.SECURITY, read.output
        assert "security check failed" in read.output and "keys trust org-a" in read.output
        # Sealing details: refused before the check, so the consent's one check is kept.
        sealing = run(
            "--json", "check", "--consent", second["id"], "--person", person_file(person),
            "--request-disclosure", "--attach-details",
            as_="org-b-hr",
        )  # fmt: skip
        assert sealing.exit_code == ExitCode.SECURITY, sealing.output
        error = json.loads(sealing.stdout)["error"]
        assert error["kind"] == "OrgKeyChanged" and error["org"] == "org-a"
        assert error["pinned_fingerprint"] == pinned["fingerprint"]
        assert error["directory_fingerprint"] == new_fingerprint
        assert run.json("consent", "show", second["id"], as_="org-b-hr")["checks_used"] == 0

        # Looking at the change is not accepting it; a wrong fingerprint pins nothing.
        assert run("keys", "trust", "org-a", as_="org-b-hr").exit_code == ExitCode.SECURITY
        wrong = run(
            "keys", "trust", "org-a", "--fingerprint", pinned["fingerprint"], as_="org-b-hr"
        )
        assert wrong.exit_code == ExitCode.SECURITY
        assert run("keys", "trust", "org-a", as_="org-b-hr").exit_code == ExitCode.SECURITY

        # Confirmed out of band (read out in capitals with spaces): accepted and pinned.
        trusted = run.json(
            "keys", "trust", "org-a", "--fingerprint",
            new_fingerprint.upper().replace("-", " "),
            as_="org-b-hr",
        )  # fmt: skip
        assert trusted["status"] == "trusted" and trusted["fingerprint"] == new_fingerprint
        assert run.json("keys", "trust", "org-a", as_="org-b-hr")["status"] == "pinned"
        resealed = run.json(
            "check", "--consent", second["id"], "--person", person_file(person),
            "--request-disclosure", "--attach-details",
            as_="org-b-hr", code=ExitCode.MATCH,
        )  # fmt: skip
        assert len(resealed["disclosure_requests"]) == 1
        # The answer signed with the old key does not verify against the new one.
        stale = run("disclosures", "show", request["id"], as_="org-b-hr")
        assert stale.exit_code == ExitCode.SECURITY and "not authentic" in stale.output


def test_keys_trust_of_an_unknown_organisation_is_a_usage_error(run: Run, tmp_path: Path) -> None:
    run.env["REFCHECK_PIN_FILE"] = str(tmp_path / "pins.json")
    result = run("keys", "trust", "no-such-org", as_="org-b-hr")
    assert result.exit_code == ExitCode.USAGE
    assert "in the directory" in result.output
