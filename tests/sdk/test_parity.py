"""`Client` and `AsyncClient` stay in step: the same public calls with the same parameters (the
async ones awaited), both driving the one I/O-free core. And the core's own pieces that need no
server: which keys a check or registration uses, and how a check's elements are made."""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any

import pytest

from client_sdk import AsyncClient, Client, InvalidInput
from client_sdk._core import Op, _blind_slots, _cut, _derive, _Key
from client_sdk.models import Case
from protocol.identity import derive_keys
from tests.sdk.signer import Signer

# Sync-only or async-only by nature (closing).
LIFECYCLE = {"close", "aclose"}
# Not awaited on either client: building one.
CONSTRUCTORS = {"from_credentials_file"}


def public_methods(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member) and name not in LIFECYCLE
    }


def differences(sync_cls: type, async_cls: type) -> list[str]:
    """Where two clients part: a call only one offers, a parameter (name, kind, default,
    annotation), a return annotation, a docstring, or a call of the async one not awaited (or
    of the sync one awaited)."""
    sync, asynchronous = public_methods(sync_cls), public_methods(async_cls)
    found = [f"only one client has {name}" for name in sorted(set(sync) ^ set(asynchronous))]
    for name in sorted(set(sync) & set(asynchronous)):
        one, other = sync[name], asynchronous[name]
        mine, theirs = inspect.signature(one), inspect.signature(other)
        if [_param(p) for p in mine.parameters.values()] != [
            _param(p) for p in theirs.parameters.values()
        ]:
            found.append(f"{name}: parameters")
        if mine.return_annotation != theirs.return_annotation:
            found.append(f"{name}: return annotation")
        if inspect.getdoc(one) != inspect.getdoc(other):
            found.append(f"{name}: docstring")
        awaited = name not in CONSTRUCTORS
        if inspect.iscoroutinefunction(one) or inspect.iscoroutinefunction(other) != awaited:
            found.append(f"{name}: sync/async")
    return found


def _param(p: inspect.Parameter) -> tuple[object, ...]:
    return (p.name, p.kind, p.default, p.annotation)


def test_client_and_async_client_offer_the_same_calls_signatures_and_docstrings() -> None:
    assert differences(Client, AsyncClient) == []


def op_results(cls: type) -> list[str]:
    """Public calls whose signature shows the core's op instead of its result."""
    return [
        name
        for name, member in public_methods(cls).items()
        if str(inspect.signature(member).return_annotation).startswith(("Op[", "Generator["))
    ]


def test_calls_defined_once_show_their_result_not_the_core_op() -> None:
    # `operation` turns `def f(...) -> Op[T]` into a call returning T (awaited on AsyncClient).
    assert op_results(Client) == [] and op_results(AsyncClient) == []
    assert str(inspect.signature(Client.get_case).return_annotation) == "Case"

    class Leaky:
        def get_case(self, case_id: str) -> Op[Case]:
            raise AssertionError("never called: only its signature is read")

    assert op_results(Leaky) == ["get_case"]


def test_parity_check_reports_each_kind_of_difference() -> None:
    class Sync:
        def same(self, a: int) -> str:
            """Doc."""
            return ""

        def params(self, a: int) -> str:
            return ""

        def returns(self) -> str:
            return ""

        def docs(self) -> None:
            """One."""

        def not_awaited(self) -> None: ...

        def only_sync(self) -> None: ...

    class Async:
        async def same(self, a: int) -> str:
            """Doc."""
            return ""

        async def params(self, a: int = 1) -> str:
            return ""

        async def returns(self) -> int:
            return 0

        async def docs(self) -> None:
            """Two."""

        def not_awaited(self) -> None: ...

    assert differences(Sync, Async) == [
        "only one client has only_sync",
        "docs: docstring",
        "not_awaited: sync/async",
        "params: parameters",
        "returns: return annotation",
    ]


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
