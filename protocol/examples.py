"""Worked examples of protocol v2: fixed inputs, hex in, hex out.

`python -m protocol.examples` prints the `## Worked examples` section of docs/protocol.md, and a
test checks that the document holds exactly this output, so the examples can never drift from the
code. Every secret here is a published constant: the examples use the private fixed-randomness
paths (`rng=` with a constant, `_prove_claim_with_nonce`), which nothing else may use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.claim import _prove_claim_with_nonce
from protocol.encoding import canonical_json
from protocol.entry import (
    Handle,
    evaluate_inputs,
    filler_input,
    handle_key,
    hash_to_group,
    pad_input,
    prefix,
    seal_handle,
    tag,
)
from protocol.filter import FULL_MAGIC, encode_set, full_body, rice_parameter, set_sha256
from protocol.hazmat.hash_to_curve import hash_to_scalar
from protocol.hazmat.ristretto255 import scalar_mult, scalar_mult_base
from protocol.identity.keys import Strength
from protocol.sealed_keys import RegisteredKey, encode, metadata_sha256
from protocol.signed import cosign, sign, sign_signing_key

__all__ = ["render"]

_WIDTH = 64  # hex digits per line
_LABEL = 18
_EXAMPLE_DST = b"refcheck/v2/examples"


def _scalar(label: bytes) -> bytes:
    """A fixed example scalar: HashToScalar of a label (shown in hex; how it was made is only so
    the module needs no literal secrets)."""
    return hash_to_scalar(label, _EXAMPLE_DST)


def _seed(label: bytes) -> bytes:
    return hashlib.sha256(_EXAMPLE_DST + b"/" + label).digest()


def _fixed(data: bytes) -> Callable[[int], bytes]:
    """An "rng" that returns `data`: for the sealed handle's nonce only."""

    def rng(n: int) -> bytes:
        assert n == len(data)
        return data

    return rng


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class _Block:
    """One fenced block of `label  value` lines, long hex wrapped under its label."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def hex(self, label: str, data: bytes) -> None:
        self.text(label, data.hex())

    def text(self, label: str, value: str) -> None:
        if not value:
            self.lines.append(f"{label:<{_LABEL}}(empty)")
            return
        chunks = [value[i : i + _WIDTH] for i in range(0, len(value), _WIDTH)]
        self.lines.append(f"{label:<{_LABEL}}{chunks[0]}")
        self.lines += [" " * _LABEL + chunk for chunk in chunks[1:]]

    def render(self) -> str:
        return "```\n" + "\n".join(self.lines) + "\n```\n"


def _signed_filter(out: list[str]) -> None:
    key = Ed25519PrivateKey.from_private_bytes(_seed(b"network signing key"))
    witness = Ed25519PrivateKey.from_private_bytes(_seed(b"witness key"))
    values = [0x000000001234, 0x123456789ABC, 0x800000000000, 0xFFFFFFFFFFFF]
    fields = {
        "type": "filter",
        "network_id": "example",
        "issued_at": "2025-01-01T00:00:00Z",
        "expires_at": "2025-01-01T02:00:00Z",
        "key_id": "k1",
        "key_seq": 1,
        "revision": 1,
        "count": len(values),
        "p": rice_parameter(len(values)),
        "sha256": set_sha256(values).hex(),
        "prev_sha256": "0" * 64,
    }
    obj = sign(key, fields)
    cosigned = cosign(witness, obj)
    block = _Block()
    block.hex("signing seed", _seed(b"network signing key"))
    block.hex("signing public", _raw(key))
    block.text("header (ASCII)", obj.header.decode("ascii"))
    block.hex("signature", obj.signature)
    block.hex("witness seed", _seed(b"witness key"))
    block.hex("witness public", _raw(witness))
    block.hex("cosignature", cosigned.cosignatures[0][1])
    block.hex("framed", cosigned.framed())
    out += [
        "### A signed `filter` header",
        "",
        "Ed25519 keys from the seeds shown. The signature is over",
        '`b"refcheck/v2/filter\\x00" || header`, the cosignature over',
        '`b"refcheck/v2/cosign/filter\\x00" || header`, with the header exactly as shown (no',
        "re-encoding); `framed` carries the one cosignature. `sha256` is that of the four values",
        "of the next example.",
        "",
        block.render(),
    ]

    p = fields["p"]
    assert isinstance(p, int)
    coded = encode_set(values, p)
    bits = "".join(f"{b:08b}" for b in coded)
    gr = _Block()
    gr.text("values", " ".join(f"{v:012x}" for v in values))
    gr.text("count, p", f"{len(values)}, {p}")
    diffs = [b - a for a, b in zip([0, *values[:-1]], values, strict=True)]
    gr.text("differences", " ".join(f"{d:012x}" for d in diffs))
    for i, d in enumerate(diffs):
        codeword = "1" * (d >> p) + " 0 " + format(d & ((1 << p) - 1), f"0{p}b")
        gr.text(f"codeword {i}", codeword.strip())
    gr.text("bits", bits)
    gr.hex("coded set", coded)
    gr.hex("set sha256", set_sha256(values))
    gr.hex("full body", full_body(cosigned, values))
    out += [
        "### Golomb–Rice coding of a small set",
        "",
        "Four 48-bit values, `p = rice_parameter(4)`: per difference, `q` one-bits, a zero, the",
        "low `p` bits; zero-padded to a byte. The full body is",
        f"`{FULL_MAGIC.decode()}`, the framed header above, then the coded set.",
        "",
        gr.render(),
    ]


def _pseudonym_block(out: list[str]) -> tuple[bytes, bytes]:
    sk = _scalar(b"skS")
    value = b"refcheck/v1/email/a@example.org"
    element = hash_to_group(value)
    p = scalar_mult(sk, element)
    handle = Handle(
        entry_id="00000000-0000-4000-8000-000000000001",
        case_id="00000000-0000-4000-8000-000000000002",
        holder_org_id="00000000-0000-4000-8000-000000000003",
        holder_org_name="Example Org",
        kind="email",
        strength="strong",
    )
    nonce = bytes(range(24))
    block = _Block()
    block.hex("skS", sk)
    block.hex("pkS", scalar_mult_base(sk))
    block.text("value (ASCII)", value.decode("ascii"))
    block.hex("HashToGroup(v)", element)
    block.hex("P = skS·H(v)", p)
    block.hex("tag(P)", tag(p))
    block.text("prefix(P)", f"{prefix(p):012x} ({prefix(p)})")
    block.hex("handle_key(P)", handle_key(p))
    block.text("handle JSON", handle.to_plaintext().rstrip(b" ").decode("utf-8"))
    block.hex("handle plaintext", handle.to_plaintext())
    block.hex("nonce", nonce)
    block.hex("sealed handle", seal_handle(p, handle, rng=_fixed(nonce)))
    out += [
        "### Tag, prefix, handle key and sealed handle of a pseudonym",
        "",
        "`HashToGroup` with the VOPRF (mode 1) context string; the handle plaintext is its JSON",
        "padded with spaces to 256 bytes; the sealed handle is `nonce || SecretBox` (fixed nonce",
        "here; random in use).",
        "",
        block.render(),
    ]

    pads = _Block()
    pad = pad_input("00000000-0000-4000-8000-000000000002", 1)
    fill = filler_input(1)
    pad_point, fill_point = evaluate_inputs(sk, [pad, fill])
    pads.hex("pad input (i=1)", pad)
    pads.hex("pad point", pad_point)
    pads.text("pad prefix", f"{prefix(pad_point):012x}")
    pads.hex("filler input k=1", fill)
    pads.hex("filler point", fill_point)
    pads.text("filler prefix", f"{prefix(fill_point):012x}")
    out += [
        "### A pad and a filler",
        "",
        "Slot 1 of the case above, and the first filler, under the same `skS`:",
        "`skS·HashToGroup(input)`.",
        "",
        pads.render(),
    ]
    return sk, p


def _claim_block(out: list[str], p: bytes) -> None:
    r = _scalar(b"client blind r")
    k = _scalar(b"claim nonce k")
    z = scalar_mult(r, p)
    check_id, consent_id, index = "00000000-0000-4000-8000-00000000000c", "consent-1", 0
    proof = _prove_claim_with_nonce(
        k, check_id=check_id, consent_id=consent_id, index=index, tag=tag(p), p=p, z=z, r=r
    )
    block = _Block()
    block.text("check_id", check_id)
    block.text("consent_id", consent_id)
    block.text("index", str(index))
    block.hex("P", p)
    block.hex("tag", tag(p))
    block.hex("r", r)
    block.hex("Z = r·P", z)
    block.hex("k", k)
    block.hex("T = k·P", scalar_mult(k, p))
    block.hex("c", proof[:32])
    block.hex("s = k - c·r", proof[32:])
    block.hex("proof (c || s)", proof)
    out += [
        "### A claim proof",
        "",
        "For the pseudonym above, with the client's blind `r` and a fixed nonce `k` (random in",
        'use); `c` is `HashToScalar` under `b"HashToScalar-refcheck/v2/claim"`.',
        "",
        block.render(),
    ]


def _sealed_keys_block(out: list[str]) -> None:
    metadata = {
        "category": "sexual_exploitation",
        "child_victim": False,
        "finding": "substantiated",
        "finding_date": "2024-05-01",
        "key_id": "k1",
        "retention_until": "2034-05-01",
    }
    keys = [
        RegisteredKey(hash_to_group(b"refcheck/v1/email/a@example.org"), "email", Strength.STRONG),
        RegisteredKey(
            hash_to_group(b"refcheck/v1/name_dob/t1/1990-01-02/ani siti"),
            "name_dob",
            Strength.EXACT,
        ),
    ]
    digest = metadata_sha256(metadata)
    block = _Block()
    block.text("metadata JSON", canonical_json(metadata).decode("utf-8"))
    block.hex("metadata sha256", digest)
    block.text("keys_per_check", "4")
    block.hex("plaintext", encode(digest, keys, 4))
    out += [
        "### A `sealed_keys` plaintext",
        "",
        "Illustrative metadata (the real body's fields are the `POST /v1/cases` ones), two keys",
        "(an `email` and a `name_dob` element) in four slots; it is then sealed with a",
        "`SealedBox` to the registration key (random, so not shown).",
        "",
        block.render(),
    ]


def _signing_key_block(out: list[str]) -> None:
    old = Ed25519PrivateKey.from_private_bytes(_seed(b"network signing key"))
    new = Ed25519PrivateKey.from_private_bytes(_seed(b"next network signing key"))
    obj = sign_signing_key(
        old, new, network_id="example", key_seq=2, issued_at="2025-04-01T00:00:00Z"
    )
    block = _Block()
    block.hex("old public", _raw(old))
    block.hex("new seed", _seed(b"next network signing key"))
    block.hex("new public", _raw(new))
    block.text("header (ASCII)", obj.header.decode("ascii"))
    block.hex("signature", obj.signature)
    block.hex("cosignature", obj.cosignatures[0][1])
    block.hex("framed", obj.framed())
    out += [
        "### A `signing-key` rotation",
        "",
        "The first example's signing key (its seed is shown there) replaced by a new one: the",
        'signature by the old key over `b"refcheck/v2/signing-key\\x00" || header`, the',
        'cosignature by the new key over `b"refcheck/v2/cosign/signing-key\\x00" || header`.',
        "`key_id` is the first 16 hex digits of the SHA-256 of the raw key. A client trusting",
        "the old key verifies it against that key, with the new key as the witness.",
        "",
        block.render(),
    ]


def render() -> str:
    """The `## Worked examples` section, exactly as docs/protocol.md holds it."""
    out = [
        "## Worked examples",
        "",
        "Generated by `python -m protocol.examples`; a test checks that this section is exactly",
        "its output. Bytes are hex unless marked; long values wrap at 64 characters, nothing",
        "added. Every key and nonce below is public: never use them.",
        "",
    ]
    _signed_filter(out)
    _, p = _pseudonym_block(out)
    _claim_block(out, p)
    _sealed_keys_block(out)
    _signing_key_block(out)
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(render(), end="")
