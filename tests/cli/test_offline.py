"""Commands that need no server: forms, keys, and the exit codes of bad invocations."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from client_sdk import org_key_fingerprint
from client_sdk.cli import ExitCode
from client_sdk.keystore import Keystore
from tests.cli.conftest import Run


def test_form_render_pdf_and_hash_agree(offline_run: Run, tmp_path: Path) -> None:
    out = tmp_path / "form-id.pdf"
    result = offline_run("form", "render", "--lang", "id", "--format", "pdf", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF")
    digest = offline_run.json("form", "hash", str(out))["sha256"]
    assert digest == hashlib.sha256(out.read_bytes()).hexdigest()


def test_form_render_html_to_stdout_in_english(offline_run: Run) -> None:
    result = offline_run(
        "form", "render", "--lang", "en", "--org", "Yayasan Contoh", "--purpose", "rescreening"
    )
    assert result.exit_code == 0
    assert "Six Core Principles" in result.stdout and "Yayasan Contoh" in result.stdout


def test_form_render_refuses_unknown_language(offline_run: Run) -> None:
    result = offline_run("form", "render", "--lang", "fr")
    assert result.exit_code == ExitCode.USAGE


def test_keys_init_with_passphrase_writes_a_sealed_owner_only_keystore(
    offline_run: Run, tmp_path: Path
) -> None:
    out = tmp_path / "keys.json"
    offline_run.env["REFCHECK_PASSPHRASE"] = "a long enough passphrase"
    shown = offline_run.json("keys", "init", "--out", str(out))
    assert out.stat().st_mode & 0o777 == 0o600
    stored = Keystore.load(out, passphrase="a long enough passphrase")
    assert shown["auth_public_key"] == stored.public_keys()["auth_public_key"]
    assert set(shown) >= {"x25519_public_key", "ed25519_public_key"}
    # What partners compare before `refcheck keys trust`: the fingerprint of both public keys.
    assert shown["org_fingerprint"] == org_key_fingerprint(
        bytes.fromhex(shown["x25519_public_key"]), bytes.fromhex(shown["ed25519_public_key"])
    )
    assert stored.auth_private_key.hex() not in out.read_text()
    again = offline_run("keys", "init", "--out", str(out))
    assert again.exit_code == ExitCode.CREDENTIALS  # never overwrites keys silently


def test_keys_init_without_passphrase_for_a_service_account(
    offline_run: Run, tmp_path: Path
) -> None:
    out = tmp_path / "svc.json"
    shown = offline_run.json("keys", "init", "--out", str(out), "--no-passphrase", "--auth-only")
    assert set(shown) == {"keystore", "auth_public_key"}
    assert offline_run.json("keys", "show", str(out))["auth_public_key"] == shown["auth_public_key"]


def test_wrong_passphrase_is_a_credentials_error(offline_run: Run, tmp_path: Path) -> None:
    out = tmp_path / "keys.json"
    offline_run.env["REFCHECK_PASSPHRASE"] = "right one"
    assert offline_run("keys", "init", "--out", str(out)).exit_code == 0
    offline_run.env["REFCHECK_PASSPHRASE"] = "wrong one"
    assert offline_run("keys", "show", str(out)).exit_code == ExitCode.CREDENTIALS


def test_missing_credentials_exit_code(offline_run: Run) -> None:
    result = offline_run("whoami")
    assert result.exit_code == ExitCode.CREDENTIALS
    assert "REFCHECK_CREDENTIALS" in result.output


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_group_readable_credentials_are_refused(offline_run: Run, tmp_path: Path) -> None:
    creds = tmp_path / "c.json"
    creds.write_text(json.dumps({"refcheck_credentials": 1}))
    creds.chmod(0o644)
    result = offline_run("--credentials", str(creds), "whoami")
    assert result.exit_code == ExitCode.CREDENTIALS and "chmod 600" in result.output


def test_person_as_file_and_flags_at_once_is_a_usage_error(
    offline_run: Run, tmp_path: Path
) -> None:
    creds = tmp_path / "c.json"
    creds.write_text(
        json.dumps(
            {
                "refcheck_credentials": 1,
                "client_id": "x",
                "auth_private_key": "11" * 32,
                "base_url": "http://127.0.0.1:9",
                "network_id": "demo",
                "network_signing_key_sha256": "ab" * 32,
            }
        )
    )
    creds.chmod(0o600)
    (tmp_path / "p.json").write_text("{}")
    result = offline_run(
        "--credentials",
        str(creds),
        "check",
        "--consent",
        "c",
        "--person",
        str(tmp_path / "p.json"),
        "--full-name",
        "A B",
    )
    assert result.exit_code == ExitCode.USAGE


def test_unknown_option_is_clicks_usage_exit_code(offline_run: Run) -> None:
    assert offline_run("check", "--no-such-flag").exit_code == ExitCode.USAGE


def _credentials_file(tmp_path: Path, **fields: object) -> Path:
    creds = tmp_path / "c.json"
    document = {
        "refcheck_credentials": 1,
        "client_id": "x",
        "auth_private_key": "11" * 32,
        "base_url": "http://127.0.0.1:9",
        "network_id": "demo",
        "network_signing_key_sha256": "ab" * 32,
        **fields,
    }
    creds.write_text(json.dumps({k: v for k, v in document.items() if v is not None}))
    creds.chmod(0o600)
    return creds


@pytest.mark.parametrize("missing", ["network_id", "network_signing_key_sha256"])
def test_credentials_naming_no_network_key_are_exit_5_before_any_request(
    offline_run: Run, tmp_path: Path, missing: str
) -> None:
    # Port 9 on this machine answers nothing: had a request been sent, this would be exit 4.
    result = offline_run(
        "--credentials", str(_credentials_file(tmp_path, **{missing: None})), "whoami"
    )
    assert result.exit_code == ExitCode.CREDENTIALS, result.output
    assert "--network-fingerprint" in result.output


def test_plain_http_to_another_machine_is_refused_unless_allowed(
    offline_run: Run, tmp_path: Path
) -> None:
    creds = _credentials_file(tmp_path, base_url="http://refcheck.invalid:9")
    refused = offline_run("--credentials", str(creds), "whoami")
    assert refused.exit_code == ExitCode.USAGE, refused.output
    assert "--allow-insecure-http" in refused.output
    # Allowed: the request is attempted (and fails: the host does not exist).
    allowed = offline_run("--credentials", str(creds), "--allow-insecure-http", "whoami")
    assert allowed.exit_code == ExitCode.UNAVAILABLE, allowed.output
    # https:// to the same name is never refused for its scheme.
    secure = _credentials_file(tmp_path, base_url="https://refcheck.invalid:9")
    assert offline_run("--credentials", str(secure), "whoami").exit_code == ExitCode.UNAVAILABLE
