"""A second staff member can do the whole job (issue 14, item 4): the organisation's keys are
exported sealed under a passphrase and imported into another keystore; a check that will need
them is refused before it spends the applicant's consent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client_sdk.cli import ExitCode
from client_sdk.keystore import Keystore
from tests.cli.conftest import Run, fresh_person
from tests.cli.test_commands import PersonFile, register
from tests.cli.test_disclosures import consent_receipt
from tests.sdk.live import LiveServer

EXPORT_SECRET = "correct horse battery staple"


def _init(run: Run, path: Path, *flags: str) -> None:
    made = run("keys", "init", "--out", str(path), "--no-passphrase", *flags)
    assert made.exit_code == 0, made.output


def test_export_then_import_gives_the_second_keystore_the_same_org_keys(
    offline_run: Run, tmp_path: Path
) -> None:
    first, second, export = tmp_path / "first.json", tmp_path / "second.json", tmp_path / "x.json"
    _init(offline_run, first)
    _init(offline_run, second, "--auth-only")
    offline_run.env["REFCHECK_EXPORT_PASSPHRASE"] = EXPORT_SECRET

    out = offline_run("keys", "export-org", "--keys", str(first), "--out", str(export))
    assert out.exit_code == 0, out.output
    assert export.stat().st_mode & 0o777 == 0o600
    text = export.read_text()
    original = Keystore.load(first).org_keys
    assert original is not None
    # Sealed: neither private key is in the file.
    assert original.ed25519_private.hex() not in text
    assert original.x25519_private.hex() not in text

    imported = offline_run("keys", "import-org", str(export), "--keys", str(second))
    assert imported.exit_code == 0, imported.output
    after = Keystore.load(second)
    assert after.org_keys == original
    # The second person's own auth key is kept.
    assert after.auth_private_key != Keystore.load(first).auth_private_key


def test_import_refuses_a_wrong_passphrase_and_an_auth_only_export(
    offline_run: Run, tmp_path: Path
) -> None:
    first, second, export = tmp_path / "first.json", tmp_path / "second.json", tmp_path / "x.json"
    _init(offline_run, first)
    _init(offline_run, second, "--auth-only")
    offline_run.env["REFCHECK_EXPORT_PASSPHRASE"] = EXPORT_SECRET
    assert (
        offline_run("keys", "export-org", "--keys", str(first), "--out", str(export)).exit_code == 0
    )

    offline_run.env["REFCHECK_EXPORT_PASSPHRASE"] = "not the passphrase"
    wrong = offline_run("keys", "import-org", str(export), "--keys", str(second))
    assert wrong.exit_code == ExitCode.CREDENTIALS, wrong.output
    assert "wrong passphrase" in wrong.output
    assert Keystore.load(second).org_keys is None

    nothing = offline_run(
        "keys", "export-org", "--keys", str(second), "--out", str(tmp_path / "y.json")
    )
    assert nothing.exit_code == ExitCode.CREDENTIALS, nothing.output
    assert not (tmp_path / "y.json").exists()


def test_import_refuses_to_replace_other_org_keys_without_replace(
    offline_run: Run, tmp_path: Path
) -> None:
    first, other, export = tmp_path / "first.json", tmp_path / "other.json", tmp_path / "x.json"
    _init(offline_run, first)
    _init(offline_run, other)
    offline_run.env["REFCHECK_EXPORT_PASSPHRASE"] = EXPORT_SECRET
    assert (
        offline_run("keys", "export-org", "--keys", str(first), "--out", str(export)).exit_code == 0
    )
    before = Keystore.load(other).org_keys
    refused = offline_run("keys", "import-org", str(export), "--keys", str(other))
    assert refused.exit_code == ExitCode.USAGE, refused.output
    assert Keystore.load(other).org_keys == before


@pytest.mark.slow
def test_second_hr_officer_is_refused_before_the_check_then_works_after_import(
    run: Run, live: LiveServer, tmp_path: Path, person_file: PersonFile
) -> None:
    run.env["REFCHECK_PIN_FILE"] = str(tmp_path / "pins.json")
    keystore = tmp_path / "second-hr-keys.json"
    _init(run, keystore, "--auth-only")
    added = run.json(
        "admin", "principal", "add", "org-b", "--name", "Second HR officer",
        "--role", "hr_checker", "--keys", str(keystore),
        as_="admin",
    )  # fmt: skip
    creds = tmp_path / "second-hr.json"
    login = run(
        "login", "--keys", str(keystore), "--client-id", added["id"],
        "--server", live.base_url, "--out", str(creds),
        "--network-fingerprint", added["network_signing_key_sha256"],
    )  # fmt: skip
    assert login.exit_code == 0, login.output

    person = fresh_person()
    register(run, person_file, person)
    receipt = consent_receipt(run, "APP-SECOND", max_checks=1)

    run.env["REFCHECK_CREDENTIALS"] = str(creds)
    refused = run(
        "check", "--consent", receipt["id"], "--person", person_file(person),
        "--request-disclosure",
    )  # fmt: skip
    assert refused.exit_code == ExitCode.CREDENTIALS, refused.output
    assert "nothing was checked" in refused.output
    del run.env["REFCHECK_CREDENTIALS"]
    # The consent's only check is still there.
    shown = run.json("consent", "show", receipt["id"], as_="org-b-hr")
    assert shown["checks_used"] == 0, shown

    export = tmp_path / "org-b-keys.export.json"
    run.env["REFCHECK_EXPORT_PASSPHRASE"] = EXPORT_SECRET
    assert run("keys", "export-org", "--out", str(export), as_="org-b-hr").exit_code == 0
    assert run("keys", "import-org", str(export), "--keys", str(keystore)).exit_code == 0
    again = run(
        "login", "--keys", str(keystore), "--client-id", added["id"],
        "--server", live.base_url, "--out", str(creds), "--overwrite",
        "--network-fingerprint", added["network_signing_key_sha256"],
    )  # fmt: skip
    assert again.exit_code == 0, again.output

    run.env["REFCHECK_CREDENTIALS"] = str(creds)
    asked = run(
        "--json", "check", "--consent", receipt["id"], "--person", person_file(person),
        "--request-disclosure",
    )  # fmt: skip
    assert asked.exit_code == ExitCode.MATCH, asked.output
    (request,) = json.loads(asked.stdout)["disclosure_requests"]
    assert request["holder_org"] == "org-a"
