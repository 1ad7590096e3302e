"""`refcheck demo` tells the whole story against a real server set up by `init --demo`: the
check, then the disclosure request, the holder's sealed answer, the outcome and the close."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from client_sdk.cli.demo import STEPS
from tests.cli.conftest import Run
from tests.sdk.live import LiveServer

pytestmark = pytest.mark.slow


def test_demo_runs_every_step_and_finds_the_match(run: Run, live: LiveServer) -> None:
    result = run("demo", "--data-dir", str(live.data_dir), "--base-url", live.base_url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for step in range(1, len(STEPS) + 1):
        assert f"Step {step}:" in out
    assert "Result: match" in out and "no_match" in out
    assert "did not see" in out
    # What the focal point registered never appears in what the server is said to have seen.
    assert "3201234567890001" not in out


def test_demo_tells_the_disclosure_and_it_really_happened(run: Run, live: LiveServer) -> None:
    run.env["COLUMNS"] = "250"  # wide enough that no table cell wraps
    result = run("demo", "--data-dir", str(live.data_dir), "--base-url", live.base_url)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    for title, _step in STEPS:
        assert title in text
    # The server's side, as measured on what it stored: sizes and states only.
    assert "a 2096-byte ciphertext, relayed to org-a" in text
    assert "a 4144-byte ciphertext (every answer has exactly this size" in text
    for transition in ("requested -> acknowledged", "acknowledged -> answered", "-> closed"):
        assert transition in text
    # org-a saw the details as org-b has them, with org-b's signature verified; org-b the
    # verified answer; both over keys pinned on first use.
    assert "signature verifies against its pinned key" in text
    assert "3201-2345-6789-0001" in text  # the NIK as org-b wrote it, opened by org-a
    assert "answer (signature verified)" in text and "confirmed" in text
    assert "Consent checks used: 1 of 1" in text
    assert "state closed (read)" in text and "The server deleted the answer's" in text
    assert "the server deleted the applicant's details" in text

    # And it did happen: the request is closed with the outcome, read back as org-b.
    request_id = re.search(r"request ([0-9a-f-]{36}), state requested", text)
    assert request_id is not None
    shown = run.json("disclosures", "show", request_id.group(1), as_="org-b-hr")
    assert shown["state"] == "closed" and shown["close_reason"] == "read"
    assert shown["outcome"] == "not_hired_disclosure" and "answer" not in shown
    held = run.json("disclosures", "show", request_id.group(1), as_="org-a-focal")
    assert held["state"] == "closed" and "applicant_details" not in held  # details deleted


def test_demo_without_demo_credentials_says_what_to_run(run: Run, tmp_path: Path) -> None:
    result = run("demo", "--data-dir", str(tmp_path), "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 5
    assert "refcheck-server init --demo" in result.output
