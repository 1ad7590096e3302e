"""The registry filter of protocol v2 (docs/protocol.md, "The registry filter").

The filter is the set of 48-bit `prefix` values of every live entry, published signed so that a
client tests its own applicant's keys locally and the server hears nothing about an applicant who
is not registered. On the wire it is a Golomb–Rice coded set (as BIP 158): each difference from
the previous value (starting at 0) as `q = d >> p` one-bits, a zero bit, then the low `p` bits of
`d`, most significant first, the stream padded with zero bits to a whole byte.

Bodies:
- full: `b"RCF2" || framed signed "filter" header || coded set`;
- delta: `b"RCD2" || framed signed "filter-delta" header || added || removed`, 6 bytes a value.

This module checks structure and the header's own numbers (count, p, sha256); verifying the
header's signature, freshness and key is the caller's (`SignedObject.verify`, then the SDK's
checks of `expires_at`, `key_seq` and `revision`).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import operator
import re
from collections.abc import Mapping, Sequence
from typing import Any

from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.signed import SignedObject, parse_framed

__all__ = [
    "DELTA_MAGIC",
    "FULL_MAGIC",
    "MAX_VALUE",
    "PREFIX_BITS",
    "VALUE_SIZE",
    "apply_delta",
    "decode_set",
    "delta_body",
    "encode_set",
    "full_body",
    "parse_delta",
    "parse_full",
    "rice_parameter",
    "set_sha256",
]

PREFIX_BITS = 48
MAX_VALUE = (1 << PREFIX_BITS) - 1
VALUE_SIZE = PREFIX_BITS // 8
FULL_MAGIC = b"RCF2"
DELTA_MAGIC = b"RCD2"

# Bits converted to text and scanned per step of `decode_set`: bounds its memory (the matches of
# one chunk) independently of the filter's size.
_CHUNK_BYTES = 1 << 17
# An encoder refuses to write more than this many bits (or 64 a value, if more): with the p of
# `rice_parameter` a set takes under p + 3 bits a value, and a p far too small for the values
# would otherwise write unary runs of up to 2^48 bits.
_MAX_ENCODED_BITS = 1 << 24


def rice_parameter(count: int) -> int:
    """`p = min(48, floor(log2(2^48 / max(count, 1))))`, exactly, in integers.

    `floor(log2(2^48 / c)) = 48 - ceil(log2(c))` and `ceil(log2(c)) = (c - 1).bit_length()`;
    a float `log2` would be off by one near powers of two, and both sides must agree on `p`.
    """
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidInputError("count must be an integer")
    if count < 0 or count > 1 << PREFIX_BITS:
        raise InvalidInputError("count is outside 0 .. 2^48")
    return min(PREFIX_BITS, PREFIX_BITS - (max(count, 1) - 1).bit_length())


def _check_p(p: int) -> None:
    if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= PREFIX_BITS:
        raise InvalidInputError("p must be an integer in 0 .. 48")


def _check_ascending(values: Sequence[int], what: str = "values") -> list[int]:
    """`values` as a list, refusing anything but ascending distinct integers in 0 .. 2^48 - 1."""
    out = list(values)
    if not set(map(type, out)) <= {int}:  # bool is refused too
        raise InvalidInputError(f"{what} must be integers")
    if out and (out[0] < 0 or out[-1] > MAX_VALUE):
        raise InvalidInputError(f"{what} must be in 0 .. 2^48 - 1")
    if not all(map(operator.lt, out, itertools.islice(out, 1, None))):
        raise InvalidInputError(f"{what} must be sorted ascending without repeats")
    return out


def _differences(values: list[int]) -> list[int]:
    return list(map(operator.sub, values, itertools.chain((0,), values)))


def encode_set(values: Sequence[int], p: int) -> bytes:
    """Golomb–Rice code ascending distinct 48-bit `values` with parameter `p`."""
    _check_p(p)
    checked = _check_ascending(values)
    diffs = _differences(checked)
    total = sum(d >> p for d in diffs) + len(diffs) * (p + 1)
    if total > max(_MAX_ENCODED_BITS, 64 * len(diffs)):
        raise InvalidInputError("p is far too small for these values")
    if not diffs:
        return b""
    mask = (1 << p) - 1
    # The zero bit and the p low bits are one (p + 1)-bit field whose top bit is zero.
    low = f"0{p + 1}b"
    bits = "".join(["1" * (d >> p) + format(d & mask, low) for d in diffs])
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def _bits(chunk: bytes) -> str:
    return format(int.from_bytes(chunk, "big"), f"0{8 * len(chunk)}b") if chunk else ""


@functools.lru_cache(maxsize=49)
def _codeword_pattern(p: int) -> re.Pattern[str]:
    """One codeword, `(ones)(zero)(low p bits)`, or else the tail of the text (at most p
    characters after the ones), with the ones possessive.

    Why the tail alternative and `*+`: findall tries every start position, and a plain `1*0`
    backtracks through a long run of one-bits from each of them, which is quadratic: a hostile
    filter of a few hundred kilobytes of one-bits would take hours. Here every position either
    matches a codeword or, once fewer than `p + 1` characters follow its ones, the tail, so the
    scan is linear.
    """
    return re.compile(f"(1*+)(?:(0)([01]{{{p}}})|(?=[01]{{0,{p}}}\\Z))")


def decode_set(data: bytes, count: int, p: int) -> list[int]:
    """Decode exactly `count` values coded with parameter `p`, strictly.

    Refused (DeserializeError): fewer values than `count`, any data after the `count`-th value
    other than fewer than 8 zero pad bits, a value at or above 2^48, and a zero difference after
    the first value (a repeat). Why strict: one set must have exactly one encoding, or a filter
    could carry values that some decoders see and others do not, under one signature.

    Speed: the stream is scanned as text with one regular expression per chunk, the values summed
    with `itertools.accumulate`, so the per-value work is in C (about half a second for 10^6).
    """
    _check_p(p)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidInputError("count must be a non-negative integer")
    # Each value takes at least p + 1 bits: refuse early a count the data cannot hold.
    if count * (p + 1) > 8 * len(data):
        raise DeserializeError("coded set is shorter than its count")
    codeword = _codeword_pattern(p)
    values: list[int] = []
    last = 0
    buffer = ""
    offset = 0
    chunk_size = _CHUNK_BYTES
    while len(values) < count:
        if offset >= len(data):
            raise DeserializeError("coded set holds fewer values than its count")
        buffer += _bits(data[offset : offset + chunk_size])
        offset += chunk_size
        matches = codeword.findall(buffer)
        # Tail matches (an incomplete codeword at the end of the buffer) come after every
        # complete one; drop them and read more bits for that codeword.
        while matches and not matches[-1][1]:
            matches.pop()
        if not matches:
            # One unary run longer than the buffer: read twice as much next time, so a long run
            # is rescanned a bounded number of times (linear, not quadratic, in its length).
            chunk_size *= 2
            continue
        del matches[count - len(values) :]
        ones = [m[0] for m in matches]
        if p:
            lows: Any = map(int, (m[2] for m in matches), itertools.repeat(2))
            diffs = list(
                map(operator.or_, map(operator.lshift, map(len, ones), itertools.repeat(p)), lows)
            )
        else:
            diffs = list(map(len, ones))
        # A zero difference after the first value is a repeated value: one set, one encoding.
        if 0 in (diffs[1:] if not values else diffs):
            raise DeserializeError("coded set repeats a value")
        chunk_values = list(itertools.accumulate(diffs, initial=last))[1:]
        last = chunk_values[-1]
        if last > MAX_VALUE:
            raise DeserializeError("coded set holds a value at or above 2^48")
        values += chunk_values
        # Complete codewords are matched back to back from the start of the buffer, so what
        # they used is a prefix of it.
        used = sum(map(len, ones)) + len(matches) * (p + 1)
        buffer = buffer[used:]
    leftover = len(buffer) + 8 * max(0, len(data) - offset)
    if leftover >= 8 or "1" in buffer:
        raise DeserializeError("coded set has data after its last value or non-zero padding")
    return values


def set_sha256(values: Sequence[int]) -> bytes:
    """SHA-256 over the sorted distinct values, 6 bytes big-endian each: the list a header
    commits to, whatever order or repeats the caller holds them in."""
    canonical = list(values)
    if not all(map(operator.lt, canonical, itertools.islice(canonical, 1, None))):
        canonical = sorted(set(canonical))
    _check_ascending(canonical)
    return hashlib.sha256(_pack(canonical)).digest()


# --- bodies ---------------------------------------------------------------------------------


def _header_int(fields: Mapping[str, Any], name: str) -> int:
    value = fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DeserializeError(f"header has no non-negative integer {name!r}")
    return value


def _header_sha256(fields: Mapping[str, Any], name: str) -> bytes:
    value = fields.get(name)
    if not isinstance(value, str) or not re.fullmatch("[0-9a-f]{64}", value):
        raise DeserializeError(f"header {name!r} is not 64 lower-case hex digits")
    return bytes.fromhex(value)


def _filter_numbers(header: SignedObject) -> tuple[int, int, bytes]:
    """`(count, p, sha256)` of a `filter` header, with `p` the one its count implies (a server
    choosing p freely could make a decoder expand a tiny body into long unary runs)."""
    if header.type != "filter":
        raise DeserializeError("header is not a filter header")
    count = _header_int(header.fields, "count")
    p = _header_int(header.fields, "p")
    try:
        expected_p = rice_parameter(count)
    except InvalidInputError:
        raise DeserializeError("header count is out of range") from None
    if p != expected_p:
        raise DeserializeError("header p is not the one its count implies")
    return count, p, _header_sha256(header.fields, "sha256")


def full_body(header: SignedObject, values: Sequence[int]) -> bytes:
    """`RCF2 || framed header || coded values`, refusing values that do not match the header
    (count, sha256), which every client would refuse anyway."""
    try:
        count, p, sha256 = _filter_numbers(header)
    except DeserializeError as e:
        raise InvalidInputError(str(e)) from None
    if len(values) != count or set_sha256(values) != sha256:
        raise InvalidInputError("values do not match the header's count and sha256")
    return FULL_MAGIC + header.framed() + encode_set(values, p)


def parse_full(body: bytes) -> tuple[SignedObject, list[int]]:
    """Split a full filter body into its header and values, checking the values against the
    header's count, p and sha256 (VerifyError if the values are not the ones signed for). The
    caller still verifies the header's signature."""
    header, offset = _framed_after(body, FULL_MAGIC)
    count, p, sha256 = _filter_numbers(header)
    values = decode_set(body[offset:], count, p)
    if set_sha256(values) != sha256:
        raise VerifyError("filter values do not match the header's sha256")
    return header, values


def _framed_after(body: bytes, magic: bytes) -> tuple[SignedObject, int]:
    """The framed signed object after `magic`, and the offset after it."""
    if body[: len(magic)] != magic:
        raise DeserializeError("body does not start with the expected magic")
    return parse_framed(body, len(magic))


def _delta_numbers(header: SignedObject) -> tuple[int, int]:
    if header.type != "filter-delta":
        raise DeserializeError("header is not a filter-delta header")
    return _header_int(header.fields, "added"), _header_int(header.fields, "removed")


_to_value_bytes = functools.partial(int.to_bytes, length=VALUE_SIZE, byteorder="big")


def _pack(values: Sequence[int]) -> bytes:
    return b"".join(map(_to_value_bytes, values))


def _unpack(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + VALUE_SIZE], "big") for i in range(0, len(data), 6)]


def delta_body(header: SignedObject, added: Sequence[int], removed: Sequence[int]) -> bytes:
    """`RCD2 || framed header || added || removed`, each list ascending, 6 bytes a value."""
    try:
        n_added, n_removed = _delta_numbers(header)
    except DeserializeError as e:
        raise InvalidInputError(str(e)) from None
    add = _check_ascending(added, "added values")
    rem = _check_ascending(removed, "removed values")
    if len(add) != n_added or len(rem) != n_removed:
        raise InvalidInputError("lists do not match the header's added and removed")
    if set(add) & set(rem):
        raise InvalidInputError("a value is both added and removed")
    return DELTA_MAGIC + header.framed() + _pack(add) + _pack(rem)


def parse_delta(body: bytes) -> tuple[SignedObject, list[int], list[int]]:
    """Split a delta body into its header, added and removed values (each ascending, disjoint,
    exactly as many as the header says). The caller verifies the header's signature and, after
    `apply_delta`, that the result's `set_sha256` is the header's and a trusted filter's."""
    header, offset = _framed_after(body, DELTA_MAGIC)
    n_added, n_removed = _delta_numbers(header)
    rest = body[offset:]
    if len(rest) != VALUE_SIZE * (n_added + n_removed):
        raise DeserializeError("delta lists do not have the header's lengths")
    added = _unpack(rest[: VALUE_SIZE * n_added])
    removed = _unpack(rest[VALUE_SIZE * n_added :])
    try:
        _check_ascending(added, "added values")
        _check_ascending(removed, "removed values")
    except InvalidInputError as e:
        raise DeserializeError(str(e)) from None
    if set(added) & set(removed):
        raise DeserializeError("a value is both added and removed")
    return header, added, removed


def apply_delta(values: Sequence[int], added: Sequence[int], removed: Sequence[int]) -> list[int]:
    """The sorted values after the delta. Refuses (InvalidInputError) adding a present value or
    removing an absent one: the delta was made against another list than ours, so the caller
    must fetch the full filter instead of computing a list nobody signed."""
    current = set(values)
    if len(current) != len(values):
        raise InvalidInputError("values repeat")
    add, rem = set(added), set(removed)
    if len(add) != len(added) or len(rem) != len(removed):
        raise InvalidInputError("a delta list repeats a value")
    if add & current:
        raise InvalidInputError("delta adds a value already present")
    if not rem <= current:
        raise InvalidInputError("delta removes a value not present")
    return sorted((current - rem) | add)
