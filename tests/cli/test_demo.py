"""`refcheck demo` tells the whole story against a real server set up by `init --demo`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Run
from tests.sdk.live import LiveServer

pytestmark = pytest.mark.slow


def test_demo_runs_every_step_and_finds_the_match(run: Run, live: LiveServer) -> None:
    result = run("demo", "--data-dir", str(live.data_dir), "--base-url", live.base_url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for step in range(1, 6):
        assert f"Step {step}:" in out
    assert "Result: match" in out and "no_match" in out
    assert "did not see" in out
    # What the focal point registered never appears in what the server is said to have seen.
    assert "3201234567890001" not in out


def test_demo_without_demo_credentials_says_what_to_run(run: Run, tmp_path: Path) -> None:
    result = run("demo", "--data-dir", str(tmp_path), "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 5
    assert "refcheck-server init --demo" in result.output
