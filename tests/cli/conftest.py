"""CLI fixtures: one real `refcheck-server` per session (tests/sdk/live.py) and a runner that
invokes `refcheck` in-process with typer's CliRunner.

Tests share the server, so each invents its own people (`fresh_person`) and consents: nothing
one test registers can match another test's applicants.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from client_sdk.cli import app
from tests.sdk.live import LiveServer, running_server

FIRST = ["Ahmad", "Budi", "Citra", "Dian", "Eka", "Fajar", "Gita", "Hendra", "Intan", "Joko"]
MIDDLE = ["Putra", "Sari", "Wibowo", "Lestari", "Santoso", "Kurnia", "Hidayat", "Utami"]
LAST = ["Pratama", "Saputra", "Nugroho", "Wijaya", "Setiawan", "Rahayu", "Susanto", "Purnomo"]


def fresh_person(rng: random.Random | None = None) -> dict[str, str]:
    """An invented person with a random name, birthday and NIK (no real person)."""
    rng = rng or random.Random()
    suffix = "".join(rng.choice(string.ascii_lowercase) for _ in range(5))
    year, month, day = rng.randint(1960, 2004), rng.randint(1, 12), rng.randint(1, 28)
    return {
        "full_name": f"{rng.choice(FIRST)} {rng.choice(MIDDLE)}{suffix} {rng.choice(LAST)}",
        "date_of_birth": f"{year:04d}-{month:02d}-{day:02d}",
        "nationality": "ID",
        "national_id": "".join(rng.choice(string.digits) for _ in range(16)),
    }


@pytest.fixture(autouse=True)
def english_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests read English messages: a developer's Indonesian locale must not switch them
    (tests/cli/test_languages.py sets the language where it is the point)."""
    for variable in ("REFCHECK_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory.mktemp("live-cli")) as server:
        yield server


@dataclass
class Run:
    """`run("check", ..., as_="org-b-hr")` → CliRunner result, with JSON helpers."""

    live: LiveServer | None
    env: dict[str, str]

    def __call__(self, *args: str, as_: str | None = None, input: str | None = None) -> Result:
        env = dict(self.env)
        if as_ is not None:
            assert self.live is not None
            env["REFCHECK_CREDENTIALS"] = str(self.live.credentials(as_))
        return CliRunner().invoke(app, list(args), env=env, input=input)

    def json(self, *args: str, as_: str | None = None, code: int = 0) -> Any:
        result = self("--json", *args, as_=as_)
        assert result.exit_code == code, (result.exit_code, result.output)
        return json.loads(result.stdout)


@pytest.fixture
def run(live: LiveServer, tmp_path: Path) -> Run:
    return Run(live, {"REFCHECK_PIN_FILE": str(live.data_dir / "cli-pins.json")})


@pytest.fixture
def offline_run(tmp_path: Path) -> Run:
    """A runner for commands that need no server."""
    return Run(None, {"REFCHECK_PIN_FILE": str(tmp_path / "pins.json")})


@pytest.fixture
def person_file(tmp_path: Path) -> Callable[[dict[str, str]], str]:
    counter = iter(range(10_000))

    def write(person: dict[str, str]) -> str:
        path = tmp_path / f"person-{next(counter)}.json"
        path.write_text(json.dumps(person))
        return str(path)

    return write


def register_case(run: Run, person_path: str) -> dict[str, Any]:
    """`refcheck case register` by org-a's focal point: a harassment finding 10 days ago, kept
    five years, the person told 5 days ago; the JSON answer."""
    from datetime import date, timedelta

    today = date.today()
    registered: dict[str, Any] = run.json(
        "case",
        "register",
        "--person",
        person_path,
        "--category",
        "sexual_harassment",
        "--finding-date",
        (today - timedelta(days=10)).isoformat(),
        "--sanction",
        "dismissal",
        "--legal-basis",
        "legitimate_interests",
        "--retention-until",
        (today + timedelta(days=5 * 365)).isoformat(),
        "--mou-reference",
        "MoU-2026-01",
        "--subject-notified-on",
        (today - timedelta(days=5)).isoformat(),
        as_="org-a-focal",
    )
    return registered
