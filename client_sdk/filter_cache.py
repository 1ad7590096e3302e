"""The registry filter on the client: kept current, checked, and looked up locally.

A check's answer names a signed `filter` header (docs/protocol.md, "The registry filter"); the
SDK brings its copy of the filter to exactly that header's `sha256` and tests the applicant's
keys against it, so the server hears nothing more about an applicant who is not registered.
Everything here is I/O-free: `client_sdk._core` fetches the bodies and hands them over.

What a filter must satisfy before a lookup uses it, and why (each refusal is a
`ProtocolViolation` subclass, never retried):

* signed by the pinned network signing key, for this network, of type `filter` (a delta: of type
  `filter-delta`), cosigned by every witness the policy names: `SignatureInvalid`;
* not expired (`expires_at` in the future by the client's clock): a server replaying an old
  filter, without the entries registered since, would make a registered person look clean:
  `FilterExpired`;
* for the check's OPRF key (`key_id`, `key_seq`): values under another key cannot hold the
  check's pseudonyms: `FilterWrongKey`;
* its `(key_seq, revision)` not lower than any this client has seen: `FilterRollback`;
* its values hashing to the header's `sha256`; a delta is applied only to the list it was made
  against, and its result must hash to the check's header (`FilterRejected`).

The cache lives in memory, one per client (so `check_many` and `rescreen` share it), and
optionally in a file beside the pin file that holds only the filter: `RCFC`, the framed signed
`filter` header vouching for the values, then the values. The file is a cache, not a trust
anchor: its header is verified again when it is read, and a lookup still needs the values to
hash to the header of the check that is being answered.

Representation: the filter is held as its canonical list, the sorted values as 6-byte
big-endian integers back to back, which is exactly what a header's `sha256` is over. A lookup
is a binary search in it; a delta is one splice and one SHA-256 of the result (milliseconds at
a million values, where rebuilding and re-sorting a list of integers takes seconds); the file
is that list as it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from client_sdk.errors import (
    FilterExpired,
    FilterRejected,
    FilterRollback,
    FilterWrongKey,
    InvalidResponse,
    ProtocolViolation,
    SignatureInvalid,
)
from client_sdk.pinning import NetworkState, OprfKey
from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.filter import VALUE_SIZE, parse_delta, parse_full
from protocol.signed import SignedObject, parse, parse_framed, parse_time

__all__ = [
    "FILE_MAGIC",
    "FILTER_PATH",
    "FilterCache",
    "FilterHeader",
    "FilterSnapshot",
    "canonical",
]

log = logging.getLogger("refcheck.sdk")

FILTER_PATH = "/v1/registry/filter"

#: The magic of the cache file: the framed vouching header, then the canonical list.
FILE_MAGIC = b"RCFC"


def canonical(values: Sequence[int]) -> bytes:
    """The canonical list of ascending distinct values (6 bytes each, big-endian)."""
    return b"".join([v.to_bytes(VALUE_SIZE, "big") for v in values])


def _find(data: bytes, key: bytes) -> int:
    """Index of the first value >= `key` in a canonical list (bytes compare as the numbers do:
    same length, big-endian)."""
    lo, hi = 0, len(data) // VALUE_SIZE
    while lo < hi:
        mid = (lo + hi) // 2
        if data[VALUE_SIZE * mid : VALUE_SIZE * (mid + 1)] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _splice(data: bytes, added: Sequence[int], removed: Sequence[int]) -> bytes:
    """The canonical list after a delta, or FilterRejected when the delta adds a value that is
    present or removes one that is not (it was made against another list). `added` and
    `removed` are ascending and disjoint (`parse_delta` checks it)."""
    changes = sorted([(v, True) for v in added] + [(v, False) for v in removed])
    parts: list[bytes] = []
    done = 0  # byte offset up to which `data` is copied
    for value, adding in changes:
        key = value.to_bytes(VALUE_SIZE, "big")
        at = VALUE_SIZE * _find(data, key)
        present = data[at : at + VALUE_SIZE] == key
        if present == adding:
            raise FilterRejected("the filter delta does not apply to the filter it names")
        parts.append(data[done:at])
        if adding:
            parts.append(key)
            done = at
        else:
            done = at + VALUE_SIZE
    parts.append(data[done:])
    return b"".join(parts)


@dataclass(frozen=True)
class FilterHeader:
    """A verified `filter` (or `filter-delta`) header and the numbers a client acts on."""

    signed: SignedObject = field(repr=False)
    key_id: str
    key_seq: int
    revision: int
    sha256: bytes
    issued_at: dt.datetime
    expires_at: dt.datetime

    @property
    def position(self) -> tuple[int, int]:
        """What "never backwards" compares: `(key_seq, revision)`."""
        return (self.key_seq, self.revision)


@dataclass(frozen=True)
class FilterSnapshot:
    """One filter: its canonical list (`data`) and that list's SHA-256 as computed here.

    `header` is the verified header the values came with (a full filter's `filter` header, or
    a delta's `filter-delta` header); `vouched_by` is a `filter` header naming exactly these
    values (a full filter's own, or a check's), which is what the file keeps.
    """

    data: bytes = field(repr=False)
    sha256: bytes
    header: FilterHeader
    vouched_by: FilterHeader | None = None

    @property
    def key_id(self) -> str:
        return self.header.key_id

    @property
    def key_seq(self) -> int:
        return self.header.key_seq

    @property
    def position(self) -> tuple[int, int]:
        return self.header.position

    @property
    def values(self) -> list[int]:
        """The values as integers (built on each call: for inspection, not for lookups)."""
        return [
            int.from_bytes(self.data[i : i + VALUE_SIZE], "big")
            for i in range(0, len(self.data), VALUE_SIZE)
        ]

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 48:
            return False
        key = value.to_bytes(VALUE_SIZE, "big")
        at = VALUE_SIZE * _find(self.data, key)
        return self.data[at : at + VALUE_SIZE] == key

    def __len__(self) -> int:
        return len(self.data) // VALUE_SIZE


def _snapshot(data: bytes, header: FilterHeader, *, vouched: bool) -> FilterSnapshot:
    return FilterSnapshot(data, hashlib.sha256(data).digest(), header, header if vouched else None)


def _fields_of(
    obj: SignedObject, what: str
) -> tuple[str, int, int, bytes, dt.datetime, dt.datetime]:
    fields = obj.fields
    key_id, key_seq, revision = fields.get("key_id"), fields.get("key_seq"), fields.get("revision")
    sha, expires = fields.get("sha256"), fields.get("expires_at")
    try:
        if not isinstance(key_id, str) or not key_id:
            raise DeserializeError("no key_id")
        if not isinstance(key_seq, int) or not isinstance(revision, int):
            raise DeserializeError("no key_seq or revision")
        if isinstance(key_seq, bool) or isinstance(revision, bool) or key_seq < 1 or revision < 0:
            raise DeserializeError("no key_seq or revision")
        if not isinstance(sha, str) or len(sha) != 64 or bytes.fromhex(sha).hex() != sha:
            raise DeserializeError("no sha256")
        if not isinstance(expires, str):
            raise DeserializeError("no expires_at")
        issued_at, expires_at = parse_time(fields["issued_at"]), parse_time(expires)
    except (DeserializeError, ValueError):
        raise InvalidResponse(
            f"the {what} header lacks a valid key, revision, sha256 or expiry"
        ) from None
    return key_id, key_seq, revision, bytes.fromhex(sha), issued_at, expires_at


class FilterCache:
    """The client's registry filter and the highest `(key_seq, revision)` it has seen.

    Thread-safe: the sync client's `check_many` runs checks in threads that share it. Decoding
    and applying happen outside the lock; the swap is a compare-and-set on the base the result
    was computed from.

    "Never backwards" is judged against what was seen *before the request* whose answer is
    being checked (`floor`): two checks in flight at once may be answered under two revisions
    in either order, and that is no lie; an answer older than a filter the client had already
    seen when it asked is one.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._snapshot: FilterSnapshot | None = None
        self._seen: tuple[int, int] = (0, 0)
        self._loaded = path is None
        self._written: bytes | None = None

    @property
    def snapshot(self) -> FilterSnapshot | None:
        return self._snapshot

    @property
    def seen(self) -> tuple[int, int]:
        """The highest `(key_seq, revision)` of any verified header."""
        return self._seen

    # -- headers ------------------------------------------------------------------------------

    def verify_header(
        self,
        obj: SignedObject,
        network: NetworkState,
        *,
        key: OprfKey | None,
        now: dt.datetime | None,
        floor: tuple[int, int] | None = None,
        type: str = "filter",
        witnesses: Sequence[bytes] | None = None,
    ) -> FilterHeader:
        """Verify a signed filter header as the module doc lists (`now=None`: no expiry check;
        `key=None`: any key; `floor`: the position seen before the request, default now's)."""
        what = "filter delta" if type == "filter-delta" else "filter"
        if floor is None:
            floor = self._seen
        try:
            obj.verify(
                network.signing_key,
                network_id=network.network_id,
                type=type,
                witnesses=network.witnesses if witnesses is None else witnesses,
            )
        except (VerifyError, InvalidInputError) as exc:
            raise SignatureInvalid(
                f"the {what} header does not verify against the network signing key ({exc})"
            ) from None
        key_id, key_seq, revision, sha, issued_at, expires_at = _fields_of(obj, what)
        header = FilterHeader(obj, key_id, key_seq, revision, sha, issued_at, expires_at)
        if now is not None:
            self.check_fresh(header, now)
        if key is not None and (key_id, key_seq) != (key.key_id, key.key_seq):
            raise FilterWrongKey(
                f"the {what} is for OPRF key {key_id} (seq {key_seq}), not the check's key "
                f"{key.key_id} (seq {key.key_seq}): its values cannot hold the check's "
                "pseudonyms"
            )
        if header.position < floor:
            raise FilterRollback(
                f"the {what} is at key seq {key_seq}, revision {revision}, but key seq "
                f"{floor[0]}, revision {floor[1]} was already seen: filters never go backwards"
            )
        with self._lock:
            self._seen = max(self._seen, header.position)
        return header

    @staticmethod
    def check_fresh(header: FilterHeader, now: dt.datetime) -> None:
        if now >= header.expires_at:
            kind = "filter delta" if header.signed.type == "filter-delta" else "filter"
            raise FilterExpired(
                f"the {kind} (revision {header.revision}) expired at "
                f"{header.signed.fields['expires_at']}: the server is serving an old filter, "
                "which could lack recent registrations"
            )

    def check_header(
        self,
        framed: bytes,
        network: NetworkState,
        key: OprfKey,
        now: dt.datetime,
        floor: tuple[int, int],
    ) -> FilterHeader:
        """The header a check answer names (a framed signed object)."""
        try:
            obj = parse(framed)
        except (DeserializeError, InvalidInputError):
            raise InvalidResponse("the check answer's filter header is malformed") from None
        return self.verify_header(obj, network, key=key, now=now, floor=floor)

    # -- the file -----------------------------------------------------------------------------

    def load(self, network: NetworkState) -> None:
        """Read the file once (when there is one): its header must verify under `network`
        (expiry aside: an old filter is still a good base for a delta). A file that does not
        verify is ignored, and replaced by the next filter this client trusts."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
        assert self.path is not None
        try:
            body = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot read the filter cache %s: %s", self.path, type(exc).__name__)
            return
        try:
            if body[: len(FILE_MAGIC)] != FILE_MAGIC:
                raise DeserializeError("not a filter cache file")
            obj, offset = parse_framed(body, len(FILE_MAGIC))
            header = self.verify_header(obj, network, key=None, now=None, floor=(0, 0))
            snapshot = _snapshot(body[offset:], header, vouched=True)
            # Values hashing to the signed sha256 are the list the server published (sorted,
            # distinct): SHA-256 over the canonical list is what the header signs.
            if snapshot.sha256 != header.sha256 or len(snapshot.data) % VALUE_SIZE:
                raise DeserializeError("values do not match the header")
        except (DeserializeError, InvalidInputError, ProtocolViolation):
            log.warning(
                "ignoring the filter cache %s: not a valid filter of this network", self.path
            )
            return
        with self._lock:
            if self._snapshot is None:
                self._snapshot = snapshot
                self._written = header.sha256

    def _save(self, snapshot: FilterSnapshot) -> None:
        """Write the filter and the `filter` header vouching for it, atomically, 0600."""
        header = snapshot.vouched_by
        if self.path is None or header is None or self._written == snapshot.sha256:
            return
        body = FILE_MAGIC + header.signed.framed() + snapshot.data
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            self._written = snapshot.sha256
        except OSError as exc:
            # A cache that cannot be written costs a fetch next time, nothing more.
            log.warning("cannot write the filter cache %s: %s", self.path, type(exc).__name__)
            tmp.unlink(missing_ok=True)

    # -- bringing the filter to a header -------------------------------------------------------

    @staticmethod
    def since_params(
        key: OprfKey, network: NetworkState, base: FilterSnapshot | None
    ) -> dict[str, str] | None:
        """`?since_sha256=` of `base` when a delta can help: `base` is under the same key, and
        no witness must cosign (a delta carries no cosignature of its own, so with witnesses a
        filter is only taken through a cosigned full header)."""
        snapshot = base
        if snapshot is None or snapshot.key_id != key.key_id or network.witnesses:
            return None
        return {"since_sha256": snapshot.sha256.hex()}

    def vouch(self, snapshot: FilterSnapshot, header: FilterHeader) -> FilterSnapshot:
        """`snapshot`, now also vouched for by `header` (a `filter` header naming exactly its
        values); written to the file."""
        if snapshot.sha256 != header.sha256 or snapshot.key_id != header.key_id:
            raise FilterRejected("the filter does not match the header said to vouch for it")
        if snapshot.vouched_by is not None and snapshot.vouched_by.position >= header.position:
            return snapshot
        vouched = FilterSnapshot(snapshot.data, snapshot.sha256, snapshot.header, header)
        with self._lock:
            current = self._snapshot
            held = current is not None and current.sha256 == vouched.sha256
            if held:
                self._snapshot = vouched
        # The file keeps the held filter only: not an older one a late check was answered with.
        if held:
            self._save(vouched)
        return vouched

    def usable_for(self, target: FilterHeader, now: dt.datetime) -> FilterSnapshot | None:
        """The held filter, if a lookup for a check whose answer named `target` may use it:
        exactly `target`'s values, or a newer filter under the same key that a `filter` header
        vouches for and that is still fresh (another check in flight moved the cache on)."""
        snapshot = self._snapshot
        if snapshot is None or snapshot.key_id != target.key_id:
            return None
        if snapshot.sha256 == target.sha256:
            return self.vouch(snapshot, target)
        vouched = snapshot.vouched_by
        if vouched is not None and vouched.position > target.position and now < vouched.expires_at:
            return snapshot
        return None

    def absorb(
        self,
        body: bytes,
        network: NetworkState,
        key: OprfKey,
        now: dt.datetime,
        floor: tuple[int, int],
        *,
        base: FilterSnapshot | None = None,
    ) -> FilterSnapshot:
        """Take a `GET /v1/registry/filter` body (full or delta), verify it, and return the
        filter it leads to, which becomes the held one unless a newer one is held by then.
        `base`: the filter a delta was asked against (`since_params`)."""
        magic = body[:4]
        if magic == b"RCF2":
            try:
                obj, values = parse_full(body)
            except (DeserializeError, InvalidInputError):
                raise InvalidResponse("the filter body is malformed") from None
            except VerifyError:
                raise FilterRejected(
                    "the filter's values do not hash to its signed sha256"
                ) from None
            header = self.verify_header(obj, network, key=key, now=now, floor=floor)
            snapshot = _snapshot(canonical(values), header, vouched=True)
            with self._lock:
                current = self._snapshot
                if current is None or current.position <= snapshot.position:
                    self._snapshot = snapshot
            self._save(snapshot)
            return snapshot
        if magic == b"RCD2":
            return self._absorb_delta(body, network, key, now, floor, base)
        raise InvalidResponse("the filter answer is neither a full filter nor a delta")

    def _absorb_delta(
        self,
        body: bytes,
        network: NetworkState,
        key: OprfKey,
        now: dt.datetime,
        floor: tuple[int, int],
        base: FilterSnapshot | None,
    ) -> FilterSnapshot:
        try:
            obj, added, removed = parse_delta(body)
        except (DeserializeError, InvalidInputError):
            raise InvalidResponse("the filter delta is malformed") from None
        # No witness cosigns a delta; with witnesses none is asked for (`since_params`).
        if network.witnesses:
            raise FilterRejected("a filter delta was served where a cosigned filter is needed")
        header = self.verify_header(
            obj, network, type="filter-delta", key=key, now=now, floor=floor, witnesses=()
        )
        since = obj.fields.get("since_sha256")
        if base is None or not isinstance(since, str) or since != base.sha256.hex():
            raise FilterRejected("the filter delta is not against the filter this client holds")
        snapshot = _snapshot(_splice(base.data, added, removed), header, vouched=False)
        if snapshot.sha256 != header.sha256:
            raise FilterRejected("the filter delta's result does not hash to its signed sha256")
        with self._lock:
            current = self._snapshot
            if current is base or current is None or current.position < snapshot.position:
                self._snapshot = snapshot
        return snapshot
