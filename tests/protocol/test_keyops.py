"""`protocol.keyops`, the server's safe key operations: the same results as the raw group
operations on valid inputs, and a refusal of every input the raw ones would trust."""

from __future__ import annotations

import pytest

from protocol import keyops
from protocol.errors import DeserializeError, InvalidInputError
from protocol.hazmat import ristretto255 as raw

GROUP_ORDER_BYTES = raw.GROUP_ORDER.to_bytes(32, "little")


def test_the_operations_compose_like_the_group() -> None:
    secret, wrap, delta = keyops.new_scalar(), keyops.new_scalar(), keyops.new_scalar()
    element = raw.scalar_mult_base(keyops.new_scalar())
    wrapped = keyops.multiply(wrap, keyops.multiply(secret, element))
    assert keyops.multiply(keyops.invert(wrap), wrapped) == keyops.multiply(secret, element)
    rotated = keyops.scalar_product(delta, secret)
    assert keyops.multiply(rotated, element) == keyops.multiply(
        delta, keyops.multiply(secret, element)
    )
    assert keyops.public_key(secret) == raw.scalar_mult_base(secret)
    assert keyops.decode_element(element) == element
    assert len(element) == keyops.ELEMENT_SIZE and len(secret) == keyops.SCALAR_SIZE


@pytest.mark.parametrize(
    "data", [bytes(32), b"\x01" * 31, bytes([0xFF] * 32)], ids=["identity", "short", "invalid"]
)
def test_a_bad_element_is_refused(data: bytes) -> None:
    with pytest.raises(DeserializeError):
        keyops.decode_element(data)
    with pytest.raises(DeserializeError):
        keyops.multiply(keyops.new_scalar(), data)


@pytest.mark.parametrize(
    "scalar", [bytes(32), GROUP_ORDER_BYTES, b"\x01" * 31], ids=["zero", "order", "short"]
)
def test_a_zero_or_unreduced_scalar_is_refused(scalar: bytes) -> None:
    """The raw `scalar_mul` would reduce or multiply by zero without a word."""
    with pytest.raises(InvalidInputError):
        keyops.invert(scalar)
    with pytest.raises(InvalidInputError):
        keyops.scalar_product(scalar, keyops.new_scalar())
    with pytest.raises(InvalidInputError):
        keyops.scalar_product(keyops.new_scalar(), scalar)
