"""Byte encodings shared by the protocol-v2 modules: `lp`, `i2osp` and RFC 8785 JSON.

Why one module: a transcript hashed on the client and recomputed on the server must be built by
literally the same function, or one character of difference (a sorted key, an escape) makes every
proof fail, or worse, makes two different statements hash alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from protocol.errors import InvalidInputError

__all__ = ["MAX_SAFE_INTEGER", "canonical_json", "i2osp", "lp"]

#: RFC 8785 numbers are IEEE doubles; integers beyond this lose precision in JavaScript and
#: would be serialised differently there, so refuse them rather than hash two different texts.
MAX_SAFE_INTEGER = 2**53 - 1


def i2osp(value: int, length: int) -> bytes:
    """RFC 8017 I2OSP: `value` as `length` big-endian bytes; refuses values that do not fit
    (silent truncation would let two indexes share one encoding)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError("integer expected")
    if value < 0 or value >= 1 << (8 * length):
        raise InvalidInputError(f"integer does not fit in {length} bytes")
    return value.to_bytes(length, "big")


def lp(x: str) -> bytes:
    """`I2OSP(len(x), 2) || x` for the UTF-8 bytes of `x`: a length prefix, so that the
    concatenation of two ids cannot be split another way (`"ab" + "c"` vs `"a" + "bc"`)."""
    if not isinstance(x, str):
        raise InvalidInputError("lp takes a string")
    try:
        data = x.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError("string is not valid Unicode (lone surrogate)") from None
    return i2osp(len(data), 2) + data


def _utf16_key(key: str) -> bytes:
    # RFC 8785 sorts member names by their UTF-16 code units, which differs from Python's code
    # point order for characters above U+FFFF against U+E000..U+FFFF.
    return key.encode("utf-16-be", "surrogatepass")


def _canonical(value: Any) -> Any:
    """Check `value` holds only what RFC 8785 serialises exactly as `json.dumps` does, and
    return it with every object's members in RFC 8785 order."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise InvalidInputError("integer outside the exactly representable JSON range")
        return value
    if isinstance(value, float):
        # ECMAScript number formatting differs from Python's repr; no protocol value is a float.
        raise InvalidInputError("floats are not accepted in canonical JSON")
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise InvalidInputError("JSON object keys must be strings")
        return {k: _canonical(value[k]) for k in sorted(value, key=_utf16_key)}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_canonical(v) for v in value]
    raise InvalidInputError(f"{type(value).__name__} has no canonical JSON form")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) serialisation of `value`, as UTF-8 bytes.

    Limited to what the protocol uses (objects with string keys, arrays, strings, integers up to
    2^53 - 1, booleans, null); for those, compact `json.dumps` with `ensure_ascii=False` is exactly
    RFC 8785: the same escapes (`\\"`, `\\\\`, `\\b\\f\\n\\r\\t`, other controls as lower-case
    `\\u00xx`), every other character literal, and integers in plain decimal. Floats are refused
    because ECMAScript's number formatting is not Python's.
    """
    text = json.dumps(_canonical(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: RFC 8785 requires valid Unicode strings.
        raise InvalidInputError("string is not valid Unicode (lone surrogate)") from None
