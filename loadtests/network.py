"""A throw-away demo network for benchmarks and load tests: data dir, database, credentials.

Built with the real `refcheck-server init --demo` (a subprocess, exactly what an operator runs), so
a benchmark measures the schema, keys and principals a deployment has, not a test double. The
load-test policy is the network policy in force (`policies/network.toml`) with the values of
`loadtests/policy_overrides.toml` put in (daily quotas high enough that a load test measures the
server rather than the quota's 429 answers), written beside the data dir for each run, so it never
falls behind the real policy.

PostgreSQL databases are created fresh under a unique name and dropped afterwards, never reused,
so a run cannot disturb anybody's data on a shared server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

LOADTESTS_DIR = Path(__file__).resolve().parent
NETWORK_POLICY_FILE = LOADTESTS_DIR.parent / "policies" / "network.toml"
POLICY_OVERRIDES_FILE = LOADTESTS_DIR / "policy_overrides.toml"
#: Where the PostgreSQL server is reached to create and drop the benchmark's own databases.
DEFAULT_PG_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_SERVER_ENV = "REFCHECK_BENCH_PG_URL"

#: The principals `refcheck-server init --demo` writes credentials files for.
DEMO_PRINCIPALS = ("admin", "auditor", "org-a-focal", "org-a-hr", "org-b-focal", "org-b-hr")


@dataclass(frozen=True)
class Principal:
    """What a benchmark needs of a demo principal: its credentials file and ids."""

    name: str
    path: Path
    principal_id: str
    org_id: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class DemoNetwork:
    data_dir: Path
    database_url: str
    policy_file: Path
    base_url: str
    principals: dict[str, Principal]

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'refcheck.db').resolve()}"

    @property
    def backend(self) -> str:
        return "postgresql" if self.effective_database_url.startswith("postgresql") else "sqlite"

    def env(self) -> dict[str, str]:
        """The environment a server process of this network runs with."""
        env = dict(os.environ)
        env["REFCHECK_DATA_DIR"] = str(self.data_dir)
        env["REFCHECK_POLICY_FILE"] = str(self.policy_file)
        env["REFCHECK_LOG_LEVEL"] = "warning"
        if self.database_url:
            env["REFCHECK_DATABASE_URL"] = self.database_url
        else:
            env.pop("REFCHECK_DATABASE_URL", None)
        return env

    def settings(self, **overrides: Any) -> Any:
        """`server.settings.Settings` for an in-process context of this network."""
        from server.settings import Settings

        values: dict[str, Any] = {
            "data_dir": self.data_dir,
            "database_url": self.database_url,
            "policy_file": self.policy_file,
            "run_background_jobs": False,
            "log_level": "warning",
        }
        values.update(overrides)
        return Settings(**values)


def write_load_policy(
    path: Path, base: Path = NETWORK_POLICY_FILE, overrides: Path = POLICY_OVERRIDES_FILE
) -> Path:
    """Write `base` to `path` with the top-level values of `overrides` put in.

    Line-wise, so the copy keeps the network policy's comments and layout; a key the base does
    not define is left out rather than added, because the policy schema refuses unknown keys.
    """
    wanted = tomllib.loads(overrides.read_text(encoding="utf-8"))
    lines = base.read_text(encoding="utf-8").splitlines()
    out = []
    top_level = True
    for line in lines:
        top_level = top_level and not line.lstrip().startswith("[")
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=", line) if top_level else None
        if match and match.group(1) in wanted:
            key = match.group(1)
            line = f"{key} = {json.dumps(wanted[key])}  # raised for load tests"
        out.append(line)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def init_network(
    data_dir: Path,
    *,
    database_url: str = "",
    base_url: str = "http://127.0.0.1:8000",
    policy_file: Path | None = None,
) -> DemoNetwork:
    """Run `refcheck-server init --demo` into `data_dir` (and `database_url`, if given), with
    `policy_file` or else a load policy written beside `data_dir`."""
    if policy_file is None:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        policy_file = write_load_policy(data_dir.parent / f"{data_dir.name}-policy.toml")
    network = DemoNetwork(
        data_dir=data_dir,
        database_url=database_url,
        policy_file=policy_file,
        base_url=base_url,
        principals={},
    )
    # `python -m server.cli` from the project root rather than the console script: the code
    # initialising the network is then the code under test, whatever else is installed.
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "init", "--data-dir", str(data_dir), "--demo"]
        + ["--base-url", base_url],
        env=network.env(),
        cwd=LOADTESTS_DIR.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"refcheck-server init failed: {result.stderr.strip()}")
    principals = {}
    for name in DEMO_PRINCIPALS:
        path = data_dir / "demo" / f"{name}.json"
        data = json.loads(path.read_text())
        principals[name] = Principal(
            name=name,
            path=path,
            principal_id=data["client_id"],
            org_id=data["org_id"],
            roles=tuple(data["roles"]),
        )
    return DemoNetwork(
        data_dir=data_dir,
        database_url=database_url,
        policy_file=policy_file,
        base_url=base_url,
        principals=principals,
    )


def pg_server_url() -> str:
    return os.environ.get(PG_SERVER_ENV, DEFAULT_PG_SERVER_URL)


def create_pg_database(server_url: str, prefix: str = "refcheck_bench") -> str:
    """Create a uniquely named database on the server of `server_url`; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
