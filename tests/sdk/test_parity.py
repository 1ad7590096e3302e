"""`Client` and `AsyncClient` stay in step: the same public calls with the same parameters (the
async ones awaited), both driving the one I/O-free core. And the core's own pieces that need no
server: which keys a check or registration uses, and how a check's elements are made."""

from __future__ import annotations

import inspect
from collections import Counter

import pytest

from client_sdk import AsyncClient, Client, InvalidInput
from client_sdk._core import _blind_slots, _cut, _derive, _Key
from protocol.identity import derive_keys
from tests.sdk.signer import Signer

# Sync-only or async-only by nature (context managers, closing).
LIFECYCLE = {"close", "aclose", "from_credentials_file"}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member) and name not in LIFECYCLE
    }


def test_client_and_async_client_offer_the_same_calls_with_the_same_parameters() -> None:
    sync, asynchronous = public_methods(Client), public_methods(AsyncClient)
    assert set(sync) == set(asynchronous)
    for name, signature in sync.items():
        other = asynchronous[name]
        assert list(signature.parameters) == list(other.parameters), name
        for param, spec in signature.parameters.items():
            assert spec.kind == other.parameters[param].kind, (name, param)
            assert spec.default == other.parameters[param].default, (name, param)
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name
        assert not inspect.iscoroutinefunction(getattr(Client, name)), name


def test_keys_are_cut_strong_then_exact_then_variant_in_derivation_order() -> None:
    person = {
        "full_name": "Muhammad Rizki Pratama Saputra",
        "date_of_birth": "1980-01-01",
        "nationality": "ID",
        "national_id": "3201234567890011",
        "email": "mrps@example.org",
    }
    derived = _derive(person)
    assert [k.value for k in derived] == [k.value for k in derive_keys(person)]
    cut = _cut(derived, 5)
    ranks = {"strong": 0, "exact": 1, "variant": 2}
    assert [ranks[k.strength] for k in cut] == sorted(ranks[k.strength] for k in cut)
    assert cut == sorted(derived, key=lambda k: ranks[k.strength])[:5]
    assert _cut(derived, 64) == sorted(derived, key=lambda k: ranks[k.strength])


def test_a_check_is_exactly_keys_per_check_distinct_elements_whatever_the_keys() -> None:
    key = Signer().oprf_key(1)
    # A real ristretto255 public key is needed to blind; the announcement's is a dummy.
    from protocol.oprf import generate_key_pair

    _sk, pk = generate_key_pair(1)
    key = type(key)(key.key_id, key.key_seq, pk, key.registration_key)
    keys = [_Key("national_id", "strong", b"n" * 8), _Key("name_dob", "exact", b"d" * 8)]
    slots = _blind_slots(keys, key, 32)
    assert len(slots) == 32 and len({s.blinded for s in slots}) == 32
    assert Counter(s.key is None for s in slots) == Counter({True: 30, False: 2})
    # Shuffled: over a few checks the real keys do not keep their places.
    places = {
        tuple(i for i, s in enumerate(_blind_slots(keys, key, 32)) if s.key) for _ in range(8)
    }
    assert len(places) > 1
    with pytest.raises(InvalidInput):
        _blind_slots(keys, key, 1)
