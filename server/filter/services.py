"""Publishing the registry filter and serving it (docs/protocol.md, "The registry filter").

The set is the distinct `prefix` values (the first 6 bytes of the tag) of every entry of a live
case under the current key, topped up with **fillers** to exactly `keys_per_check` values per
live case. Without the fillers, one person registered by two members would add fewer values
than a registration does, and a delta would show it; with them every registration adds the same
number, and a checker cannot tell a filler from a value.

Who calls what:
- `publish(session, ctx)` signs and stores a new revision now, in the caller's transaction
  (flushes only): the CLI, the periodic job, a key rotation.
- `publish_if_immediate(session, ctx)` from every transaction that changes the set
  (registration, withdrawal, the retention sweep): publishes when `filter_publish_seconds` is 0.
- `current_filter_header(session, ctx)` on the check path: the framed header of the newest
  revision, re-published first when there is none, when it is for another key, when it was
  issued before today's retention cut or when it is due. One indexed read and a dictionary
  look-up otherwise.
- `filter_response(...)` and `fillers(...)` for the routes.

Concurrency: a publication locks the one `filter_head` row (on SQLite the transaction already
holds the database's write lock), so publications by several workers, the CLI and the job take
turns; a re-publication "because it is due" re-checks under that lock, so a second worker that
waited finds the revision fresh and does nothing. Nothing here writes to the audit trail: a
publication's transaction may already hold the audit head (a registration), and taking the two
locks in both orders could deadlock.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from protocol import entry as entry_crypto
from protocol import filter as filter_codec
from protocol.messages import Filler, Fillers
from protocol.signed import SignedObject, format_time, parse, parse_framed, sign
from server.cases.models import Case, CaseStatus, Pseudonym
from server.context import AppContext
from server.db import transaction
from server.filter.models import FilterHead, FilterRevision
from server.oprf.services import current_key
from server.transparency.services import log_signed_object, with_cosignatures

log = logging.getLogger("refcheck.server.filter")

VALUE_SIZE: Final = filter_codec.VALUE_SIZE
ZERO_SHA256: Final = "0" * 64
#: A client may ask for a delta from any revision published this recently under the current key.
DELTA_WINDOW: Final = timedelta(hours=24)
#: However often the policy publishes, a header is re-signed at least this often (and the
#: shortest expiry is twice it), so a demo network's filter never expires under a client.
MIN_INTERVAL_SECONDS: Final = 60

_HEAD_ID = 1
_LOCK_HEAD = select(FilterHead.last_revision).where(FilterHead.id == _HEAD_ID).with_for_update()
# Two first publications at once must not both create the head (the audit head's recipe).
_CREATE_HEAD = text(
    "INSERT INTO filter_head (id, last_revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING"
)
_NEWEST_ID = select(FilterRevision.id).order_by(FilterRevision.revision.desc()).limit(1)


# --- the set ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterSet:
    """What a revision publishes: the sorted values, the fillers' `k` among them, and the
    number of live cases the size is derived from."""

    values: list[int]
    filler_ks: list[int]
    live_cases: int


def interval_seconds(ctx: AppContext) -> int:
    """The longest a header goes without being re-signed; it expires after twice this."""
    return max(ctx.policy.filter_publish_seconds, MIN_INTERVAL_SECONDS)


def _live(today: date) -> ColumnElement[bool]:
    # Holder status is not part of liveness (docs/protocol.md): it is applied at the entries
    # call, so a member's suspension does not show as a drop in the published filter.
    return and_(Case.status == CaseStatus.ACTIVE, Case.retention_until >= today)


class _FillerPrefixes:
    """`prefix(skS·HashToGroup(filler_input(k)))` for k = 1, 2, ..., computed once per key.

    A filler costs a hash to the group and a scalar multiplication; the same `k` gives the same
    prefix until the key changes, so each is computed once per process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key_id: str | None = None
        self._prefixes: list[int] = []

    def first(self, ctx: AppContext, n: int) -> list[int]:
        """The prefixes of k = 1 .. n (index k - 1)."""
        with self._lock:
            if self._key_id != ctx.keys.oprf_key_id:
                self._key_id, self._prefixes = ctx.keys.oprf_key_id, []
            if len(self._prefixes) < n:
                # At least doubled each time, so topping up one by one stays linear.
                ks = range(len(self._prefixes) + 1, max(n, 2 * len(self._prefixes)) + 1)
                points = entry_crypto.evaluate_inputs(
                    ctx.keys.oprf_secret, [entry_crypto.filler_input(k) for k in ks]
                )
                self._prefixes += [entry_crypto.prefix(point) for point in points]
            return self._prefixes[:n]


_FILLERS = _FillerPrefixes()


def compute_set(session: Session, ctx: AppContext) -> FilterSet:
    """The set as of now: every stored entry of a live case under the current key, then the
    first fillers (k = 1, 2, ...) whose prefix is not already present, as many as bring it to
    `keys_per_check` values per live case."""
    today = ctx.now().date()
    key_seq = ctx.keys.oprf_key_seq
    tags = session.scalars(
        select(Pseudonym.tag)
        .join(Case, Case.id == Pseudonym.case_id)
        .where(Pseudonym.key_seq == key_seq, _live(today))
    )
    present = {int.from_bytes(tag[:VALUE_SIZE], "big") for tag in tags}
    live_cases = session.scalar(select(func.count()).select_from(Case).where(_live(today))) or 0
    missing = ctx.policy.keys_per_check * live_cases - len(present)
    filler_ks: list[int] = []
    if missing < 0:
        # More distinct values than live cases times keys_per_check: cases registered under a
        # larger `keys_per_check`. The filter stays correct (every entry is in it); only its
        # size no longer hides duplicates.
        log.warning("filter holds %d values more than keys_per_check per live case", -missing)
    checked = 0
    while len(filler_ks) < missing:
        # Enough candidates for what is missing, plus a few for collisions (which a 48-bit
        # prefix makes rare).
        wanted = checked + (missing - len(filler_ks)) + 8
        for k, value in enumerate(_FILLERS.first(ctx, wanted)[checked:], start=checked + 1):
            if value not in present:
                present.add(value)
                filler_ks.append(k)
                if len(filler_ks) == missing:
                    break
        checked = wanted
    return FilterSet(values=sorted(present), filler_ks=filler_ks, live_cases=live_cases)


# --- publication -----------------------------------------------------------------------------


def _pack(values: Sequence[int], size: int = VALUE_SIZE) -> bytes:
    return b"".join([value.to_bytes(size, "big") for value in values])


def _unpack(data: bytes | None, size: int = VALUE_SIZE) -> list[int]:
    if not data:
        return []
    return [int.from_bytes(data[i : i + size], "big") for i in range(0, len(data), size)]


def _locked_head(session: Session) -> int:
    last = session.execute(_LOCK_HEAD).scalar()
    if last is None:
        session.execute(_CREATE_HEAD)
        last = session.execute(_LOCK_HEAD).scalar_one()
    return int(last)


def publish(session: Session, ctx: AppContext) -> FilterRevision:
    """Compute, sign and store a new revision now, in the caller's transaction (flushed, not
    committed); superseded revisions lose their value lists and old ones are pruned."""
    current_key(session, ctx)  # the key in force, as the current-key row says
    last_revision = _locked_head(session)
    previous = session.scalars(
        select(FilterRevision).order_by(FilterRevision.revision.desc()).limit(1)
    ).first()
    current = compute_set(session, ctx)
    keys = ctx.keys
    issued_at = ctx.now().replace(microsecond=0)
    expires_at = issued_at + timedelta(seconds=2 * interval_seconds(ctx))
    revision = last_revision + 1
    sha256 = filter_codec.set_sha256(current.values).hex()
    header = sign(
        keys.signing_key,
        {
            "type": "filter",
            "network_id": keys.network_id,
            "issued_at": format_time(issued_at),
            "expires_at": format_time(expires_at),
            "key_id": keys.oprf_key_id,
            "key_seq": keys.oprf_key_seq,
            "revision": revision,
            "count": len(current.values),
            "p": filter_codec.rice_parameter(len(current.values)),
            "sha256": sha256,
            "prev_sha256": previous.sha256 if previous is not None else ZERO_SHA256,
        },
    )
    added: bytes | None = None
    removed: bytes | None = None
    if previous is not None:
        if previous.key_seq == keys.oprf_key_seq and previous.value_list is not None:
            before = set(_unpack(previous.value_list))
            after = set(current.values)
            added = _pack(sorted(after - before))
            removed = _pack(sorted(before - after))
        previous.value_list = None
        previous.filler_ks = None
    row = FilterRevision(
        revision=revision,
        key_id=keys.oprf_key_id,
        key_seq=keys.oprf_key_seq,
        issued_at=issued_at,
        expires_at=expires_at,
        value_count=len(current.values),
        live_cases=current.live_cases,
        sha256=sha256,
        header=header.framed(),
        added=added,
        removed=removed,
        value_list=_pack(current.values),
        filler_ks=_pack(current.filler_ks, 4),
    )
    session.add(row)
    session.execute(
        update(FilterHead).where(FilterHead.id == _HEAD_ID).values(last_revision=revision)
    )
    # Every published header is a log entry, so a witness can check it against the log's
    # live cases and a member can prove which filter it was shown.
    log_signed_object(session, ctx, header, object_id=str(revision))
    session.flush()
    _prune(session, ctx, row)
    return row


def _prune(session: Session, ctx: AppContext, newest: FilterRevision) -> None:
    """Delete revisions no delta can start from any more: issued more than 24 hours ago, or
    under another key."""
    session.execute(
        delete(FilterRevision).where(
            FilterRevision.revision < newest.revision,
            or_(
                FilterRevision.issued_at < ctx.now() - DELTA_WINDOW,
                FilterRevision.key_seq != newest.key_seq,
            ),
        )
    )


def publish_if_immediate(session: Session, ctx: AppContext) -> FilterRevision | None:
    """Publish now if the policy says every change is published at once
    (`filter_publish_seconds = 0`); call it in every transaction that changes the set."""
    if ctx.policy.filter_publish_seconds == 0:
        return publish(session, ctx)
    return None


# --- the newest revision, cached -------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """What the hot path needs of a revision; cached per row id (rows never change)."""

    id: str
    revision: int
    key_id: str
    key_seq: int
    issued_at: datetime
    expires_at: datetime
    sha256: str
    header: bytes

    @property
    def etag(self) -> str:
        return f'"{self.key_id}:{self.revision}:{self.sha256}"'

    def signed(self) -> SignedObject:
        return parse(self.header)


class _Cache:
    """A few entries, newest last; shared by the threads of one worker process."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_PUBLISHED = _Cache(8)
# Full bodies are the size of the filter (megabytes at a million values): keep two.
_FULL_BODIES = _Cache(2)
_DELTA_BODIES = _Cache(64)


def _published(session: Session, revision_id: str) -> Published:
    cached = _PUBLISHED.get(revision_id)
    if cached is None:
        row = session.execute(
            select(
                FilterRevision.revision,
                FilterRevision.key_id,
                FilterRevision.key_seq,
                FilterRevision.issued_at,
                FilterRevision.expires_at,
                FilterRevision.sha256,
                FilterRevision.header,
            ).where(FilterRevision.id == revision_id)
        ).one()
        cached = Published(revision_id, *row)
        _PUBLISHED.put(revision_id, cached)
    assert isinstance(cached, Published)
    return cached


def _newest(session: Session) -> Published | None:
    revision_id = session.connection().execute(_NEWEST_ID).scalar()
    return None if revision_id is None else _published(session, revision_id)


def needs_publication(ctx: AppContext, newest: Published | None) -> bool:
    """Whether a request must not be answered with `newest`: there is none, it is for another
    key, it was issued before today's retention cut (a case past its retention date is still
    in it), or it is due (so an answer always leaves a client at least one interval before the
    header expires)."""
    if newest is None:
        return True
    keys = ctx.keys
    if newest.key_seq != keys.oprf_key_seq or newest.key_id != keys.oprf_key_id:
        return True
    now = ctx.now()
    if newest.issued_at.date() < now.date():
        return True
    return now >= newest.issued_at + timedelta(seconds=interval_seconds(ctx))


def ensure_current(session: Session, ctx: AppContext, *, key_read: bool = False) -> Published:
    """The newest revision, published first if `needs_publication` says so (re-checked under
    the head lock, so concurrent callers publish once). `key_read`: the caller has just read
    the current-key row in this transaction (`server.oprf.services.key_in_force`), so it is
    not read again."""
    if not key_read:
        current_key(session, ctx)
    newest = _newest(session)
    if not needs_publication(ctx, newest):
        assert newest is not None
        return newest
    _locked_head(session)
    newest = _newest(session)
    if needs_publication(ctx, newest):
        return _published(session, publish(session, ctx).id)
    assert newest is not None
    return newest


def publish_for_reading(session: Session, ctx: AppContext) -> None:
    """For a request that only reads (`GET /v1/registry/filter`): when the newest revision must
    not be served, publish in a transaction of its own and commit it there, then end the
    request's transaction so its next read sees the new revision.

    Why its own commit: the request's transaction begins as a read (on SQLite it takes no lock,
    so a client fetching the filter never queues behind registrations); a read transaction
    cannot become a write once another writer has committed since it began.
    """
    current_key(session, ctx)
    if not needs_publication(ctx, _newest(session)):
        return
    session.rollback()
    with transaction(ctx.sessions) as writer:
        ensure_current(writer, ctx)


def current_filter_header(session: Session, ctx: AppContext, *, key_read: bool = False) -> bytes:
    """The framed signed `filter` header of the newest revision, for the check answer, with
    the witnesses' cosignatures when the policy names witnesses (`key_read` as for
    `ensure_current`)."""
    header = ensure_current(session, ctx, key_read=key_read).header
    if not ctx.policy.witnesses:
        return header
    return with_cosignatures(session, parse(header)).framed()


def cosigned_body(session: Session, ctx: AppContext, body: bytes) -> bytes:
    """A full or delta body whose signed header carries the witnesses' cosignatures (they
    arrive after publication, so the cached body is spliced, not rebuilt)."""
    if not ctx.policy.witnesses:
        return body
    magic = len(filter_codec.FULL_MAGIC)  # RCF2 and RCD2 have one length
    header, end = parse_framed(body, magic)
    return body[:magic] + with_cosignatures(session, header).framed() + body[end:]


def publication_due(ctx: AppContext, newest: Published | None) -> bool:
    """The periodic job's test: publish when a request would (`needs_publication`), and also
    when the revision falls due before the job runs again, so publication keeps to the interval
    instead of waiting for a request to find it overdue; but never a revision younger than half
    the interval, which another worker's run of the job has just published."""
    if needs_publication(ctx, newest):
        return True
    assert newest is not None
    interval = interval_seconds(ctx)
    ahead = ctx.settings.job_interval_seconds
    threshold = max(interval - ahead, interval // 2)
    return ctx.now() >= newest.issued_at + timedelta(seconds=threshold)


def publication_job(session: Session, ctx: AppContext) -> None:
    """`server.jobs` entry point: publish every `filter_publish_seconds` even when nothing
    changed, and at the day's retention cut. Safe with several workers: the test is repeated
    under the head lock."""
    current_key(session, ctx)
    if not publication_due(ctx, _newest(session)):
        return
    _locked_head(session)
    if publication_due(ctx, _newest(session)):
        publish(session, ctx)


# --- serving ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterResponse:
    """A body to send (`body is None`: the client's copy is current, answer 304)."""

    etag: str
    body: bytes | None
    delta: bool = False


def _full_body(session: Session) -> tuple[Published, bytes]:
    """The newest revision and its `RCF2` body, read in one statement: a publication between
    two reads would have emptied the value list of the revision read first."""
    newest = _newest(session)
    if newest is not None:
        body = _FULL_BODIES.get(newest.id)
        if body is not None:
            assert isinstance(body, bytes)
            return newest, body
    revision_id, value_list = session.execute(
        select(FilterRevision.id, FilterRevision.value_list)
        .order_by(FilterRevision.revision.desc())
        .limit(1)
    ).one()
    newest = _published(session, revision_id)
    body = filter_codec.full_body(newest.signed(), _unpack(value_list))
    _FULL_BODIES.put(newest.id, body)
    return newest, body


def _delta_since(session: Session, ctx: AppContext, newest: Published, since: str) -> bytes | None:
    """The `RCD2` body from the newest revision under the current key whose list's hash is
    `since` and that was issued in the last 24 hours; None when there is none."""
    cached = _DELTA_BODIES.get((newest.id, since))
    if cached is not None:
        assert isinstance(cached, bytes)
        return cached
    start_row = session.execute(
        select(FilterRevision.revision, FilterRevision.value_count)
        .where(
            FilterRevision.key_seq == newest.key_seq,
            FilterRevision.sha256 == since,
            FilterRevision.issued_at >= ctx.now() - DELTA_WINDOW,
            FilterRevision.revision <= newest.revision,
        )
        .order_by(FilterRevision.revision.desc())
        .limit(1)
    ).first()
    if start_row is None:
        return None
    start, start_count = start_row
    steps = session.execute(
        select(FilterRevision.added, FilterRevision.removed)
        .where(
            FilterRevision.revision > start,
            FilterRevision.revision <= newest.revision,
        )
        .order_by(FilterRevision.revision)
    ).all()
    if len(steps) != newest.revision - start:
        return None  # revision numbers are contiguous: a missing step means a pruned one
    added: set[int] = set()
    removed: set[int] = set()
    for step_added, step_removed in steps:
        if step_added is None or step_removed is None:
            return None  # a revision after `start` began a new key: no delta crosses it
        # Each step is exact against the list before it, so a value added back after being
        # removed (or the reverse) cancels out.
        for value in _unpack(step_added):
            if value in removed:
                removed.discard(value)
            else:
                added.add(value)
        for value in _unpack(step_removed):
            if value in added:
                added.discard(value)
            else:
                removed.add(value)
    fields = newest.signed().fields
    if start_count + len(added) - len(removed) != fields["count"]:
        # Cannot happen while every step is exact; a full filter is right whatever happened.
        log.error("filter delta from revision %d does not add up; serving the full filter", start)
        return None
    header = sign(
        ctx.keys.signing_key,
        {
            "type": "filter-delta",
            "network_id": fields["network_id"],
            # The revision's own times: the delta brings a client to exactly that revision, and
            # signing the same fields again gives the same bytes (Ed25519 is deterministic).
            "issued_at": fields["issued_at"],
            "expires_at": fields["expires_at"],
            "key_id": newest.key_id,
            "key_seq": newest.key_seq,
            "revision": newest.revision,
            "since_sha256": since,
            "added": len(added),
            "removed": len(removed),
            "count": fields["count"],
            "sha256": newest.sha256,
        },
    )
    body = filter_codec.delta_body(header, sorted(added), sorted(removed))
    _DELTA_BODIES.put((newest.id, since), body)
    return body


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def filter_response(
    session: Session,
    ctx: AppContext,
    *,
    if_none_match: str | None = None,
    since_sha256: str | None = None,
) -> FilterResponse:
    """What `GET /v1/registry/filter` answers: nothing new (304), a delta from `since_sha256`
    when one can be made, or the full filter."""
    newest = ensure_current(session, ctx)
    if _matches(if_none_match, newest.etag):
        return FilterResponse(newest.etag, None)
    if since_sha256 is not None:
        delta = _delta_since(session, ctx, newest, since_sha256)
        if delta is not None:
            return FilterResponse(newest.etag, delta, delta=True)
    served, body = _full_body(session)
    return FilterResponse(served.etag, body)


def fillers(session: Session, ctx: AppContext) -> Fillers:
    """Every filler of the newest revision with its point and one batch DLEQ proof, so a
    witness or auditor can check the filter's size and that no filler is planted."""
    ensure_current(session, ctx)
    # One statement: a publication in between would have emptied the list read second.
    revision_id, ks_blob, live_cases = session.execute(
        select(FilterRevision.id, FilterRevision.filler_ks, FilterRevision.live_cases)
        .order_by(FilterRevision.revision.desc())
        .limit(1)
    ).one()
    newest = _published(session, revision_id)
    ks = _unpack(ks_blob, 4)
    items: list[Filler] = []
    proof: bytes | None = None
    if ks:
        inputs = [entry_crypto.filler_input(k) for k in ks]
        points = entry_crypto.evaluate_inputs(ctx.keys.oprf_secret, inputs)
        proof = entry_crypto.prove_evaluations(ctx.keys.oprf_secret, inputs, points)
        items = [Filler(k=k, point=point.hex()) for k, point in zip(ks, points, strict=True)]
    return Fillers(
        key_id=newest.key_id,
        revision=newest.revision,
        live_cases=live_cases,
        items=items,
        proof=proof.hex() if proof is not None else None,
    )


__all__ = [
    "DELTA_WINDOW",
    "FilterResponse",
    "FilterSet",
    "Published",
    "compute_set",
    "current_filter_header",
    "ensure_current",
    "fillers",
    "filter_response",
    "publication_job",
    "publish",
    "publish_if_immediate",
]
