"""The backup archive itself (server.backup): it opens only whole, unchanged and with its
passphrase, holds no key in the clear, and is never written without the key files its database
needs. A refused restore leaves nothing behind."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.pwhash.argon2id as argon2id
import pytest

from server.backup import (
    BackupError,
    read_passphrase,
    restore_backup,
    write_backup,
)
from server.settings import Settings
from tests.server.ops.support import deployment

PASSPHRASE = b"correct horse battery staple"
FAST: dict[str, Any] = {
    "opslimit": argon2id.OPSLIMIT_INTERACTIVE,
    "memlimit": argon2id.MEMLIMIT_INTERACTIVE,
}


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with deployment(tmp_path_factory.mktemp("archive"), "net", "sqlite") as net:
        net.init()
        yield net.data_dir


@pytest.fixture
def archive(network: Path, tmp_path: Path) -> Path:
    out = tmp_path / "net.rcb"
    write_backup(Settings(data_dir=network), out, PASSPHRASE, **FAST)
    return out


def _restore(tmp_path: Path, archive: Path, passphrase: bytes = PASSPHRASE) -> Path:
    target = tmp_path / "restored"
    restore_backup(Settings(data_dir=target), archive, passphrase)
    return target


def _nothing_written(target: Path) -> bool:
    return not (target / "refcheck.db").exists() and not any((target / "server").glob("*"))


def test_an_archive_restores_whole(tmp_path: Path, archive: Path, network: Path) -> None:
    target = _restore(tmp_path, archive)
    for key in (network / "server").iterdir():
        assert (target / "server" / key.name).read_bytes() == key.read_bytes()
        assert (target / "server" / key.name).stat().st_mode & 0o077 == 0
    assert (target / "refcheck.db").stat().st_size > 0


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (lambda size: 30, "does not open"),  # the salt: another key
        (lambda size: 20, "out of range|does not open"),  # the memory limit
        (lambda size: 50, "does not open"),  # the nonce prefix
        (lambda size: 8, "version"),  # the format version
        (lambda size: 70, "does not open"),  # inside the first frame
        (lambda size: size - 3, "changed or damaged|does not open"),  # the last frame
    ],
)
def test_a_changed_byte_anywhere_refuses_the_archive(
    tmp_path: Path, archive: Path, where, message: str
) -> None:
    data = bytearray(archive.read_bytes())
    data[where(len(data))] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=message):
        _restore(tmp_path, archive)
    assert _nothing_written(tmp_path / "restored")


def test_a_truncated_archive_or_a_wrong_passphrase_is_refused(
    tmp_path: Path, archive: Path
) -> None:
    with pytest.raises(BackupError, match="does not open"):
        _restore(tmp_path, archive, b"another passphrase entirely")
    cut = tmp_path / "cut.rcb"
    whole = archive.read_bytes()
    cut.write_bytes(whole[: len(whole) - 40])
    with pytest.raises(BackupError, match="truncated|changed or damaged"):
        _restore(tmp_path, cut)
    assert _nothing_written(tmp_path / "restored")


def test_no_backup_without_the_current_oprf_key_file(tmp_path: Path, network: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(network, copy)
    for key in (copy / "server").glob("oprf-*.key"):
        key.unlink()
    out = tmp_path / "incomplete.rcb"
    with pytest.raises(BackupError, match="no key file|no OPRF key file"):
        write_backup(Settings(data_dir=copy), out, PASSPHRASE, **FAST)
    assert not out.exists()


def test_the_passphrase_comes_from_a_file_or_the_environment_and_is_long_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REFCHECK_BACKUP_PASSPHRASE", raising=False)
    with pytest.raises(BackupError, match="no passphrase"):
        read_passphrase(None)
    monkeypatch.setenv("REFCHECK_BACKUP_PASSPHRASE", "short")
    with pytest.raises(BackupError, match="at least 12"):
        read_passphrase(None)
    monkeypatch.setenv("REFCHECK_BACKUP_PASSPHRASE", "long enough from the environment")
    assert read_passphrase(None) == b"long enough from the environment"
    path = tmp_path / "passphrase"
    path.write_text("first line is the passphrase\nnot this\n")
    assert read_passphrase(path) == b"first line is the passphrase"
