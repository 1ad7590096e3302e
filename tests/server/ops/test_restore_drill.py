"""The restore drill (docs/operations.md, "Backups and the restore drill"), as an operator runs
it, on SQLite and on PostgreSQL: register, back up while the server runs, register more,
restore into a new data dir (and a new database), and then:

* the first registration still matches, through the real SDK, with the same key files;
* the later one is gone;
* `restore` verified the audit trail, and a member's tree head kept from before the backup is
  consistent with the restored log, while one kept from after it reports the rollback
  (`LogInconsistent`), as it should: the restored server must tell its members.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from client_sdk import CheckStatus, Client, LogInconsistent
from client_sdk.transparency import TreeHeadStore, verify_log
from tests.server.ops.support import BACKENDS, check_status, deployment, person, register

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", BACKENDS)
def test_restore_drill_brings_back_the_first_registration_and_not_the_later_one(
    tmp_path: Path, backend: str
) -> None:
    first, later = person(1), person(2)
    archive = tmp_path / "network.backup"
    before, after = TreeHeadStore(tmp_path / "before.json"), TreeHeadStore(tmp_path / "after.json")
    with deployment(tmp_path, "old", backend) as old:
        old.init()
        pins = tmp_path / "pins-old.json"
        with old.serve():
            with Client.from_credentials_file(old.credentials("org-a-focal"), pin_file=pins) as a:
                register(a, first)
            old.cli("audit", "checkpoint", "--data-dir", str(old.data_dir), *old.db_args())
            with Client.from_credentials_file(old.credentials("org-b-hr"), pin_file=pins) as hr:
                verify_log(hr, before)
                # Online: the server goes on answering while the snapshot is taken.
                done = old.cli(
                    "backup", "--data-dir", str(old.data_dir), "--out", str(archive), *old.db_args()
                )
                assert "backup written" in done.stdout
                with Client.from_credentials_file(
                    old.credentials("org-a-focal"), pin_file=pins
                ) as a:
                    register(a, later)
                assert check_status(hr, later) == CheckStatus.MATCH
                old.cli("audit", "checkpoint", "--data-dir", str(old.data_dir), *old.db_args())
                verify_log(hr, after)
        port = old.port
        credentials = old.credentials

        # The archive holds no key in the clear (nor the database's text).
        raw = archive.read_bytes()
        for key_file in (old.data_dir / "server").glob("*.key"):
            secret = key_file.read_text().strip()
            assert secret.encode() not in raw and bytes.fromhex(secret) not in raw
        assert b"SQLite format" not in raw and b"organisations" not in raw

    # The old machine is gone (its data dir, its database); the new one listens where it did.
    with deployment(tmp_path, "new", backend, port=port) as new:
        restored = new.cli("restore", str(archive), "--data-dir", str(new.data_dir), *new.db_args())
        assert "audit trail intact" in restored.stdout
        assert {p.name for p in (new.data_dir / "server").iterdir()} == {
            p.name for p in (tmp_path / "old" / "server").iterdir()
        }
        verified = new.cli("audit", "verify", "--data-dir", str(new.data_dir), *new.db_args())
        assert "audit trail intact" in verified.stdout
        pins = tmp_path / "pins-new.json"
        with new.serve():
            with Client.from_credentials_file(credentials("org-b-hr"), pin_file=pins) as hr:
                assert check_status(hr, first) == CheckStatus.MATCH
                assert check_status(hr, later) == CheckStatus.NO_MATCH
                # Consistent with what members saw up to the backup...
                verify_log(hr, before)
                # ...and the rollback is visible to one that saw more.
                with pytest.raises(LogInconsistent):
                    verify_log(hr, after)


def test_restore_refuses_a_wrong_passphrase_and_a_used_data_dir(tmp_path: Path) -> None:
    with deployment(tmp_path, "old", "sqlite") as old:
        old.init()
        archive = tmp_path / "network.backup"
        old.cli("backup", "--data-dir", str(old.data_dir), "--out", str(archive))
        # A second backup never overwrites the first.
        again = old.cli(
            "backup", "--data-dir", str(old.data_dir), "--out", str(archive), check=False
        )
        assert again.returncode == 1 and "exists" in again.stderr
        wrong = tmp_path / "wrong-passphrase"
        wrong.write_text("not the passphrase at all\n")
        target = tmp_path / "new"
        refused = old.cli(
            "restore",
            str(archive),
            "--data-dir",
            str(target),
            "--passphrase-file",
            str(wrong),
            check=False,
        )
        assert refused.returncode == 1 and "does not open" in refused.stderr
        assert not (target / "refcheck.db").exists()
        assert not any((target / "server").glob("*")) if (target / "server").exists() else True
        # Into the live data dir: refused, nothing touched.
        onto = old.cli("restore", str(archive), "--data-dir", str(old.data_dir), check=False)
        assert onto.returncode == 1 and "new data directory" in onto.stderr
