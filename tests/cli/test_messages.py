"""Messages people understand (issue 14, item 6): field-level validation errors shown as
`field: message`, and a connection failure that names the server and what to check."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from client_sdk.cli import ExitCode
from client_sdk.errors import InvalidRequest, error_from_response
from tests.cli.conftest import Run
from tests.sdk.live import LiveServer


def test_the_sdk_shows_each_field_with_its_message() -> None:
    exc = error_from_response(
        422,
        {
            "type": "urn:refcheck:problem:invalid-request",
            "title": "The request is not valid",
            "status": 422,
            "detail": "One or more fields failed validation",
            "errors": [
                {"field": "date_of_birth", "message": "not a real calendar date", "loc": []},
                {"field": "short_name", "message": "required"},
            ],
        },
    )
    assert isinstance(exc, InvalidRequest)
    assert exc.field_errors == [
        ("date_of_birth", "not a real calendar date"),
        ("short_name", "required"),
    ]
    assert str(exc).startswith("date_of_birth: not a real calendar date; short_name: required")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_connection_failure_names_the_server_and_what_to_check(
    run: Run, live: LiveServer, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    run.env["REFCHECK_PIN_FILE"] = str(tmp_path / "pins.json")
    result = run("--base-url", url, "whoami", as_="org-b-hr")
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    text = " ".join(result.output.split())
    assert f"cannot reach the server at {url}" in text
    assert "check the address (--base-url" in text and "server is running" in text


@pytest.mark.slow
def test_the_cli_shows_a_server_validation_error_by_field(run: Run) -> None:
    result = run("admin", "org", "update", "org-a", "--mou-expires-on", "2027-02-30", as_="admin")
    assert result.exit_code == ExitCode.REFUSED, result.output
    assert "mou_expires_on: not a real calendar date" in " ".join(result.output.split())
