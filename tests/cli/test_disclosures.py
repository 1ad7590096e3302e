"""`refcheck disclosures`, `refcheck lookup` and `refcheck stats` against a real server: the
requester asks, the holder reads the applicant's details and answers, the requester opens and
verifies the answer; the lookup code; the MDS figures as a table and as CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest

from client_sdk.cli import ExitCode
from tests.cli.conftest import Run, fresh_person
from tests.cli.test_commands import FORM, PersonFile, register

pytestmark = pytest.mark.slow


def consent_receipt(run: Run, ref: str, *, max_checks: int = 2) -> dict[str, str]:
    receipt: dict[str, str] = run.json(
        "consent",
        "record",
        "--applicant-ref",
        ref,
        "--position-ref",
        "POS-D",
        "--form-sha256",
        FORM,
        "--no-self-declared-finding",
        "--max-checks",
        str(max_checks),
        as_="org-b-hr",
    )
    return receipt


def test_request_answer_and_read_through_the_cli(run: Run, person_file: PersonFile) -> None:
    person = fresh_person()
    register(run, person_file, person)
    receipt = consent_receipt(run, "APP-D1")

    asked = run.json(
        "disclosures",
        "request",
        "--consent",
        receipt["id"],
        "--person",
        person_file(person),
        as_="org-b-hr",
    )
    (request,) = asked["items"]
    assert request["holder_org"] == "org-a" and request["state"] == "requested"
    # This path checks again: it says so, and the consent shows the check spent.
    assert asked["checks_used"] == 1 and asked["max_checks"] == 2 and asked["check_id"]
    request_id = request["id"]

    incoming = run.json("disclosures", "list", "--state", "requested", as_="org-a-focal")
    assert request_id in {i["id"] for i in incoming["items"]}
    shown = run.json("disclosures", "show", request_id, as_="org-a-focal")
    assert shown["applicant_details"]["signed"] is True
    assert shown["applicant_details"]["full_name"] == person["full_name"]
    human = run("disclosures", "show", request_id, as_="org-a-focal")
    assert human.exit_code == 0 and "signed by the requester" in human.stdout

    finding = (date.today() - timedelta(days=10)).isoformat()
    answered = run.json(
        "disclosures",
        "answer",
        request_id,
        "--same-person",
        "confirmed",
        "--category",
        "sexual_harassment",
        "--finding-date",
        finding,
        "--sanction",
        "dismissal",
        "--text",
        "Dismissed after investigation.",
        as_="org-a-focal",
    )
    assert answered["state"] == "answered"
    again = run(
        "disclosures",
        "answer",
        request_id,
        "--same-person",
        "not_same_person",
        as_="org-a-focal",
    )
    assert again.exit_code == ExitCode.REFUSED

    read = run.json("disclosures", "show", request_id, as_="org-b-hr")
    assert read["answer"]["same_person"] == "confirmed"
    assert read["answer"]["finding_date"] == finding
    assert "sealed_answer" not in read
    assert run.json("disclosures", "close", request_id, as_="org-b-hr")["state"] == "closed"
    reported = run.json(
        "disclosures", "outcome", request_id, "not_hired_disclosure", as_="org-b-hr"
    )
    assert reported["outcome"] == "not_hired_disclosure"

    found = run.json("lookup", receipt["lookup_code"], as_="org-b-hr")
    assert [c["org"] for c in found["checks"]] == ["org-b"]
    assert found["disclosure_requests"][0]["holder_org"] == "org-a"
    withdrawn = run.json("lookup", receipt["lookup_code"], "--withdraw", as_="admin")
    assert withdrawn["status"] == "withdrawn"


def test_request_without_a_match_asks_nothing(run: Run, person_file: PersonFile) -> None:
    receipt = consent_receipt(run, "APP-D2")
    result = run.json(
        "disclosures",
        "request",
        "--consent",
        receipt["id"],
        "--person",
        person_file(fresh_person()),
        as_="org-b-hr",
    )
    assert result["items"] == [] and result["checks_used"] == 1
    human = run(
        "disclosures",
        "request",
        "--consent",
        receipt["id"],
        "--person",
        person_file(fresh_person()),
        as_="org-b-hr",
    )
    assert human.exit_code == 0, human.output
    assert "No match" in human.stdout and "2 of 2 check(s)" in human.stdout
    bad = run(
        "disclosures",
        "outcome",
        "00000000-0000-4000-8000-000000000000",
        "maybe",
        as_="org-b-hr",
    )
    assert bad.exit_code == ExitCode.USAGE


def test_stats_print_mds_figures_and_export_csv(run: Run) -> None:
    year = str(date.today().year)
    table = run("stats", "--year", year, as_="admin")
    assert table.exit_code == 0, table.output
    assert "MDS figures" in table.stdout and "network" in table.stdout
    exported = run("stats", "--year", year, "--csv", as_="admin")
    assert exported.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert rows[-1]["scope"] == "network"
    assert {r["org"] for r in rows[:-1]} >= {"org-a", "org-b"}
    assert set(rows[0]) == {
        "year",
        "scope",
        "org",
        "recruitments",
        "requests_made",
        "responses_received",
        "responses_given",
        "applicants_rejected",
        "overdue_requests",
    }
    network = rows[-1]
    assert sum(int(r["recruitments"]) for r in rows[:-1]) == int(network["recruitments"])
    member = list(csv.DictReader(io.StringIO(run("stats", "--csv", as_="org-b-hr").stdout)))
    assert [r["org"] for r in member[:-1]] == ["org-b"] and member[-1]["scope"] == "total"


def test_check_with_request_disclosure_asks_the_holder_without_a_second_check(
    run: Run, person_file: PersonFile
) -> None:
    person = fresh_person()
    case_id = register(run, person_file, person)
    receipt = consent_receipt(run, "APP-D3", max_checks=2)

    checked = run.json(
        "check",
        "--consent",
        receipt["id"],
        "--person",
        person_file(person),
        "--request-disclosure",
        "--attach-details",  # accepted from older scripts; details are always sealed
        as_="org-b-hr",
        code=ExitCode.MATCH,
    )
    assert checked["status"] == "match"
    (request,) = checked["disclosure_requests"]
    assert request["holder_org"] == "org-a" and request["case_id"] == case_id
    assert request["state"] == "requested" and request["applicant_details_attached"] is True
    assert "disclosure_errors" not in checked
    # One check spent for the check and the request together.
    consent = run.json("consent", "show", receipt["id"], as_="org-b-hr")
    assert consent["checks_used"] == 1

    # The holder sees the request, with the details sealed to it and signed by org-b.
    shown = run.json("disclosures", "show", request["id"], as_="org-a-focal")
    assert shown["applicant_details"]["signed"] is True
    assert shown["applicant_details"]["national_id"] == person["national_id"]


def test_check_with_request_disclosure_in_human_output(run: Run, person_file: PersonFile) -> None:
    person = fresh_person()
    register(run, person_file, person)
    receipt = consent_receipt(run, "APP-D4", max_checks=1)
    result = run(
        "check",
        "--consent",
        receipt["id"],
        "--person",
        person_file(person),
        "--request-disclosure",
        as_="org-b-hr",
    )
    assert result.exit_code == ExitCode.MATCH, result.output
    text = " ".join(result.stdout.split())  # rich wraps lines at the terminal's width
    assert "asking each holder" in text and "with the applicant's details sealed to it" in text
    (request,) = run.json("disclosures", "list", "--role", "requester", as_="org-b-hr")["items"][:1]
    assert f"Disclosure request {request['id']} sent to org-a" in text
    assert request["consent_id"] == receipt["id"]
    # The details are always sealed to the holder (protocol v2), with or without the old flag.
    shown = run.json("disclosures", "show", request["id"], as_="org-a-focal")
    assert shown["applicant_details"]["signed"] is True
    # A single-check consent was enough for check and request.
    assert run.json("consent", "show", receipt["id"], as_="org-b-hr")["checks_used"] == 1


def test_check_with_request_disclosure_and_no_match_asks_nothing(
    run: Run, person_file: PersonFile
) -> None:
    receipt = consent_receipt(run, "APP-D5")
    clean = run.json(
        "check",
        "--consent",
        receipt["id"],
        "--person",
        person_file(fresh_person()),
        "--request-disclosure",
        as_="org-b-hr",
    )
    assert clean["status"] == "no_match" and clean["disclosure_requests"] == []
    lone = run(
        "check",
        "--consent",
        receipt["id"],
        "--person",
        person_file(fresh_person()),
        "--attach-details",
        as_="org-b-hr",
    )
    assert lone.exit_code == ExitCode.USAGE and "--request-disclosure" in lone.output
    assert run.json("consent", "show", receipt["id"], as_="org-b-hr")["checks_used"] == 1
