"""`refcheck-witness` and `refcheck transparency verify` as commands, against a real
`refcheck-server` of their own (each test tampers with its database, as an insider with
database access would, so neither shares the session's server).

The test servers run no background jobs: the sealer's work is done by `refcheck-server audit
checkpoint`, the command an operator has for it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner, Result

from client_sdk import Client, Credentials
from client_sdk.cli import ExitCode
from client_sdk.secretfile import load_json_secret, write_json_secret
from client_sdk.witness import cli as witness_cli
from protocol.signed import parse
from tests.cli.conftest import Run, fresh_person, register_case
from tests.sdk.live import LiveServer, running_server


def _server_command() -> list[str]:
    script = Path(sys.executable).with_name("refcheck-server")
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]


def checkpoint(server: LiveServer) -> int:
    """Seal what was logged and sign a tree head now; its tree size."""
    done = subprocess.run(
        [*_server_command(), "audit", "checkpoint", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    found = re.search(r"tree head signed at (\d+) leaves", done.stdout)
    assert found is not None, done.stdout
    return int(found.group(1))


def database(server: LiveServer) -> sqlite3.Connection:
    return sqlite3.connect(server.data_dir / "refcheck.db")


def delete_newest(server: LiveServer, keep: int) -> None:
    """An insider deletes every entry from leaf `keep` on, with the tree heads that cover them
    (and the tree's cached nodes over them): the log then ends at a head of `keep` leaves."""
    with database(server) as db:
        db.execute("DELETE FROM audit_entries WHERE leaf_index >= ?", (keep,))
        db.execute("DELETE FROM transparency_nodes WHERE position >= ?", (keep,))
        db.execute("DELETE FROM transparency_tree_heads WHERE tree_size > ?", (keep,))


def cosignature_count(server: LiveServer) -> int:
    with database(server) as db:
        (count,) = db.execute("SELECT count(*) FROM transparency_cosignatures").fetchone()
    return int(count)


def register(run: Run, tmp_path: Path) -> dict[str, object]:
    person = tmp_path / f"person-{len(list(tmp_path.glob('person-*')))}.json"
    person.write_text(json.dumps(fresh_person()))
    return register_case(run, str(person))


# --- refcheck-witness -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Witness:
    server: LiveServer
    credentials: Path
    key: Path
    state: Path

    def __call__(self) -> Result:
        return CliRunner().invoke(
            witness_cli,
            [
                "--credentials",
                str(self.credentials),
                "--key",
                str(self.key),
                "--state",
                str(self.state),
                "--base-url",
                self.server.base_url,
            ],
        )

    def first_run(self) -> Result:
        """The server announces its OPRF key at its first keys read; sealed, then witnessed."""
        assert httpx.get(self.server.base_url + "/v1/network/keys").status_code == 200
        checkpoint(self.server)
        return self()

    def kept_size(self) -> int:
        head = load_json_secret(self.state)["head"]
        return int(parse(bytes.fromhex(head)).fields["tree_size"])


@pytest.fixture
def witnessed(tmp_path: Path) -> Iterator[Witness]:
    """A demo network whose policy names a witness key, and that witness's principal (roles
    witness and auditor, in the secretariat) with its credentials and key files."""
    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "witness.key.json"
    write_json_secret(key_file, {"witness_private_key": key.private_bytes_raw().hex()})
    public = key.public_key().public_bytes_raw().hex()

    def name_the_witness(data_dir: Path) -> None:
        policy = data_dir / "network.toml"
        text = policy.read_text()
        assert "witnesses = []" in text
        policy.write_text(text.replace("witnesses = []", f'witnesses = ["{public}"]'))

    with running_server(tmp_path / "data", prepare=name_the_witness) as server:
        auditor = Credentials.load(server.credentials("auditor"))
        auth = Ed25519PrivateKey.generate()
        with Client.from_credentials_file(server.admin_credentials) as admin:
            principal = admin.add_principal(
                str(auditor.org_id),
                name="Network witness (test)",
                kind="person",
                roles=["witness", "auditor"],
                auth_public_key=auth.public_key().public_bytes_raw().hex(),
            )
        credentials = tmp_path / "witness.json"
        dataclasses.replace(
            auditor,
            client_id=principal["id"],
            auth_private_key=auth.private_bytes_raw(),
            principal_name=principal["name"],
            roles=("witness", "auditor"),
        ).save(credentials)
        yield Witness(server, credentials, key_file, tmp_path / "witness.state.json")


def test_the_witness_cosigns_a_consistent_head_and_the_filters_and_keys_it_includes(
    witnessed: Witness, tmp_path: Path
) -> None:
    server = witnessed.server
    run = Run(server, {"REFCHECK_PIN_FILE": str(tmp_path / "member.pins.json")})
    # With the witness named, members take no key announcement it has not cosigned: it runs
    # first, over the OPRF key announcement (made at the server's first keys read).
    start = witnessed.first_run()
    assert start.exit_code == 0, start.output
    assert "oprf-key " in start.stdout, start.stdout
    for _ in range(2):
        register(run, tmp_path)
    size = checkpoint(server)

    first = witnessed()
    assert first.exit_code == 0, first.output
    assert f"tree size {size}: cosigned tree-head {size}" in first.stdout
    # The filter revision each registration published: cosigned, its count being
    # keys_per_check × the live cases the log holds at that point (one, then two).
    assert first.stdout.count("filter ") == 2, first.stdout
    assert "NOT COSIGNED" not in first.output
    assert witnessed.kept_size() == size
    assert witnessed.state.stat().st_mode & 0o077 == 0
    # A member checking with the witness named accepts what the witness cosigned.
    verified = run.json("transparency", "verify", as_="org-b-hr")
    assert verified["tree_size"] == size

    # The log grows: the next run proves the new head extends the kept one, cosigns it.
    register(run, tmp_path)
    grown = checkpoint(server)
    second = witnessed()
    assert second.exit_code == 0, second.output
    assert f"tree size {grown}: cosigned tree-head {grown}" in second.stdout
    assert witnessed.kept_size() == grown


def test_the_witness_refuses_a_log_rewritten_behind_its_kept_head(
    witnessed: Witness, tmp_path: Path
) -> None:
    server = witnessed.server
    run = Run(server, {"REFCHECK_PIN_FILE": str(tmp_path / "member.pins.json")})
    assert witnessed.first_run().exit_code == 0
    older = checkpoint(server)
    register(run, tmp_path)
    newer = checkpoint(server)
    assert witnessed().exit_code == 0
    kept = witnessed.state.read_bytes()

    delete_newest(server, older)
    cosignatures = cosignature_count(server)
    refused = witnessed()
    assert refused.exit_code == ExitCode.SECURITY, refused.output
    message = " ".join(refused.output.split())
    assert "LOG NOT WITNESSED" in message
    assert f"trusted tree size {newer}, offered {older}" in message
    assert "alert the network secretariat" in message
    # Nothing was cosigned, and the witness still keeps the head it had verified.
    assert cosignature_count(server) == cosignatures
    assert witnessed.state.read_bytes() == kept


# --- refcheck transparency verify ------------------------------------------------------------


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(tmp_path / "data") as server:
        yield server


def test_transparency_verify_passes_a_growing_log_and_fails_once_its_newest_entries_go(
    own_server: LiveServer, tmp_path: Path
) -> None:
    pins = tmp_path / "org-b-hr.pins.json"
    run = Run(own_server, {"REFCHECK_PIN_FILE": str(pins)})
    first = run.json("transparency", "verify", as_="org-b-hr")
    assert first["first_seen"] is True
    assert first["tree_head_file"] == str(tmp_path / "org-b-hr.treehead.json")

    older = checkpoint(own_server)
    register(Run(own_server, {"REFCHECK_PIN_FILE": str(tmp_path / "focal.pins.json")}), tmp_path)
    newer = checkpoint(own_server)
    assert newer > older
    good = run("transparency", "verify", as_="org-b-hr")
    assert good.exit_code == 0, good.output
    assert f"transparency log OK: {newer} entries" in good.stdout
    assert "consistent with the last one seen" in good.stdout

    delete_newest(own_server, older)
    bad = run("transparency", "verify", as_="org-b-hr")
    assert bad.exit_code == ExitCode.SECURITY, bad.output
    message = " ".join(bad.output.split())  # the console wraps long lines
    assert "security check failed" in message
    assert f"entries were removed (trusted tree size {newer}, offered {older})" in message
    assert "alert the network secretariat" in message
    # Every other command of that member refuses too (the check at the start of its session).
    other = run("whoami", as_="org-b-hr")
    assert other.exit_code == ExitCode.SECURITY, other.output


def test_case_register_prints_its_log_entry(own_server: LiveServer, tmp_path: Path) -> None:
    run = Run(own_server, {"REFCHECK_PIN_FILE": str(tmp_path / "focal.pins.json")})
    registered = register(run, tmp_path)
    log_seq = registered["log_seq"]
    assert isinstance(log_seq, int)
    with database(own_server) as db:
        row = db.execute(
            "SELECT action, object_id FROM audit_entries WHERE seq = ?", (log_seq,)
        ).fetchone()
    assert row == ("case.register", registered["case_id"])
    human = run(
        "case",
        "register",
        "--person",
        str(tmp_path / "person-0.json"),
        "--category",
        "sexual_harassment",
        "--finding-date",
        (date.today() - timedelta(days=10)).isoformat(),
        "--sanction",
        "dismissal",
        "--legal-basis",
        "legitimate_interests",
        "--retention-until",
        (date.today() + timedelta(days=365)).isoformat(),
        "--mou-reference",
        "MoU-2026-01",
        "--subject-notified-on",
        (date.today() - timedelta(days=5)).isoformat(),
        as_="org-a-focal",
    )
    assert human.exit_code == 0, human.output
    assert re.search(r"entry \d+ of the network's transparency log", human.stdout), human.stdout
