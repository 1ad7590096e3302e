"""The core's filter step, driven as the sans-I/O generator it is (the answers are real signed
bodies): a check's header is met with at most one fetch, a delta only counts when it leads to
that header's list, and a filter published between the check and the fetch is taken whole."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import httpx
import pytest

from client_sdk import FilterRejected
from client_sdk._core import ApiRequest, Core
from client_sdk.filter_cache import FilterCache, FilterSnapshot
from client_sdk.pinning import NetworkPin
from protocol.filter import set_sha256
from tests.sdk.signer import NOW, Signer

NET = Signer()
STATE = NET.state(1)
KEY = STATE.current
V0 = [10, 20, 30]
V1 = [10, 20, 30, 40]
V2 = [10, 20, 30, 40, 50]


def core_holding(values: list[int], revision: int) -> Core:
    core = Core(
        NetworkPin("http://s", network_id=NET.network_id, signing_key_sha256=NET.fingerprint),
        FilterCache(),
        clock=NOW.timestamp,
    )
    core.filters.absorb(NET.full(values, revision=revision), STATE, KEY, NOW, (0, 0))
    return core


def drive(
    op: Generator[ApiRequest, httpx.Response, Any], answers: list[bytes]
) -> tuple[Any, list[ApiRequest]]:
    """Run `op`, answering its requests with `answers` in order; its result and the requests."""
    sent: list[ApiRequest] = []
    try:
        request = next(op)
        while True:
            sent.append(request)
            request = op.send(httpx.Response(200, content=answers[len(sent) - 1]))
    except StopIteration as done:
        return done.value, sent


def target(core: Core, values: list[int], revision: int) -> Any:
    framed = NET.filter_header(values, revision=revision).framed()
    return core.filters.check_header(framed, STATE, KEY, NOW, core.filters.seen)


def test_the_held_filter_named_by_the_check_costs_no_request() -> None:
    core = core_holding(V1, 2)
    snapshot, sent = drive(core._filter_for(STATE, KEY, target(core, V1, 2)), [])
    assert sent == [] and snapshot.values == V1


def test_one_delta_brings_the_filter_to_the_checks_header() -> None:
    core = core_holding(V0, 1)
    header = target(core, V1, 2)
    snapshot, sent = drive(
        core._filter_for(STATE, KEY, header), [NET.delta(V0, [40], [], revision=2)]
    )
    assert len(sent) == 1 and sent[0].params == {"since_sha256": set_sha256(V0).hex()}
    assert isinstance(snapshot, FilterSnapshot) and snapshot.values == V1
    assert snapshot.vouched_by == header  # a check's header now vouches for the delta's list


def test_a_delta_past_the_checks_header_is_not_used_a_full_filter_is() -> None:
    core = core_holding(V0, 1)
    header = target(core, V1, 2)
    # Revision 3 was published between the check and the fetch.
    answers = [NET.delta(V0, [40, 50], [], revision=3), NET.full(V2, revision=3)]
    snapshot, sent = drive(core._filter_for(STATE, KEY, header), answers)
    assert [r.params for r in sent] == [{"since_sha256": set_sha256(V0).hex()}, None]
    assert snapshot.values == V2 and snapshot.position == (1, 3)
    assert snapshot.vouched_by is not None and snapshot.vouched_by.revision == 3


def test_two_filters_under_one_revision_are_refused() -> None:
    core = core_holding(V0, 1)
    header = target(core, V1, 2)
    forked = NET.full([10, 20, 30, 41], revision=2)
    with pytest.raises(FilterRejected, match="differ under one revision"):
        drive(core._filter_for(STATE, KEY, header), [forked])


def test_a_newer_vouched_filter_held_serves_an_older_header_without_a_request() -> None:
    # Two checks in flight: the second's answer (revision 3) was handled first.
    core = Core(
        NetworkPin("http://s", network_id=NET.network_id, signing_key_sha256=NET.fingerprint),
        FilterCache(),
        clock=NOW.timestamp,
    )
    floor = core.filters.seen
    core.filters.absorb(NET.full(V2, revision=3), STATE, KEY, NOW, floor)
    older = core.filters.check_header(
        NET.filter_header(V1, revision=2).framed(), STATE, KEY, NOW, floor
    )
    snapshot, sent = drive(core._filter_for(STATE, KEY, older), [])
    assert sent == [] and snapshot.values == V2


def test_verify_live_takes_the_filter_whole() -> None:
    core = core_holding(V0, 1)
    # Keys and policy known (as from a warm pin file): no request for them.
    core.pin.accept(NET.network_id, NET.public, [NET.announcement(1).framed()], keys_per_check=8)
    snapshot, sent = drive(core.registry_filter(), [NET.full(V1, revision=2)])
    assert [r.params for r in sent] == [None] and snapshot.values == V1


def test_a_delta_applies_to_the_list_it_was_asked_against_when_another_check_moved_on() -> None:
    # Two checks in flight in threads of one client: this one asks for a delta since V0; before
    # its answer arrives, the other one's fetch replaced the held filter with revision 3.
    core = core_holding(V0, 1)
    header = target(core, V1, 2)
    op = core._filter_for(STATE, KEY, header)
    request = next(op)
    assert request.params == {"since_sha256": set_sha256(V0).hex()}
    core.filters.absorb(NET.full(V2, revision=3), STATE, KEY, NOW, core.filters.seen)
    with pytest.raises(StopIteration) as done:
        op.send(httpx.Response(200, content=NET.delta(V0, [40], [], revision=2)))
    snapshot = done.value.value
    assert snapshot.values == V1 and snapshot.vouched_by == header
    # The newer filter stays the held one.
    held = core.filters.snapshot
    assert held is not None and held.values == V2


def test_a_delta_nobody_asked_for_is_refused() -> None:
    core = core_holding(V0, 1)
    with pytest.raises(FilterRejected, match="not against"):
        core.filters.absorb(NET.delta(V0, [40], [], revision=2), STATE, KEY, NOW, core.filters.seen)
