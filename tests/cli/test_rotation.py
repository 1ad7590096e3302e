"""`refcheck` across an OPRF key rotation of a running server (`refcheck-server keys rotate`):
`case verify-live` verifies the case's re-issued values, keeps them in place of the old ones
and finds them published; a check follows the new key and matches. A server of this test's own,
since a rotation changes every case's values and the session's server is shared."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from client_sdk.cli import ExitCode
from tests.cli.conftest import Run, fresh_person
from tests.cli.test_commands import PersonFile, consent, register
from tests.sdk.live import LiveServer, _server_command, running_server


@pytest.fixture
def own_live(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(tmp_path / "server") as server:
        yield server


def test_verify_live_keeps_the_reissued_values_after_a_rotation_and_checks_still_match(
    own_live: LiveServer, tmp_path: Path, person_file: PersonFile
) -> None:
    run = Run(own_live, {"REFCHECK_PIN_FILE": str(tmp_path / "pins.json")})
    person = fresh_person()
    case_id = register(run, person_file, person)
    kept_file = tmp_path / "pins.cases.json"

    def kept() -> dict[str, object]:
        servers = json.loads(kept_file.read_text())["servers"][own_live.base_url]
        ((_org, cases),) = servers.items()
        entry: dict[str, object] = cases[case_id]
        return entry

    before = kept()
    rotated = subprocess.run(
        [*_server_command(), "keys", "rotate", "--data-dir", str(own_live.data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rotated.returncode == 0, rotated.stderr

    checked = run.json("case", "verify-live", "--case", case_id, as_="org-a-focal")
    (item,) = checked["items"]
    assert item["status"] == "present" and item["missing"] == 0
    after = kept()
    assert item["reissued_key_id"] == after["key_id"] != before["key_id"]
    assert after["key_seq"] == before["key_seq"] + 1  # type: ignore[operator]
    assert set(after["filter_values"]).isdisjoint(before["filter_values"])  # type: ignore[call-overload]
    # The next run compares the kept values as they are.
    again = run.json("case", "verify-live", "--case", case_id, as_="org-a-focal")
    assert again["items"][0]["status"] == "present"
    assert again["items"][0]["reissued_key_id"] is None

    # HR follows the rotation (signed announcement) and still finds the case.
    consent_id = consent(run, "APP-ROT")
    result = run("check", "--consent", consent_id, "--person", person_file(person), as_="org-b-hr")
    assert result.exit_code == ExitCode.MATCH, result.output
