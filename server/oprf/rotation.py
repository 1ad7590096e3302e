"""Rotating the OPRF key, exactly as docs/protocol.md ("Key rotation") says.

Why rotate at all: a member that kept the tags it once derived under consent could watch the
filter for ever, and the static Diffie-Hellman budget of RFC 9497 section 7.2 would never reset.
A rotation ends both. It is mandatory (`oprf_key_rotation_days`, at most 90) and on demand.

1. Draw `Δ`; write `skS' = Δ·skS` (with the same `w`) to `oprf-<key_id>.key.tmp`, fsync, rename,
   fsync the directory, re-read and compare. A crash here leaves an unused file, nothing else.
2. One transaction takes the current-key row `FOR UPDATE` (registrations and checks hold it
   `FOR SHARE`), multiplies every `P̂` by `Δ` (so `P' = Δ·P` and `P̂' = w·P'`), recomputes tags,
   re-seals handles, checks that no entry is left at the old `key_seq` (else it aborts),
   records the signed announcement, publishes the new key's filter, audits, and sets the row.
   That commit is the switch: every worker reads the row before using the key.
3. A check under the old key gets 409 `key-rotated` at its entries call and is re-run once.
4. After `entry_fetch_window_seconds`, the old key file is deleted (`prune_retired_keys`).

`crash_at` stops the rotation at a named step, as a crash would: the crash-safety tests use it
to show that every interruption leaves either the old key and data or the new ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from protocol.entry import open_handle, seal_handle, tag
from protocol.errors import DeserializeError
from protocol.keyops import multiply, new_scalar, scalar_product
from server.audit.services import record
from server.cases.models import Pseudonym
from server.context import AppContext
from server.db import commit_for_key_work, transaction
from server.keys import KeyFileError, OprfKey, oprf_key_file, read_oprf_key
from server.notifications.services import Event, notify
from server.oprf.models import CurrentOprfKey, OprfKeyAnnouncement
from server.oprf.services import announce, current_key

log = logging.getLogger("refcheck.server.oprf")

#: The steps, in order, at which `crash_at` can stop a rotation.
STEPS = (
    "tmp-written",
    "renamed",
    "entries-rekeyed",
    "announced",
    "published",
    "switched",
    "committed",
    "old-file-deleted",
)

#: Entries re-keyed per statement batch: bounds memory at a million entries.
_BATCH = 2000


class SimulatedCrash(BaseException):
    """Raised at `crash_at`: a BaseException, so no handler on the way treats it as an error it
    could recover from, as none could recover from a power cut."""


class RotationAborted(Exception):
    """The rotation's transaction found something wrong and changed nothing."""


@dataclass(frozen=True)
class Rotation:
    old_key_id: str
    new_key_id: str
    key_seq: int
    entries: int


def _step(name: str, crash_at: str | None, hook: Callable[[str], None] | None) -> None:
    if hook is not None:
        hook(name)
    if crash_at == name:
        raise SimulatedCrash(name)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_key_file(
    key_dir: Path,
    key: OprfKey,
    *,
    crash_at: str | None = None,
    hook: Callable[[str], None] | None = None,
) -> Path:
    """Step 1: tmp, fsync, rename, fsync the directory, re-read and compare."""
    path = key_dir / oprf_key_file(key.key_id)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write((key.secret + key.wrap).hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    _step("tmp-written", crash_at, hook)
    os.replace(tmp, path)
    _fsync_dir(key_dir)
    if read_oprf_key(path).public != key.public:
        raise KeyFileError(f"key file {path} does not read back as written")
    _step("renamed", crash_at, hook)
    return path


def _rekey_entries(session: Session, old: OprfKey, delta: bytes, old_seq: int) -> int:
    """Move every entry of `old_seq` to the next key: `P̂' = Δ·P̂`, new tag, handle re-sealed."""
    done = 0
    last = ""
    while True:
        rows = session.execute(
            select(Pseudonym.id, Pseudonym.p_hat, Pseudonym.sealed_handle)
            .where(Pseudonym.key_seq == old_seq, Pseudonym.id > last)
            .order_by(Pseudonym.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return done
        for entry_id, p_hat, sealed in rows:
            p_old = multiply(old.unwrap, bytes(p_hat))
            try:
                handle = open_handle(p_old, bytes(sealed))
            except DeserializeError:
                handle = None
            if handle is None:
                raise RotationAborted("an entry's handle does not open with its key: aborting")
            p_new = multiply(delta, p_old)
            session.execute(
                update(Pseudonym)
                .where(Pseudonym.id == entry_id)
                .values(
                    key_seq=old_seq + 1,
                    p_hat=multiply(delta, bytes(p_hat)),
                    tag=tag(p_new),
                    sealed_handle=seal_handle(p_new, handle),
                )
            )
            done += 1
        last = rows[-1][0]


def rotate(
    ctx: AppContext,
    *,
    crash_at: str | None = None,
    hook: Callable[[str], None] | None = None,
) -> Rotation:
    """Rotate the OPRF key (steps 1 and 2, and step 4 for files whose window has passed)."""
    from server.filter.services import publish

    if crash_at is not None and crash_at not in STEPS:
        raise ValueError(f"unknown step {crash_at!r}")
    key_dir = ctx.settings.server_key_dir
    with transaction(ctx.sessions) as session:
        old = current_key(session, ctx)
        old_seq = ctx.keys.oprf_key_seq
    delta = new_scalar()
    new = OprfKey(scalar_product(delta, old.secret), old.wrap)
    write_key_file(key_dir, new, crash_at=crash_at, hook=hook)

    with transaction(ctx.sessions) as session:
        locked = current_key(session, ctx, lock="update")
        if ctx.keys.oprf_key_seq != old_seq or locked.key_id != old.key_id:
            raise RotationAborted("another rotation switched the key first; nothing changed")
        entries = _rekey_entries(session, old, delta, old_seq)
        left = session.scalar(
            select(func.count()).select_from(Pseudonym).where(Pseudonym.key_seq != old_seq + 1)
        )
        if left:
            raise RotationAborted(f"{left} entries are not under the new key: aborting")
        _step("entries-rekeyed", crash_at, hook)
        announce(session, ctx, old_seq + 1, new, prev_key_id=old.key_id)
        session.execute(
            update(CurrentOprfKey)
            .where(CurrentOprfKey.id == 1)
            .values(key_seq=old_seq + 1, key_id=new.key_id, switched_at=ctx.now())
        )
        session.flush()
        _step("announced", crash_at, hook)
        try:
            # From here this transaction uses the new key: the filter is published under it.
            ctx.keys.oprf_ring.set_current(old_seq + 1, new.key_id)
            publish(session, ctx)
            _step("published", crash_at, hook)
            record(
                session,
                ctx,
                None,
                "oprf.rotate",
                object_type="oprf_key",
                object_id=new.key_id,
                details={"key_seq": old_seq + 1, "prev_key_id": old.key_id},
            )
            notify(
                session,
                ctx,
                Event.KEY_ROTATED,
                facts={"key_seq": old_seq + 1, "key_id": new.key_id},
            )
            _step("switched", crash_at, hook)
        except BaseException:
            # Rolled back: this worker goes back to the key in force.
            ctx.keys.oprf_ring.set_current(old_seq, old.key_id)
            raise
    _step("committed", crash_at, hook)
    log.info("OPRF key rotated to key_seq %d (%s)", old_seq + 1, new.key_id)
    prune_retired_keys(ctx, crash_at=crash_at, hook=hook)
    return Rotation(old.key_id, new.key_id, old_seq + 1, entries)


def prune_retired_keys(
    ctx: AppContext,
    *,
    crash_at: str | None = None,
    hook: Callable[[str], None] | None = None,
) -> list[str]:
    """Delete key files of keys switched away from more than `entry_fetch_window_seconds` ago,
    and files never announced (left by a crash before the switch) older than that window.

    The current key's file is never deleted. Backups carry their own key files.
    """
    key_dir = ctx.settings.server_key_dir
    window = timedelta(seconds=ctx.policy.entry_fetch_window_seconds)
    now = ctx.now()
    with transaction(ctx.sessions) as session:
        current = current_key(session, ctx)
        switched_at = session.scalar(select(CurrentOprfKey.switched_at))
        announced = set(session.scalars(select(OprfKeyAnnouncement.key_id)))
    deleted: list[str] = []
    for path in sorted(key_dir.glob("oprf-*.key")):
        key_id = path.name.removeprefix("oprf-").removesuffix(".key")
        if key_id == current.key_id:
            continue
        if key_id in announced:
            retired = switched_at is not None and now >= switched_at + window
        else:
            age = now.timestamp() - path.stat().st_mtime
            retired = age >= window.total_seconds()
        if retired:
            path.unlink()
            ctx.keys.oprf_ring.forget(key_id)
            deleted.append(key_id)
    if deleted:
        _fsync_dir(key_dir)
        _step("old-file-deleted", crash_at, hook)
    return deleted


def rotation_due(session: Session, ctx: AppContext) -> bool:
    """The key in force is older than `oprf_key_rotation_days`."""
    current_key(session, ctx)
    switched_at = session.scalar(select(CurrentOprfKey.switched_at))
    if switched_at is None:
        return False
    return ctx.now() >= switched_at + timedelta(days=ctx.policy.oprf_key_rotation_days)


def rotation_job(session: Session, ctx: AppContext) -> None:
    """`server.jobs` entry point: rotate when due, and prune retired key files. The rotation
    runs in transactions of its own (the key file must be durable before the switch), and two
    workers racing here are safe: the second finds the key already switched and aborts."""
    due = rotation_due(session, ctx)
    # End the job's transaction first: the rotation writes in transactions of its own, and on
    # SQLite a write still open here (the first key's announcement) would lock them out.
    commit_for_key_work(session)
    if due:
        try:
            rotate(ctx)
        except RotationAborted as exc:
            log.info("rotation skipped: %s", exc)
    else:
        prune_retired_keys(ctx)
