"""Complete commands for the secretariat, auditors and focal points (issue 14, item 5), against
a real server: MoU renewal and its warnings, deactivating a person, the audit trail listed and
verified, the retention overview, shortening a case's retention, exporting a verified answer,
and `refcheck demo` finding the server in the credentials."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from client_sdk.cli import ExitCode
from tests.cli.conftest import Run, fresh_person
from tests.cli.test_commands import PersonFile, register
from tests.cli.test_disclosures import consent_receipt
from tests.sdk.live import LiveServer

pytestmark = pytest.mark.slow


def _org(run: Run, short_name: str, *mou: str) -> dict[str, str]:
    added: dict[str, str] = run.json(
        "admin", "org", "add", "--short-name", short_name, "--legal-name", "Yayasan Uji",
        "--org-type", "national_ngo", *mou,
        as_="admin",
    )  # fmt: skip
    return added


def test_expired_mou_is_shown_and_renewed_and_an_open_ended_one_is_warned_about(
    run: Run, tmp_path: Path
) -> None:
    today = date.today()
    _org(
        run, "org-expired", "--mou-version", "v1",
        "--mou-signed-on", (today - timedelta(days=800)).isoformat(),
        "--mou-expires-on", (today - timedelta(days=35)).isoformat(),
    )  # fmt: skip
    _org(run, "org-open", "--mou-version", "v1", "--mou-signed-on", today.isoformat())

    listed = run.json("admin", "org", "list", as_="admin")
    states = {o["short_name"]: o["mou_state"] for o in listed["items"]}
    assert states["org-expired"] == "expired" and states["org-open"] == "no_expiry"
    assert states["org-a"] == "in_force"
    assert any("org-expired" in w and "expired" in w for w in listed["warnings"])
    assert any("org-open" in w and "without an expiry date" in w for w in listed["warnings"])
    people = run("admin", "org", "list", as_="admin")
    assert people.exit_code == 0
    assert "EXPIRED" in people.stdout and "warning:" in people.output

    renewed = run.json(
        "admin", "org", "update", "org-expired",
        "--mou-signed-on", today.isoformat(),
        "--mou-expires-on", (today + timedelta(days=730)).isoformat(),
        as_="admin",
    )  # fmt: skip
    assert renewed["mou_expires_on"] == (today + timedelta(days=730)).isoformat()
    after = run.json("admin", "org", "list", as_="admin")
    assert {o["short_name"]: o["mou_state"] for o in after["items"]}["org-expired"] == "in_force"


def test_a_person_is_deactivated(run: Run, tmp_path: Path) -> None:
    keystore = tmp_path / "leaver.json"
    assert (
        run("keys", "init", "--out", str(keystore), "--auth-only", "--no-passphrase").exit_code == 0
    )
    added = run.json(
        "admin", "principal", "add", "org-b", "--name", "Leaver", "--role", "hr_checker",
        "--keys", str(keystore),
        as_="admin",
    )  # fmt: skip
    gone = run.json("admin", "principal", "deactivate", added["id"], as_="admin")
    assert gone["id"] == added["id"] and gone["active"] is False
    listed = run.json("admin", "principal", "list", "org-b", as_="admin")
    assert {p["id"]: p["active"] for p in listed["items"]}[added["id"]] is False


def test_auditor_lists_and_verifies_the_audit_trail(run: Run, tmp_path: Path) -> None:
    run.env["REFCHECK_PIN_FILE"] = str(tmp_path / "auditor-pins.json")
    listed = run.json("audit", "list", "--limit", "5", as_="auditor")
    assert 1 <= len(listed["items"]) <= 5
    assert {"seq", "action", "at"} <= set(listed["items"][0])
    verified = run.json("audit", "verify", as_="auditor")
    assert verified["tree_size"] >= 1
    assert verified["trail_entries_verified"] >= 1
    assert verified["trail_entries"] == (
        verified["trail_entries_verified"] + verified["trail_entries_not_yet_sealed"]
    )
    refused = run("audit", "list", as_="org-b-hr")
    assert refused.exit_code == ExitCode.REFUSED


def test_retention_overview_and_a_shortened_case(run: Run, person_file: PersonFile) -> None:
    case_id = register(run, person_file, fresh_person())
    before = run.json("admin", "retention", as_="admin")
    shorter = date.today() + timedelta(days=400)
    changed = run.json(
        "case", "retention", case_id, "--until", shorter.isoformat(), as_="org-a-focal"
    )
    assert changed["retention_until"] == shorter.isoformat()
    after = run.json("admin", "retention", as_="admin")
    month = shorter.strftime("%Y-%m")
    count = {m["month"]: m["live_cases"] for m in after["months"]}
    was = {m["month"]: m["live_cases"] for m in before["months"]}
    assert count[month] == was.get(month, 0) + 1
    assert after["live_cases"] == before["live_cases"]

    longer = run(
        "case", "retention", case_id, "--until", (shorter + timedelta(days=30)).isoformat(),
        as_="org-a-focal",
    )  # fmt: skip
    assert longer.exit_code == ExitCode.USAGE and "shortens" in longer.output
    bad = run("case", "retention", case_id, "--until", "2030-02-30", as_="org-a-focal")
    assert bad.exit_code == ExitCode.USAGE and "until: not a real calendar date" in bad.output


def test_the_verified_answer_is_exported_as_json_and_pdf(
    run: Run, tmp_path: Path, person_file: PersonFile
) -> None:
    run.env["REFCHECK_PIN_FILE"] = str(tmp_path / "pins.json")
    person = fresh_person()
    register(run, person_file, person)
    receipt = consent_receipt(run, "APP-EXPORT", max_checks=1)
    asked = run.json(
        "check", "--consent", receipt["id"], "--person", person_file(person),
        "--request-disclosure",
        as_="org-b-hr", code=ExitCode.MATCH,
    )  # fmt: skip
    (request,) = asked["disclosure_requests"]
    early = run("disclosures", "export", request["id"], "--out", str(tmp_path / "a.json"),
                as_="org-b-hr")  # fmt: skip
    assert early.exit_code == ExitCode.USAGE and "holds no answer" in early.output
    finding = (date.today() - timedelta(days=10)).isoformat()
    run.json(
        "disclosures", "answer", request["id"], "--same-person", "confirmed",
        "--category", "sexual_harassment", "--finding-date", finding, "--sanction", "dismissal",
        as_="org-a-focal",
    )  # fmt: skip

    out = tmp_path / "answer.json"
    done = run("disclosures", "export", request["id"], "--out", str(out), as_="org-b-hr")
    assert done.exit_code == 0, done.output
    record = json.loads(out.read_text())
    assert record["answer"]["same_person"] == "confirmed"
    assert record["answer"]["finding_date"] == finding
    assert record["verification"]["signature"] == "verified"
    assert record["verification"]["holder_org"] == "org-a"
    assert len(record["verification"]["holder_key_fingerprint"]) > 10
    assert len(bytes.fromhex(record["sealed_answer"]["hex"])) > 0
    assert out.stat().st_mode & 0o777 == 0o600

    pdf = tmp_path / "answer.pdf"
    done = run("disclosures", "export", request["id"], "--out", str(pdf), as_="org-b-hr")
    assert done.exit_code == 0, done.output
    assert pdf.read_bytes().startswith(b"%PDF")
    wrong = run("disclosures", "export", request["id"], "--out", str(tmp_path / "a.txt"),
                as_="org-b-hr")  # fmt: skip
    assert wrong.exit_code == ExitCode.USAGE


def test_demo_takes_the_server_from_the_credentials(run: Run, live: LiveServer) -> None:
    result = run("demo", "--data-dir", str(live.data_dir))
    assert result.exit_code == 0, result.output
    assert "Result: match" in result.stdout
