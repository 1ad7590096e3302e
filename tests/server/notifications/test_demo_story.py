"""Against a real `refcheck-server serve` configured with SMTP (aiosmtpd on 127.0.0.1): the
`refcheck demo` story delivers the request to org-a's focal point and the answer to org-b's HR,
and `refcheck admin org update --notify-email/--webhook` sets addresses, for the admin and for
a member's own focal point."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from client_sdk.cli import app as refcheck
from tests.sdk.live import _server_command, free_port
from tests.server.notifications.conftest import MAIL_FROM, MailServer

pytestmark = pytest.mark.slow

#: The checkout these tests are in: the server runs from it, whatever is installed.
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def served(tmp_path: Path, mail: MailServer) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path / "data"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "REFCHECK_ENVIRONMENT": "development",
        "REFCHECK_RUN_BACKGROUND_JOBS": "true",
        "REFCHECK_NOTIFICATION_POLL_SECONDS": "0.2",
        "REFCHECK_SMTP_URL": mail.url,
        "REFCHECK_MAIL_FROM": MAIL_FROM,
        "REFCHECK_LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("REFCHECK_DATABASE_URL", None)
    init = subprocess.run(
        [*_server_command(), "init", "--data-dir", str(data_dir), "--demo", "--base-url", base_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [*_server_command(), "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield base_url, data_dir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_for(mail: MailServer, address: str, event: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for received in mail.to(address):
            if received.message["X-Refcheck-Event"] == event:
                return received.text
        time.sleep(0.2)
    raise AssertionError(f"no {event} to {address}: {[m.to for m in mail.messages]}")


def refcheck_as(data_dir: Path, name: str, *args: str) -> tuple[int, str]:
    env = {"REFCHECK_CREDENTIALS": str(data_dir / "demo" / f"{name}.json"), "COLUMNS": "200"}
    result = CliRunner().invoke(refcheck, list(args), env=env)
    return result.exit_code, result.output


def test_the_demo_story_notifies_org_a_of_the_request_and_org_b_of_the_answer(
    served: tuple[str, Path], mail: MailServer
):
    base_url, data_dir = served
    result = CliRunner().invoke(
        refcheck, ["demo", "--data-dir", str(data_dir), "--base-url", base_url]
    )
    assert result.exit_code == 0, result.output
    requested = wait_for(mail, "focal-point@org-a.example", "disclosure.requested")
    answered = wait_for(mail, "hr@org-b.example", "disclosure.answered")
    assert "refcheck disclosures answer" in requested and "[English]" in requested
    assert "refcheck disclosures show" in answered
    # HR of org-a and the focal point of org-b had nothing to do with this request.
    assert not mail.to("hr@org-a.example") and not mail.to("focal-point@org-b.example")
    # The operator's view of the outbox.
    listed = subprocess.run(
        [*_server_command(), "notifications", "list", "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if k != "REFCHECK_DATABASE_URL"},
            "PYTHONPATH": str(ROOT),
        },
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    outbox = json.loads(listed.stdout)
    assert outbox["counts"].get("sent", 0) >= 2
    events = {(i["event"], i["address"], i["status"]) for i in outbox["items"]}
    assert ("disclosure.requested", "focal-point@org-a.example", "sent") in events
    assert ("disclosure.answered", "hr@org-b.example", "sent") in events


def test_admin_and_own_focal_point_set_addresses_with_the_cli(served: tuple[str, Path]):
    _, data_dir = served
    code, out = refcheck_as(
        data_dir,
        "admin",
        "--json",
        "admin",
        "org",
        "update",
        "org-b",
        "--notify-email",
        "focal_point=pseah@org-b.example",
        "--notify-email",
        "all@org-b.example",
        "--webhook",
        "hr_checker=http://127.0.0.1:9/hook?a=b",
    )
    assert code == 0, out
    shown = json.loads(out)
    assert shown["notify_emails"] == [
        {"address": "pseah@org-b.example", "role": "focal_point"},
        {"address": "all@org-b.example", "role": None},
    ]
    assert shown["webhooks"] == [{"url": "http://127.0.0.1:9/hook?a=b", "role": "hr_checker"}]
    code, out = refcheck_as(
        data_dir, "org-a-focal", "admin", "org", "update", "org-a", "--clear-webhooks"
    )
    assert code == 0, out
    assert "no webhook notifications" in out
    # Another organisation's addresses are not the focal point's to set.
    code, out = refcheck_as(
        data_dir, "org-a-focal", "admin", "org", "update", "org-b", "--notify-email", "x@y.org"
    )
    assert code != 0
    code, out = refcheck_as(
        data_dir, "admin", "admin", "org", "update", "org-a", "--notify-email", "not-an-address"
    )
    assert code == 3, out  # refused by the server (422)
