"""`refcheck-server`: init (with the demo network), audit verify/checkpoint, refusals, serve.

Each test gets its own data directory and database (SQLite, or a fresh PostgreSQL database when
the suite runs on PostgreSQL), exactly as an operator's `init` would see them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from server.app import create_app
from server.audit.models import AuditEntry
from server.cli import app as cli_app
from server.db import make_engine
from server.keys import read_oprf_key
from server.oprf.models import CurrentOprfKey, OprfKeyAnnouncement
from server.settings import Settings
from server.transparency.models import TreeHead
from tests.databases import dispose_database_url, fresh_database_url
from tests.factories import AppClient, sign_assertion, token_form

DEMO_FILES = {"admin", "auditor", "org-a-focal", "org-a-hr", "org-b-focal", "org-b-hr"}
SECRET_FILES = ("registration.key", "token-signing.key", "audit-checkpoint.key")


@dataclass
class Env:
    data_dir: Path
    database_url: str | None  # None: the embedded SQLite file under data_dir

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'refcheck.db').resolve()}"

    def settings(self) -> Settings:
        return Settings(
            environment="test",
            data_dir=self.data_dir,
            database_url=self.database_url or "",
            run_background_jobs=False,
        )


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    for name in ("REFCHECK_DATABASE_URL", "REFCHECK_DATA_DIR", "REFCHECK_POLICY_FILE"):
        monkeypatch.delenv(name, raising=False)
    url = fresh_database_url(tmp_path / "db", "refcheck_cli")
    database_url = url if url.startswith("postgresql") else None
    if database_url:
        monkeypatch.setenv("REFCHECK_DATABASE_URL", database_url)
    try:
        yield Env(data_dir=tmp_path / "data", database_url=database_url)
    finally:
        if database_url:
            dispose_database_url(database_url)


runner = CliRunner()


def run(*args: str):
    return runner.invoke(cli_app, list(args))


def _init(env: Env, *extra: str):
    result = run("init", "--data-dir", str(env.data_dir), *extra)
    assert result.exit_code == 0, result.output
    return result


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_keys_schema_and_prints_the_first_admin_once(env: Env):
    result = _init(env)
    key_dir = env.data_dir / "server"
    [oprf] = key_dir.glob("oprf-*.key")
    # Named by its key id: `skS` then `w`, so a stolen database opens no handle.
    key = read_oprf_key(oprf)
    assert oprf.name == f"oprf-{key.key_id}.key"
    assert not (key_dir / "oprf.key").exists()
    for path in (oprf, *(key_dir / n for n in SECRET_FILES)):
        assert _mode(path) == 0o600, path.name
    assert (key_dir / "network-id").read_text().strip() == "refcheck"
    creds = json.loads(result.stdout)
    assert creds["refcheck_credentials"] == 1
    assert creds["roles"] == ["network_admin"]
    assert creds["org_short_name"] == "secretariat"
    assert creds["org_keys"] is None
    assert len(bytes.fromhex(creds["auth_private_key"])) == 32
    assert not (env.data_dir / "demo").exists()
    if env.database_url is None:
        assert _mode(env.data_dir / "refcheck.db") == 0o600


def test_init_announces_the_first_oprf_key(env: Env):
    """A new network's current-key row and the key's signed announcement are written by
    `init`: left to the first checks, the announcement ran inside a check's read transaction,
    and on SQLite the first concurrent checks of a new network got 503 `busy`."""
    _init(env)
    [oprf] = (env.data_dir / "server").glob("oprf-*.key")
    key = read_oprf_key(oprf)
    engine = make_engine(env.url)
    try:
        with Session(engine) as session:
            current = session.execute(select(CurrentOprfKey.key_seq, CurrentOprfKey.key_id)).one()
            announced = session.scalars(select(OprfKeyAnnouncement.key_id)).all()
    finally:
        engine.dispose()
    assert tuple(current) == (1, key.key_id)
    assert announced == [key.key_id]


def test_init_demo_writes_one_credentials_file_per_principal(env: Env):
    _init(env, "--demo", "--base-url", "http://127.0.0.1:9999")
    demo = env.data_dir / "demo"
    assert {p.stem for p in demo.glob("*.json")} == DEMO_FILES
    expected_roles = {
        "admin": ["network_admin"],
        "auditor": ["auditor"],
        "org-a-focal": ["focal_point"],
        "org-a-hr": ["hr_checker"],
        "org-b-focal": ["focal_point"],
        "org-b-hr": ["hr_checker"],
    }
    files = {name: json.loads((demo / f"{name}.json").read_text()) for name in DEMO_FILES}
    for name, creds in files.items():
        assert _mode(demo / f"{name}.json") == 0o600
        assert creds["base_url"] == "http://127.0.0.1:9999"
        assert creds["issuer"] == "refcheck"
        assert creds["roles"] == expected_roles[name]
        if name in ("admin", "auditor"):
            assert creds["org_keys"] is None
        else:
            assert creds["org_short_name"] == name.rsplit("-", 1)[0]
            assert set(creds["org_keys"]) == {"ed25519_private", "x25519_private"}
    # Both principals of a member hold that member's keys.
    assert files["org-a-hr"]["org_keys"] == files["org-a-focal"]["org_keys"]
    assert files["org-a-hr"]["org_keys"] != files["org-b-hr"]["org_keys"]


@pytest.mark.anyio
async def test_demo_credentials_sign_in_and_match_the_registry(env: Env):
    _init(env, "--demo")
    demo = env.data_dir / "demo"
    engine = make_engine(env.url)
    try:
        async with AppClient(create_app(env.settings(), bind=engine)) as client:
            for name in sorted(DEMO_FILES):
                creds = json.loads((demo / f"{name}.json").read_text())
                key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(creds["auth_private_key"]))
                assertion = sign_assertion(creds["client_id"], key, audience=creds["issuer"])
                token = await client.post("/v1/oauth/token", data=token_form(assertion))
                assert token.status_code == 200, (name, token.text)
                headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
                me = (await client.get("/v1/me", headers=headers)).json()
                assert me["principal_id"] == creds["client_id"]
                assert me["org_short_name"] == creds["org_short_name"]
                if creds["org_keys"]:
                    org = (await client.get(f"/v1/orgs/{me['org_id']}", headers=headers)).json()
                    signing = Ed25519PrivateKey.from_private_bytes(
                        bytes.fromhex(creds["org_keys"]["ed25519_private"])
                    )
                    from server.credentials import ed25519_public_hex

                    assert org["ed25519_public_key"] == ed25519_public_hex(signing)
                    assert org["status"] == "active"
    finally:
        engine.dispose()


def test_init_writes_the_network_id_it_is_given_and_refuses_a_bad_one(env: Env, tmp_path: Path):
    _init(env, "--network-id", "pseah-id-2026")
    assert (env.data_dir / "server" / "network-id").read_text().strip() == "pseah-id-2026"
    other = Env(data_dir=tmp_path / "other", database_url=None)
    if env.database_url is None:
        result = run("init", "--data-dir", str(other.data_dir), "--network-id", "Not Valid!")
        assert result.exit_code != 0
        assert "network id" in result.output


def test_migrate_turns_a_version_1_key_file_into_a_version_2_one(env: Env):
    """`skS` is kept (the stored pseudonyms were made with it); `w`, the registration key and
    the network id are added; the version-1 file goes, and nothing starts on one."""
    _init(env)
    key_dir = env.data_dir / "server"
    [current] = key_dir.glob("oprf-*.key")
    secret = read_oprf_key(current).secret
    # Put the data directory back as version 1 left it: `skS` alone, no registration key.
    current.unlink()
    (key_dir / "registration.key").unlink()
    (key_dir / "network-id").unlink()
    legacy = key_dir / "oprf.key"
    legacy.write_text(secret.hex() + "\n")
    legacy.chmod(0o600)
    refused = run("audit", "verify", "--data-dir", str(env.data_dir))
    assert refused.exit_code == 2
    assert "protocol version 1" in refused.output and "migrate" in refused.output

    result = run("migrate", "--data-dir", str(env.data_dir))
    assert result.exit_code == 0, result.output
    assert not legacy.exists()
    [converted] = key_dir.glob("oprf-*.key")
    key = read_oprf_key(converted)
    assert key.secret == secret and converted.name == f"oprf-{key.key_id}.key"
    assert _mode(converted) == _mode(key_dir / "registration.key") == 0o600
    assert (key_dir / "network-id").read_text().strip() == "refcheck"
    assert run("audit", "verify", "--data-dir", str(env.data_dir)).exit_code == 0


def test_second_init_is_refused_and_keeps_the_keys(env: Env):
    _init(env)
    before = {p.name: p.read_bytes() for p in (env.data_dir / "server").iterdir()}
    result = run("init", "--data-dir", str(env.data_dir), "--demo")
    assert result.exit_code == 1
    assert "already holds an initialised network" in result.output
    after = {p.name: p.read_bytes() for p in (env.data_dir / "server").iterdir()}
    assert before == after
    assert not (env.data_dir / "demo").exists()


def test_make_run_initialises_only_a_data_dir_that_init_has_not(env: Env):
    """`make run` calls `init` unless a file that `init` writes exists: a second `make run`
    must find it (init refuses an initialised network, exit 1, and make would stop there)."""
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    [guard] = re.findall(r"test -f \$\(DATA\)/(\S+) \|\| \$\(BIN\)/refcheck-server init", makefile)
    assert not (env.data_dir / guard).exists()
    _init(env, "--demo")
    assert (env.data_dir / guard).is_file(), f"init does not write {guard}"


def test_init_refuses_an_invalid_policy_with_a_clear_message(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    bad = tmp_path / "bad-policy.toml"
    bad.write_text('version = "x"\nkeys_per_check = 0\n')
    monkeypatch.setenv("REFCHECK_POLICY_FILE", str(bad))
    result = run("init", "--data-dir", str(env.data_dir))
    assert result.exit_code == 2
    assert "is invalid" in result.output and "keys_per_check" in result.output
    assert not (env.data_dir / "server").exists()


def test_audit_checkpoint_seals_and_signs_a_tree_head(env: Env):
    _init(env, "--demo")
    engine = make_engine(env.url)
    try:
        with Session(engine) as session, session.begin():
            session.add(AuditEntry(at=datetime.now(UTC), action="test.event", details={"n": 1}))
    finally:
        engine.dispose()
    result = run("audit", "checkpoint", "--data-dir", str(env.data_dir))
    assert result.exit_code == 0, result.output
    assert "tree head signed at" in result.output
    engine = make_engine(env.url)
    try:
        with Session(engine) as session:
            count = session.scalar(select(func.count()).select_from(TreeHead))
            assert count == 2  # one by init, one now
    finally:
        engine.dispose()


def test_audit_verify_passes_on_an_untouched_trail(env: Env):
    _init(env, "--demo")
    result = run("audit", "verify", "--data-dir", str(env.data_dir))
    assert result.exit_code == 0, result.output
    assert "audit trail intact" in result.output


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("edit", "leaf 2 (entry 3) altered"),
        ("delete", "leaf 2 removed"),
        ("drop-head", "no signed tree head covers them"),
    ],
)
def test_audit_verify_names_the_first_tampered_entry(env: Env, tamper: str, expected: str):
    _init(env, "--demo")
    engine = make_engine(env.url)
    try:
        with Session(engine) as session, session.begin():
            third = session.scalars(select(AuditEntry).where(AuditEntry.leaf_index == 2)).one()
            if tamper == "edit":
                third.action = "org.nothing"
            elif tamper == "delete":
                session.delete(third)
            else:
                session.add(AuditEntry(at=third.at, action="test.event", details={}))
                session.flush()
                from server.transparency.sealer import latest_head

                head = latest_head(session)
                assert head is not None
                # Seal as the server would, then drop the head that covers the new leaf.
                session.execute(
                    update(AuditEntry)
                    .where(AuditEntry.leaf_index.is_(None))
                    .values(leaf_index=head.tree_size)
                )
    finally:
        engine.dispose()
    if tamper == "edit":
        expected = expected.replace("entry 3", f"entry {_seq_at(env, 2)}")
    result = run("audit", "verify", "--data-dir", str(env.data_dir))
    assert result.exit_code == 1, result.output
    assert result.output.startswith("AUDIT TRAIL BROKEN: "), result.output
    assert expected in result.output.splitlines()[0], result.output


def _seq_at(env: Env, index: int) -> int:
    engine = make_engine(env.url)
    try:
        with Session(engine) as session:
            return int(
                session.scalars(select(AuditEntry.seq).where(AuditEntry.leaf_index == index)).one()
            )
    finally:
        engine.dispose()


def test_commands_refuse_a_data_dir_without_keys(env: Env):
    result = run("audit", "verify", "--data-dir", str(env.data_dir))
    assert result.exit_code == 2
    assert "no OPRF key file" in result.output and "refcheck-server init" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (Linux /proc)."""
    out = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat_file.parent.name))
    return out


@contextlib.contextmanager
def _serving(
    env: Env, workers: int, environ: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`refcheck-server serve` on a free port of 127.0.0.1, ready; stopped after."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--data-dir",
            str(env.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(environ or {})},
    )
    try:
        deadline = time.monotonic() + 30
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready is not None, "server did not start"
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        yield proc, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_listens_on_localhost_and_is_ready(env: Env, workers: int):
    _init(env, "--demo")
    with _serving(env, workers) as (proc, port):
        # Several requests on one keep-alive connection, whichever worker takes it.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            assert [http.get("/healthz").status_code for _ in range(5)] == [200] * 5
        if workers > 1:
            # uvicorn's supervisor with its worker processes (a resource tracker may join them).
            assert len(_children(proc.pid)) >= workers


def _workers(supervisor: int) -> list[int]:
    """uvicorn's worker processes under `supervisor` (not multiprocessing's resource tracker)."""
    return [
        pid
        for pid in _children(supervisor)
        if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


@pytest.mark.slow
def test_serve_workers_take_turns_at_accepting_connections(env: Env):
    """libuv accepts every waiting connection at each wake-up; under load the first of two
    workers to wake took most of a client's keep-alive connections and ran at its limit beside
    a half-idle one (`server.http_protocol`; the per-worker CPU split is in
    loadtests/README.md, where the effect is measured: connections opened at once on idle
    workers split evenly either way, so no test here can tell the two apart by their split).
    `serve --workers 2` hands libuv's switch to both workers, and they still answer."""
    _init(env, "--demo")
    with _serving(env, 2) as (proc, port):
        workers = _workers(proc.pid)
        assert len(workers) == 2
        assert {_environ(pid).get("UV_TCP_SINGLE_ACCEPT") for pid in workers} == {"1"}
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) for _ in range(12)]
        try:
            with ThreadPoolExecutor(len(clients)) as pool:
                answers = list(pool.map(lambda c: c.get("/healthz").status_code, clients))
            assert answers == [200] * len(clients)
        finally:
            for client in clients:
                client.close()


@pytest.mark.slow
def test_serve_keeps_an_operators_own_accept_setting(env: Env):
    _init(env, "--demo")
    with _serving(env, 2, {"UV_TCP_SINGLE_ACCEPT": "0"}) as (proc, _port):
        settings = {_environ(pid).get("UV_TCP_SINGLE_ACCEPT") for pid in _workers(proc.pid)}
        assert settings == {"0"}


def test_serve_refuses_an_invalid_policy(env: Env, tmp_path: Path, monkeypatch):
    _init(env)
    bad = tmp_path / "bad-policy.toml"
    bad.write_text("this is not toml =")
    monkeypatch.setenv("REFCHECK_POLICY_FILE", str(bad))
    result = run("serve", "--data-dir", str(env.data_dir), "--port", "1")
    assert result.exit_code == 2
    assert "not valid TOML" in result.output
