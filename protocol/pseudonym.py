"""refcheck's derivations from a pseudonym `P` (design/protocol.md, "Pseudonyms and buckets").

One module for server and SDK, so both sides derive buckets, tags, handle keys and match proofs
with the same bytes; a divergence would make every check silently miss.

`P` is the 32-byte unblinded VOPRF element `skS·HashToGroup(value)`. Whoever holds `P` for a
registered record can open that record's handle, so `P` is as sensitive as the match itself:
the server holds it for registered records, a checking client only for its own applicant's keys.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, fields

import nacl.exceptions
import nacl.secret
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.errors import DeserializeError, InvalidInputError
from protocol.hazmat.ristretto255 import ELEMENT_SIZE, is_identity

__all__ = [
    "BUCKET_BITS_MAX",
    "BUCKET_BITS_MIN",
    "STRENGTHS",
    "TAG_SIZE",
    "Handle",
    "bucket",
    "handle_key",
    "match_proof",
    "open_handle",
    "seal_handle",
    "tag",
    "verify_match_proof",
]

BUCKET_BITS_MIN = 1
BUCKET_BITS_MAX = 24
TAG_SIZE = 16
STRENGTHS = frozenset({"strong", "exact", "variant"})

_BUCKET_DOMAIN = b"refcheck/v1/bucket"
_TAG_DOMAIN = b"refcheck/v1/tag"
_HANDLE_INFO = b"refcheck/v1/handle"


def _check_pseudonym(p: bytes) -> None:
    if len(p) != ELEMENT_SIZE:
        raise InvalidInputError("pseudonym has the wrong length")
    # An all-zero P (the identity) cannot come out of a verified evaluation; refusing it stops a
    # bug or a hostile caller from sealing a handle under a key every party can compute.
    if is_identity(p):
        raise InvalidInputError("pseudonym is the identity element")


def bucket(value: bytes, bits: int) -> int:
    """The first `bits` bits of `SHA-256(b"refcheck/v1/bucket" || value)`, as an integer.

    All the server learns about a checked key is this prefix, which a large crowd of identities
    shares (k-anonymity, as in Google's Password Checkup). The cap of 24 bits keeps that crowd
    large; more bits would let the server narrow a checked identifier down.
    """
    if not BUCKET_BITS_MIN <= bits <= BUCKET_BITS_MAX:
        raise InvalidInputError(f"bucket bits must be {BUCKET_BITS_MIN}..{BUCKET_BITS_MAX}")
    digest = hashlib.sha256(_BUCKET_DOMAIN + value).digest()
    return int.from_bytes(digest[:3], "big") >> (24 - bits)


def tag(p: bytes) -> bytes:
    """`SHA-256(b"refcheck/v1/tag" || P)[:16]`: what a client looks up in a bucket.

    A hash of `P`, not `P` itself, so a bucket listing does not hand out the pseudonyms (and with
    them the handle keys) of other people's records.
    """
    _check_pseudonym(p)
    return hashlib.sha256(_TAG_DOMAIN + p).digest()[:TAG_SIZE]


def handle_key(p: bytes) -> bytes:
    """`HKDF-SHA256(ikm=P, info=b"refcheck/v1/handle")`, 32 bytes, no salt.

    A separate key, not `P`, so the sealed handle and the match proof (keyed by `P`) never use the
    same key for two primitives.
    """
    _check_pseudonym(p)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HANDLE_INFO).derive(p)


@dataclass(frozen=True, slots=True)
class Handle:
    """What a registered record reveals to a client that matched it: where to ask, not what.

    `kind` and `strength` are those of the identifier key that matched (design/protocol.md,
    "Identifier keys"); `strength` is one of `STRENGTHS`.
    """

    entry_id: str
    case_id: str
    holder_org_id: str
    holder_org_name: str
    kind: str
    strength: str

    def __post_init__(self) -> None:
        for f in fields(self):
            if not isinstance(getattr(self, f.name), str):
                raise InvalidInputError(f"handle field {f.name} must be a string")
        if self.strength not in STRENGTHS:
            raise InvalidInputError("unknown key strength")

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON (no spaces), the plaintext that `seal_handle` encrypts."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Handle:
        """Parse `to_json` output; anything else raises DeserializeError."""
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise DeserializeError("handle is not JSON") from None
        names = {f.name for f in fields(cls)}
        if not isinstance(obj, dict) or set(obj) != names:
            raise DeserializeError("handle has the wrong fields")
        try:
            return cls(**obj)
        except InvalidInputError:
            raise DeserializeError("handle has an invalid field") from None


def seal_handle(p: bytes, handle: Handle) -> bytes:
    """Encrypt `handle` with XSalsa20-Poly1305 under `handle_key(P)`; returns nonce || box.

    The nonce is random (24 bytes, so collisions are negligible even for many records under the
    same `P`, such as one person registered by several organisations).
    """
    box = nacl.secret.SecretBox(handle_key(p))
    return bytes(box.encrypt(handle.to_json()))


def open_handle(p: bytes, sealed: bytes) -> Handle | None:
    """Open a sealed handle with `P`; None when it does not open, which is the normal outcome
    for an entry of someone else that shares the bucket.

    A box that opens but does not hold a handle raises DeserializeError: only a holder of `P` (the
    server itself, for registered records) can produce one, so it signals a faulty server rather
    than a non-match.
    """
    box = nacl.secret.SecretBox(handle_key(p))
    try:
        plaintext = box.decrypt(sealed)
    except nacl.exceptions.CryptoError:
        return None
    return Handle.from_json(plaintext)


def match_proof(p: bytes, consent_id: str) -> bytes:
    """`HMAC-SHA256(key=P, msg=consent_id)`, sent with a disclosure request.

    Only a client that derived `P` can compute it, so a client cannot open a disclosure request
    for a record it did not match (fishing by record reference); binding the consent stops a
    proof made for one applicant from being replayed under another consent.
    """
    _check_pseudonym(p)
    return hmac.new(p, consent_id.encode("utf-8"), hashlib.sha256).digest()


def verify_match_proof(p: bytes, consent_id: str, proof: bytes) -> bool:
    """True when `proof` is `match_proof(P, consent_id)`; compared in constant time so response
    timing does not let a client forge the proof byte by byte."""
    return hmac.compare_digest(match_proof(p, consent_id), proof)
