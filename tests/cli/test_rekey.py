"""`refcheck case rekey --from FILE` (issue 16): a focal point derives its cases' keys again
from the records it holds; the server swaps each case's entries in one transaction. Against the
session's live server: the case then matches the corrected record and not the old one."""

from __future__ import annotations

import json
from pathlib import Path

from client_sdk.cli import ExitCode
from tests.cli.conftest import Run, fresh_person
from tests.cli.test_commands import PersonFile, consent, register


def test_rekey_swaps_a_cases_keys_for_the_records_given_again(
    run: Run, tmp_path: Path, person_file: PersonFile
) -> None:
    wrong, right = fresh_person(), fresh_person()
    case_id = register(run, person_file, wrong)
    records = tmp_path / "records.json"
    records.write_text(json.dumps([{"case_id": case_id, **right}]))
    out = run.json("case", "rekey", "--from", str(records), as_="org-a-focal")
    assert out["rekeyed"] == [case_id] and out["failed"] == []
    # The kept values are the new ones, and they are published.
    live = run.json("case", "verify-live", "--case", case_id, as_="org-a-focal")
    assert live["items"][0]["status"] == "present"

    found = run(
        "check",
        "--consent",
        consent(run, "APP-RK1"),
        "--person",
        person_file(right),
        as_="org-b-hr",
    )
    assert found.exit_code == ExitCode.MATCH, found.output
    gone = run(
        "check",
        "--consent",
        consent(run, "APP-RK2"),
        "--person",
        person_file(wrong),
        as_="org-b-hr",
    )
    assert gone.exit_code == ExitCode.OK, gone.output


def test_rekey_refuses_a_malformed_file_before_anything_is_sent_and_reports_a_foreign_case(
    run: Run, tmp_path: Path, person_file: PersonFile
) -> None:
    records = tmp_path / "records.json"
    records.write_text(json.dumps([{"case_id": "x", "full_nam": "typo"}]))
    bad = run("case", "rekey", "--from", str(records), as_="org-a-focal")
    assert bad.exit_code == ExitCode.USAGE and "unknown person fields" in bad.output
    case_id = register(run, person_file, fresh_person())
    records.write_text(json.dumps([{"case_id": case_id, **fresh_person()}]))
    foreign = run("case", "rekey", "--from", str(records), as_="org-b-focal")
    assert foreign.exit_code == ExitCode.REFUSED
