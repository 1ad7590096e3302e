"""Running `refcheck-server` as an operator does, for the operations tests (issue 20).

`Deployment` is one data directory (and database): `init` it with `refcheck-server init --demo`,
`serve` it in a subprocess (TLS, workers, any option), run any other command with `cli`. The
database is SQLite in the data directory, or a fresh PostgreSQL database created on the server
that ``REFCHECK_TEST_DATABASE_URL`` names (never that database itself) and dropped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from client_sdk import CaseRegistration, CheckStatus, Client
from tests.databases import create_postgres_database, drop_postgres_database, postgres_server_url
from tests.sdk.live import free_port

PASSPHRASE = "a backup passphrase for tests"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                postgres_server_url() is None, reason="REFCHECK_TEST_DATABASE_URL is not set"
            ),
        ],
    ),
]


def server_command() -> list[str]:
    script = Path(sys.executable).with_name("refcheck-server")
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]


def base_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("REFCHECK_") or key == "REFCHECK_TEST_DATABASE_URL"
    }
    env.update(
        REFCHECK_ENVIRONMENT="development",
        REFCHECK_RUN_BACKGROUND_JOBS="false",
        REFCHECK_LOG_LEVEL="warning",
        REFCHECK_BACKUP_PASSPHRASE=PASSPHRASE,
    )
    env.update(extra)
    return env


@dataclass
class Deployment:
    data_dir: Path
    database_url: str | None = None
    port: int = field(default_factory=free_port)
    scheme: str = "http"
    env: dict[str, str] = field(default_factory=base_env)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def credentials(self, name: str) -> Path:
        return self.data_dir / "demo" / f"{name}.json"

    def db_args(self) -> list[str]:
        return [] if self.database_url is None else ["--database-url", self.database_url]

    def cli(
        self, *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*server_command(), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"refcheck-server {' '.join(args[:1])} exited {done.returncode}: {done.stderr}"
            )
        return done

    def init(self) -> None:
        self.cli(
            "init",
            "--data-dir",
            str(self.data_dir),
            "--demo",
            "--base-url",
            self.base_url,
            *self.db_args(),
        )

    @contextmanager
    def serve(self, *extra: str, verify: Any = True) -> Iterator[subprocess.Popen[bytes]]:
        log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [
                    *server_command(),
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    *self.db_args(),
                    *extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
            try:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        answer = httpx.get(self.base_url + "/healthz", timeout=1, verify=verify)
                        if answer.status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("refcheck-server did not start: " + log_path.read_text())
                    time.sleep(0.2)
                yield proc
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@contextmanager
def deployment(tmp_path: Path, name: str, backend: str, **kwargs: Any) -> Iterator[Deployment]:
    """A data dir under `tmp_path` and, on PostgreSQL, a fresh database (dropped afterwards)."""
    url = None
    server_url = postgres_server_url()
    if backend == "postgresql":
        assert server_url is not None
        url = create_postgres_database(server_url, prefix="refcheck_ops")
    try:
        yield Deployment(tmp_path / name, url, **kwargs)
    finally:
        if url is not None and server_url is not None:
            drop_postgres_database(server_url, url)


# --- the story, through the real SDK -------------------------------------------------------


def person(n: int) -> dict[str, object]:
    """Invented people, one per `n` (no real person)."""
    return {
        "full_name": f"Testperson Nomor{chr(65 + n)} Operasi",
        "date_of_birth": f"19{70 + n}-0{1 + n % 9}-1{n % 10}",
        "nationality": "ID",
        "national_id": f"32012345678{n:05d}",
    }


def register(focal: Client, who: dict[str, object]) -> str:
    today = date.today()
    registration = focal.register_case(
        who,
        CaseRegistration(
            category="sexual_exploitation",
            finding_date=today - timedelta(days=30),
            sanction="contract_termination",
            legal_basis="legitimate_interests",
            retention_until=today + timedelta(days=6 * 365),
            mou_reference="MoU-2026-01",
            subject_notified_on=today - timedelta(days=20),
        ),
    )
    return registration.case_id


_consents = iter(range(1_000_000))


def consent(hr: Client) -> str:
    return str(
        hr.record_consent(
            applicant_ref=f"OPS-{next(_consents)}",
            purpose="recruitment",
            position_ref="POS-1",
            form_sha256="ab" * 32,
            self_declared_finding=False,
        )
    )


def check_status(hr: Client, who: dict[str, object]) -> CheckStatus:
    return hr.check_applicant(who, consent(hr)).status
