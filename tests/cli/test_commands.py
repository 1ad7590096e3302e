"""`refcheck` against a real server: onboarding, consent, check, cases, stats, and the exit code
of every kind of outcome."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest

from client_sdk.cli import ExitCode
from tests.cli.conftest import Run, fresh_person, register_case
from tests.sdk.live import LiveServer

pytestmark = pytest.mark.slow

FORM = hashlib.sha256(b"signed form").hexdigest()
PersonFile = Callable[[dict[str, str]], str]


def register(run: Run, person_file: PersonFile, person: dict[str, str]) -> str:
    case = register_case(run, person_file(person))
    case_id: str = case["case_id"]
    return case_id


def consent(run: Run, ref: str = "APP-1", *, max_checks: int = 1) -> str:
    receipt = run.json(
        "consent",
        "record",
        "--applicant-ref",
        ref,
        "--position-ref",
        "POS-1",
        "--form-sha256",
        FORM,
        "--no-self-declared-finding",
        "--max-checks",
        str(max_checks),
        as_="org-b-hr",
    )
    assert receipt["status"] == "active" and receipt["lookup_code"]
    consent_id: str = receipt["id"]
    return consent_id


def test_check_exit_codes_say_match_and_no_match(run: Run, person_file: PersonFile) -> None:
    person = fresh_person()
    case_id = register(run, person_file, person)

    same_nik_other_spelling = dict(person, full_name=person["full_name"].upper() + "H")
    matched = run(
        "--json",
        "check",
        "--consent",
        consent(run),
        "--person",
        person_file(same_nik_other_spelling),
        as_="org-b-hr",
    )
    assert matched.exit_code == ExitCode.MATCH, matched.output
    body = json.loads(matched.stdout)
    assert body["status"] == "match"
    assert {m["case_id"] for m in body["matches"]} == {case_id}
    assert {m["holder_org"] for m in body["matches"]} == {"org-a"}
    assert "match_proof" not in matched.stdout

    clean = run(
        "check",
        "--consent",
        consent(run, "APP-2"),
        "--person",
        person_file(fresh_person()),
        as_="org-b-hr",
    )
    assert clean.exit_code == ExitCode.OK, clean.output
    assert "no_match" in clean.stdout


def test_check_from_flags_in_human_output(run: Run, person_file: PersonFile) -> None:
    person = fresh_person()
    register(run, person_file, person)
    result = run(
        "check",
        "--consent",
        consent(run),
        "--full-name",
        person["full_name"],
        "--dob",
        person["date_of_birth"],
        "--nationality",
        "ID",
        "--national-id",
        person["national_id"],
        as_="org-b-hr",
    )
    assert result.exit_code == ExitCode.MATCH
    assert "org-a" in result.stdout and "national_id" in result.stdout


def test_used_up_consent_is_refused_with_exit_3(run: Run, person_file: PersonFile) -> None:
    consent_id = consent(run)
    path = person_file(fresh_person())
    assert run("check", "--consent", consent_id, "--person", path, as_="org-b-hr").exit_code == 0
    again = run("--json", "check", "--consent", consent_id, "--person", path, as_="org-b-hr")
    assert again.exit_code == ExitCode.REFUSED
    assert json.loads(again.stdout)["error"]["type"].endswith("consent-exhausted")


def test_withdrawn_consent_cannot_be_used(run: Run, person_file: PersonFile) -> None:
    consent_id = consent(run)
    assert run.json("consent", "withdraw", consent_id, as_="org-b-hr")["status"] == "withdrawn"
    assert run.json("consent", "show", consent_id, as_="org-b-hr")["status"] == "withdrawn"
    result = run(
        "check", "--consent", consent_id, "--person", person_file(fresh_person()), as_="org-b-hr"
    )
    assert result.exit_code == ExitCode.REFUSED
    assert "consent-withdrawn" in result.output


def test_case_list_and_withdraw(run: Run, person_file: PersonFile) -> None:
    person = fresh_person()
    case_id = register(run, person_file, person)
    listed = run.json("case", "list", "--status", "active", as_="org-a-focal")
    assert case_id in {c["id"] for c in listed["items"]}
    human = run("case", "list", as_="org-a-focal")
    assert human.exit_code == 0 and "dismissal" in human.stdout
    withdrawn = run.json(
        "case", "withdraw", case_id, "--reason", "registered_in_error", as_="org-a-focal"
    )
    assert withdrawn["status"] == "withdrawn"
    result = run(
        "check", "--consent", consent(run), "--person", person_file(person), as_="org-b-hr"
    )
    assert result.exit_code == ExitCode.OK


def test_case_verify_live_finds_every_kept_value_published(
    run: Run, person_file: PersonFile, live: LiveServer
) -> None:
    case_id = register(run, person_file, fresh_person())
    kept = json.loads((live.data_dir / "cli-pins.cases.json").read_text())
    values = kept["servers"][live.base_url]
    ((_org, cases),) = values.items()
    assert len(cases[case_id]["filter_values"]) == 32  # the shipped keys_per_check
    checked = run.json("case", "verify-live", "--case", case_id, as_="org-a-focal")
    (item,) = checked["items"]
    assert item == {
        "case_id": case_id,
        "status": "present",
        "missing": 0,
        "values": 32,
        "filter_revision": checked["filter_revision"],
        "reissued_key_id": None,
    }
    withdrawn = run.json(
        "case", "withdraw", case_id, "--reason", "registered_in_error", as_="org-a-focal"
    )
    assert withdrawn["status"] == "withdrawn"
    after = run.json("case", "verify-live", "--case", case_id, as_="org-a-focal")
    assert after["items"][0]["status"] == "not_live"
    # Nothing kept for another organisation's focal point: said, not silently "all fine".
    other = run("case", "verify-live", as_="org-b-focal")
    assert other.exit_code == ExitCode.USAGE and "no registration" in other.output


def test_hr_may_not_register_cases(run: Run, person_file: PersonFile) -> None:
    result = run("case", "list", as_="org-b-hr")
    assert result.exit_code == ExitCode.REFUSED and "permission-denied" in result.output


def test_onboarding_a_new_member_from_keys_to_first_check(
    run: Run, live: LiveServer, tmp_path: Path, person_file: PersonFile
) -> None:
    run.env["REFCHECK_PASSPHRASE"] = "org-c passphrase"
    keys = tmp_path / "org-c-keys.json"
    public = run.json("keys", "init", "--out", str(keys))
    short = f"org-c-{public['auth_public_key'][:6]}"
    today = date.today()
    org = run.json(
        "admin", "org", "add",
        "--short-name", short,
        "--legal-name", "Yayasan Contoh Indonesia",
        "--org-type", "national_ngo",
        "--keys", str(keys),
        "--status", "active",
        "--mou-version", "MoU-2026-01",
        "--mou-sha256", hashlib.sha256(b"mou").hexdigest(),
        "--mou-signed-on", (today - timedelta(days=1)).isoformat(),
        "--data-sharing-agreement",
        "--legal-basis", "legitimate_interests",
        "--may-check",
        as_="admin",
    )  # fmt: skip
    assert org["x25519_public_key"] == public["x25519_public_key"]
    principal = run.json(
        "admin", "principal", "add", short,
        "--name", "org-c HR system", "--kind", "service", "--role", "hr_checker",
        "--keys", str(keys),
        as_="admin",
    )  # fmt: skip
    # The enrolment the admin hands out: the network and its signing key's fingerprint, as
    # the admin's own credentials (the secretariat's) name them.
    admin_creds = json.loads(live.credentials("admin").read_text())
    assert principal["network_id"] == admin_creds["network_id"]
    fingerprint = principal["network_signing_key_sha256"]
    assert fingerprint == admin_creds["network_signing_key_sha256"]
    assert f"--network-fingerprint {fingerprint}" in principal["login_command"]
    creds = tmp_path / "org-c.json"
    base = ["login", "--keys", str(keys), "--client-id", principal["id"]]
    base += ["--server", live.base_url, "--out", str(creds)]
    # No fingerprint: nothing to pin the network by, so no credentials file either.
    bare = run(*base)
    assert bare.exit_code == ExitCode.CREDENTIALS, bare.output
    assert "--network-fingerprint" in bare.output and not creds.exists()
    # A fingerprint the server's key does not have (a typo, or another server): exit 6.
    wrong = run(*base, "--network-fingerprint", "ab" * 32)
    assert wrong.exit_code == ExitCode.SECURITY, wrong.output
    assert not creds.exists()
    other_network = run(*base, "--network-fingerprint", fingerprint, "--network-id", "elsewhere")
    assert other_network.exit_code == ExitCode.SECURITY, other_network.output
    assert not creds.exists()
    login = run.json(
        "login", "--keys", str(keys), "--client-id", principal["id"],
        "--server", live.base_url, "--out", str(creds),
        # As read out over the phone: grouped, upper case.
        "--network-fingerprint", " ".join(
            fingerprint[i : i + 8] for i in range(0, 64, 8)
        ).upper(),
    )  # fmt: skip
    assert login["org"] == short and login["roles"] == ["hr_checker"]
    written = json.loads(creds.read_text())
    assert written["network_id"] == admin_creds["network_id"]
    assert written["network_signing_key_sha256"] == fingerprint
    assert creds.stat().st_mode & 0o777 == 0o600
    assert "sealed_secrets" in creds.read_text()  # the passphrase protects the credentials too

    me = run.json("--credentials", str(creds), "whoami")
    assert me["org_short_name"] == short
    receipt = run.json(
        "--credentials", str(creds), "consent", "record",
        "--applicant-ref", "C-1", "--position-ref", "P-1", "--form-sha256", FORM,
        "--no-self-declared-finding", "--max-checks", "2",
    )  # fmt: skip
    path = person_file(fresh_person())
    ok = run("--credentials", str(creds), "check", "--consent", receipt["id"], "--person", path)
    assert ok.exit_code == ExitCode.OK, ok.output

    assert short in {
        o["short_name"] for o in run.json("admin", "org", "list", as_="admin")["items"]
    }
    assert run.json("admin", "org", "suspend", short, as_="admin")["status"] == "suspended"
    refused = run(
        "--credentials", str(creds), "check", "--consent", receipt["id"], "--person", path
    )
    assert refused.exit_code == ExitCode.REFUSED, refused.output


def test_stats_for_a_member(run: Run) -> None:
    figures = run.json("stats", as_="org-b-hr")
    assert isinstance(figures, dict)
    assert run("stats", as_="org-b-hr").exit_code == 0


def test_unreachable_server_is_exit_4(run: Run, person_file: PersonFile) -> None:
    result = run("--base-url", "http://127.0.0.1:9", "whoami", as_="org-b-hr")
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output


def test_a_server_showing_another_signing_key_is_exit_6(
    run: Run, tmp_path: Path, live: LiveServer
) -> None:
    consent_id = consent(run)
    # Credentials naming another network signing key than the server shows (as a server
    # impersonating the network would): refused before anything about the applicant is sent.
    document = json.loads(live.credentials("org-b-hr").read_text())
    assert document["network_signing_key_sha256"]
    document["network_signing_key_sha256"] = "ab" * 32
    creds = tmp_path / "org-b-hr.json"
    creds.write_text(json.dumps(document))
    creds.chmod(0o600)
    run.env["REFCHECK_CREDENTIALS"] = str(creds)
    run.env["REFCHECK_PIN_FILE"] = str(tmp_path / "pins.json")
    result = run(
        "check",
        "--consent",
        consent_id,
        "--full-name",
        "Joko Widodo Santoso",
        "--dob",
        "1970-01-01",
    )
    assert result.exit_code == ExitCode.SECURITY
    assert "security check failed" in result.output and "credentials file" in result.output
