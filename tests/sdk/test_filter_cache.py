"""The SDK's registry filter (client_sdk.filter_cache) on real signed bodies: what it accepts, and
each lie it refuses (expired, older, another key, another network, a bad signature, values that
do not hash to the signed sha256, a delta against another list); the file beside the pin file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import (
    FilterExpired,
    FilterRejected,
    FilterRollback,
    FilterWrongKey,
    InvalidResponse,
    SignatureInvalid,
)
from client_sdk.filter_cache import FILE_MAGIC, FilterCache, canonical
from protocol.filter import encode_set, rice_parameter, set_sha256
from protocol.signed import parse
from tests.sdk.signer import NOW, Signer, flip

NET = Signer()
STATE = NET.state(1)
KEY = STATE.current
VALUES = [5, 17, 2**40 + 3, 2**47]


def test_a_full_filter_is_held_and_looked_up() -> None:
    cache = FilterCache()
    snapshot = cache.absorb(NET.full(VALUES, revision=3), STATE, KEY, NOW, (0, 0))
    assert 17 in snapshot and 2**47 in snapshot and 18 not in snapshot and "17" not in snapshot
    assert len(snapshot) == 4 and snapshot.sha256 == set_sha256(VALUES)
    assert cache.snapshot is snapshot and cache.seen == (1, 3)


def test_an_expired_filter_is_refused() -> None:
    body = NET.full(VALUES, revision=3, issued=NOW - dt.timedelta(minutes=5))
    with pytest.raises(FilterExpired, match="expired"):
        FilterCache().absorb(body, STATE, KEY, NOW, (0, 0))


def test_a_filter_older_than_one_seen_before_the_request_is_refused() -> None:
    cache = FilterCache()
    cache.absorb(NET.full(VALUES, revision=5), STATE, KEY, NOW, (0, 0))
    with pytest.raises(FilterRollback, match="never go backwards"):
        cache.absorb(NET.full(VALUES[:2], revision=4), STATE, KEY, NOW, cache.seen)
    assert cache.snapshot is not None and len(cache.snapshot) == 4


def test_an_answer_older_than_another_in_flight_is_not_a_rollback() -> None:
    # Two checks asked at revision 4; the second answer (revision 6) was read first.
    cache = FilterCache()
    floor = cache.seen
    cache.check_header(NET.filter_header(VALUES, revision=6).framed(), STATE, KEY, NOW, floor)
    header = cache.check_header(
        NET.filter_header(VALUES, revision=5).framed(), STATE, KEY, NOW, floor
    )
    assert header.revision == 5 and cache.seen == (1, 6)


def test_a_filter_for_another_key_is_refused() -> None:
    other = NET.full(VALUES, revision=3, seq=2)
    with pytest.raises(FilterWrongKey, match="not the check's key"):
        FilterCache().absorb(other, NET.state(1, 2), KEY, NOW, (0, 0))


def test_a_badly_signed_filter_is_refused() -> None:
    body = NET.full(VALUES, revision=3)
    header_end = 4 + 2 + int.from_bytes(body[4:6], "big")
    tampered = body[: header_end + 10] + flip(body[header_end + 10 : header_end + 11], 0)
    tampered += body[header_end + 11 :]
    with pytest.raises(SignatureInvalid):
        FilterCache().absorb(tampered, STATE, KEY, NOW, (0, 0))


def test_a_filter_of_another_network_or_signer_is_refused() -> None:
    with pytest.raises(SignatureInvalid):
        FilterCache().absorb(
            Signer(network_id="other").full(VALUES, revision=3), STATE, KEY, NOW, (0, 0)
        )
    impostor = Signer(private=Ed25519PrivateKey.generate())
    with pytest.raises(SignatureInvalid):
        FilterCache().absorb(impostor.full(VALUES, revision=3), STATE, KEY, NOW, (0, 0))


def test_values_that_do_not_hash_to_the_signed_sha256_are_refused() -> None:
    header = NET.filter_header(VALUES, revision=3, sha256=set_sha256([1, 2, 3, 4]).hex())
    body = b"RCF2" + header.framed() + encode_set(VALUES, rice_parameter(4))
    with pytest.raises(FilterRejected, match="sha256"):
        FilterCache().absorb(body, STATE, KEY, NOW, (0, 0))


def test_a_body_that_is_no_filter_is_an_invalid_response() -> None:
    with pytest.raises(InvalidResponse):
        FilterCache().absorb(b"<html>", STATE, KEY, NOW, (0, 0))
    with pytest.raises(InvalidResponse):
        FilterCache().absorb(NET.full(VALUES, revision=1)[:-1], STATE, KEY, NOW, (0, 0))


def test_a_delta_brings_the_filter_to_its_signed_sha256() -> None:
    cache = FilterCache()
    cache.absorb(NET.full(VALUES, revision=3), STATE, KEY, NOW, (0, 0))
    assert cache.since_params(KEY, STATE, cache.snapshot) == {
        "since_sha256": set_sha256(VALUES).hex()
    }
    delta = NET.delta(VALUES, added=[6, 7], removed=[17], revision=4)
    snapshot = cache.absorb(delta, STATE, KEY, NOW, cache.seen, base=cache.snapshot)
    assert list(snapshot.values) == [5, 6, 7, 2**40 + 3, 2**47]
    assert 17 not in snapshot and snapshot.vouched_by is None and cache.seen == (1, 4)


def test_a_delta_against_another_list_is_refused() -> None:
    cache = FilterCache()
    cache.absorb(NET.full(VALUES, revision=3), STATE, KEY, NOW, (0, 0))
    with pytest.raises(FilterRejected, match="not against the filter"):
        cache.absorb(
            NET.delta([1, 2], added=[6], removed=[], revision=4),
            STATE,
            KEY,
            NOW,
            (1, 3),
            base=cache.snapshot,
        )
    # Names our list, but removes a value we do not hold: computed against another list.
    forged = NET.delta(
        VALUES, added=[6], removed=[18], revision=4, since_sha256=set_sha256(VALUES).hex()
    )
    with pytest.raises(FilterRejected, match="does not apply"):
        cache.absorb(forged, STATE, KEY, NOW, (1, 3), base=cache.snapshot)
    wrong_result = NET.delta(VALUES, added=[6], removed=[], revision=4, sha256="00" * 32)
    with pytest.raises(FilterRejected, match="does not hash"):
        cache.absorb(wrong_result, STATE, KEY, NOW, (1, 3), base=cache.snapshot)
    assert cache.snapshot is not None and list(cache.snapshot.values) == VALUES


def test_no_delta_is_asked_for_under_another_key_or_with_witnesses() -> None:
    cache = FilterCache()
    cache.absorb(NET.full(VALUES, revision=3), STATE, KEY, NOW, (0, 0))
    assert cache.since_params(NET.oprf_key(2), NET.state(1, 2), cache.snapshot) is None
    witnessed = type(STATE)(STATE.network_id, STATE.signing_key, STATE.keys, 8, (b"\x01" * 32,))
    assert cache.since_params(KEY, witnessed, cache.snapshot) is None


def test_a_check_header_vouches_for_the_held_filter_and_it_is_kept_in_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "org.filter"
    cache = FilterCache(path)
    cache.load(STATE)
    cache.absorb(NET.full(VALUES, revision=3), STATE, KEY, NOW, (0, 0))
    cache.absorb(
        NET.delta(VALUES, [9], [], revision=4), STATE, KEY, NOW, cache.seen, base=cache.snapshot
    )
    after = sorted([*VALUES, 9])
    header = cache.check_header(
        NET.filter_header(after, revision=4).framed(), STATE, KEY, NOW, cache.seen
    )
    snapshot = cache.usable_for(header, NOW)
    assert snapshot is not None and snapshot.vouched_by == header
    assert path.stat().st_mode & 0o777 == 0o600

    # A new process starts from the file: the values, and the revision it has seen.
    fresh = FilterCache(path)
    fresh.load(STATE)
    assert fresh.snapshot is not None and list(fresh.snapshot.values) == after
    assert fresh.seen == (1, 4)
    with pytest.raises(FilterRollback):
        fresh.check_header(
            NET.filter_header(VALUES, revision=3).framed(), STATE, KEY, NOW, fresh.seen
        )


def test_a_filter_file_that_does_not_verify_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "org.filter"
    foreign = Signer(network_id="other").filter_header(VALUES, revision=9)
    path.write_bytes(FILE_MAGIC + foreign.framed() + canonical(VALUES))
    cache = FilterCache(path)
    cache.load(STATE)
    assert cache.snapshot is None and cache.seen == (0, 0)
    # The right header over other values (a value dropped from the file) is no filter either.
    header = NET.filter_header(VALUES, revision=9)
    path.write_bytes(FILE_MAGIC + header.framed() + canonical(VALUES[1:]))
    cache = FilterCache(path)
    cache.load(STATE)
    assert cache.snapshot is None
    path.write_bytes(b"not a filter")
    cache = FilterCache(path)
    cache.load(STATE)
    assert cache.snapshot is None


def test_an_expired_file_is_a_base_for_a_delta_but_not_used_for_a_lookup(
    tmp_path: Path,
) -> None:
    path = tmp_path / "org.filter"
    old = NET.filter_header(VALUES, revision=3, issued=NOW - dt.timedelta(days=1))
    path.write_bytes(FILE_MAGIC + old.framed() + canonical(VALUES))
    cache = FilterCache(path)
    cache.load(STATE)
    assert cache.snapshot is not None
    newer = NET.filter_header(sorted([*VALUES, 9]), revision=4)
    header = cache.check_header(newer.framed(), STATE, KEY, NOW, cache.seen)
    assert cache.usable_for(header, NOW) is None  # another list: must fetch
    assert cache.since_params(KEY, STATE, cache.snapshot) == {
        "since_sha256": set_sha256(VALUES).hex()
    }


def test_the_check_header_is_parsed_strictly() -> None:
    framed = NET.filter_header(VALUES, revision=1).framed()
    with pytest.raises(InvalidResponse):
        FilterCache().check_header(framed + b"\x00", STATE, KEY, NOW, (0, 0))
    no_expiry = NET.filter_header(VALUES, revision=1, expires_at=None)
    with pytest.raises(InvalidResponse):
        FilterCache().check_header(no_expiry.framed(), STATE, KEY, NOW, (0, 0))
    assert parse(framed).type == "filter"


def test_deltas_at_both_ends_and_lookups_at_the_boundaries() -> None:
    cache = FilterCache()
    values = [0, 1, 2**20, 2**48 - 2]
    cache.absorb(NET.full(values, revision=1), STATE, KEY, NOW, (0, 0))
    delta = NET.delta(values, added=[2**48 - 1, 3], removed=[0, 2**48 - 2], revision=2)
    snapshot = cache.absorb(delta, STATE, KEY, NOW, cache.seen, base=cache.snapshot)
    assert snapshot.values == [1, 3, 2**20, 2**48 - 1]
    for absent in (0, 2, 2**48 - 2, 2**48, -1, True):
        assert absent not in snapshot
    assert all(v in snapshot for v in snapshot.values)
    emptied = NET.delta(snapshot.values, added=[], removed=snapshot.values, revision=3)
    assert len(cache.absorb(emptied, STATE, KEY, NOW, cache.seen, base=cache.snapshot)) == 0
