"""`refcheck consent` against a real server: the details the server holds only sealed are shown
opened with the organisation's key, and credentials that cannot seal or open them say so."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

from client_sdk.cli._common import ExitCode
from tests.cli.conftest import Run
from tests.sdk.live import LiveServer

FORM = hashlib.sha256(b"signed declaration, cli consent tests").hexdigest()


def _record(run: Run, ref: str, *, credentials: str | None = None) -> list[str]:
    return [
        *(["--credentials", credentials] if credentials else []),
        "consent",
        "record",
        "--applicant-ref",
        ref,
        "--position-ref",
        "POS-CLI-3",
        "--form-sha256",
        FORM,
        "--self-declared-finding",
    ]


def _credentials_with(live: LiveServer, tmp_path: Path, org_keys_of: str | None) -> str:
    """org-b's HR credentials, holding another organisation's keys (or none)."""
    document = json.loads(live.credentials("org-b-hr").read_text())
    other = None if org_keys_of is None else json.loads(live.credentials(org_keys_of).read_text())
    document["org_keys"] = None if other is None else other["org_keys"]
    path = tmp_path / f"org-b-hr-{org_keys_of}.json"
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    return str(path)


def test_consent_show_opens_the_sealed_details(run: Run) -> None:
    ref = f"CLI-{uuid.uuid4().hex[:8]}"
    receipt = run.json(*_record(run, ref), as_="org-b-hr")
    assert receipt["details"] == "signed" and receipt["lookup_code"]
    assert (receipt["applicant_ref"], receipt["position_ref"]) == (ref, "POS-CLI-3")
    assert (receipt["form_sha256"], receipt["self_declared_finding"]) == (FORM, True)
    assert "sealed_details" not in receipt

    shown = run.json("consent", "show", receipt["id"], as_="org-b-hr")
    assert shown["lookup_code"] is None
    assert {k: v for k, v in shown.items() if k != "lookup_code"} == {
        k: v for k, v in receipt.items() if k != "lookup_code"
    }
    human = run("consent", "show", receipt["id"], as_="org-b-hr")
    assert human.exit_code == 0, human.output
    assert f"applicant {ref}, position POS-CLI-3, self-declared finding yes" in human.output
    assert FORM in human.output


def test_credentials_without_organisation_keys_cannot_record(
    run: Run, live: LiveServer, tmp_path: Path
) -> None:
    keyless = _credentials_with(live, tmp_path, None)
    result = run(*_record(run, "CLI-KEYLESS", credentials=keyless))
    assert result.exit_code == ExitCode.CREDENTIALS, result.output
    assert "org_keys" in result.output


def test_details_sealed_to_another_key_show_as_unreadable(
    run: Run, live: LiveServer, tmp_path: Path
) -> None:
    receipt = run.json(*_record(run, f"CLI-{uuid.uuid4().hex[:8]}"), as_="org-b-hr")
    wrong_keys = _credentials_with(live, tmp_path, "org-a-hr")
    shown = run.json("--credentials", wrong_keys, "consent", "show", receipt["id"])
    assert shown["details"] == "unreadable"
    assert shown["applicant_ref"] is None and shown["form_sha256"] is None
    human = run("--credentials", wrong_keys, "consent", "show", receipt["id"])
    assert "sealed to a key these credentials do not hold" in human.output
    # The consent can still be withdrawn.
    withdrawn = run.json("--credentials", wrong_keys, "consent", "withdraw", receipt["id"])
    assert withdrawn["status"] == "withdrawn"
