"""`CheckAnswer.to_json` writes exactly what the wire model `CheckResponse` would."""

from __future__ import annotations

import json
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.hazmat.ristretto255 import random_scalar, scalar_mult_base
from protocol.messages import BucketEntries, BucketEntry, CheckResponse
from server.checks.answer import CheckAnswer

_tags = st.binary(min_size=16, max_size=16)
# Any length the wire allows (41 to 2,048 bytes); a sealed handle has one fixed length.
_sealed = st.binary(min_size=41, max_size=120)
_buckets = st.dictionaries(
    st.integers(min_value=0, max_value=(1 << 24) - 1),
    st.lists(st.tuples(_tags, _sealed), max_size=4).map(sorted),
    min_size=1,
    max_size=6,
)


def _model(answer: CheckAnswer) -> CheckResponse:
    return CheckResponse(
        check_id=answer.check_id,
        key_id=answer.key_id,
        evaluated_elements=[e.hex() for e in answer.evaluated_elements],
        proof=answer.proof.hex(),
        buckets=[
            BucketEntries(
                bucket=b,
                entries=[
                    BucketEntry(tag=t.hex(), sealed_handle=s.hex()) for t, s in answer.buckets[b]
                ],
            )
            for b in sorted(answer.buckets)
        ],
    )


@settings(max_examples=60, deadline=None)
@given(buckets=_buckets, elements=st.integers(min_value=1, max_value=4))
def test_the_written_answer_is_the_wire_models_own_dump(
    buckets: dict[int, list[tuple[bytes, bytes]]], elements: int
) -> None:
    answer = CheckAnswer(
        check_id=str(uuid.uuid4()),
        key_id="0123456789abcdef",
        evaluated_elements=[scalar_mult_base(random_scalar()) for _ in range(elements)],
        proof=bytes(range(64)),
        buckets=buckets,
    )
    written = answer.to_json()
    assert written == _model(answer).model_dump_json().encode()
    parsed = CheckResponse.model_validate_json(written)
    assert [b.bucket for b in parsed.buckets] == sorted(buckets)
    assert sum(map(len, buckets.values())) == sum(len(b.entries) for b in parsed.buckets)


def test_an_empty_bucket_is_answered_as_an_empty_list() -> None:
    answer = CheckAnswer(
        check_id=str(uuid.uuid4()),
        key_id="0123456789abcdef",
        evaluated_elements=[scalar_mult_base(random_scalar())],
        proof=bytes(64),
        buckets={7: [], 3: []},
    )
    assert json.loads(answer.to_json())["buckets"] == [
        {"bucket": 3, "entries": []},
        {"bucket": 7, "entries": []},
    ]
