"""RFC 9497 oblivious pseudorandom functions, suite ristretto255-SHA512, modes OPRF, VOPRF, POPRF.

Method names are the RFC's (`blind`, `blind_evaluate`, `finalize`, `evaluate`, `generate_proof`,
`verify_proof`) so the code can be read side by side with the RFC. All values cross this API as
bytes: serialized elements (32 bytes), scalars (32 bytes), proofs (`c || s`, 64 bytes).

refcheck uses VOPRF (mode 1) for every evaluation (see design/protocol.md): the DLEQ proof lets a
client check that the server used its published key, so a server cannot tag one client with a key
of its own. refcheck stores the unblinded element `P = skS·HashToGroup(input)` rather than the RFC
`Finalize` hash, so that a key rotation can multiply stored values by `skS'/skS`; hence
`VOPRFClient.verify_and_unblind` and `unblind`.

Randomness is passed in (`rng`, default `os.urandom`); the vector tests fix the blind and the
proof nonce through private methods only, so production code cannot choose either by mistake.

Errors: `InvalidInputError`, `DeserializeError`, `VerifyError` (and the two RFC errors that only a
negligible-probability event or knowledge of the key can trigger, `DeriveKeyPairError` and
`InverseError`), all subclasses of `ProtocolError`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from protocol.errors import (
    DeriveKeyPairError,
    DeserializeError,
    InvalidInputError,
    InverseError,
    VerifyError,
)
from protocol.hazmat.hash_to_curve import hash_to_group, hash_to_scalar
from protocol.hazmat.ristretto255 import (
    SCALAR_SIZE,
    Rng,
    add,
    deserialize_element,
    deserialize_scalar,
    is_identity,
    random_scalar,
    scalar_add,
    scalar_batch_invert,
    scalar_invert,
    scalar_mul,
    scalar_mult,
    scalar_mult_base,
    scalar_sub,
)

__all__ = [
    "MAX_BATCH",
    "MAX_INPUT_SIZE",
    "MODE_OPRF",
    "MODE_POPRF",
    "MODE_VOPRF",
    "PROOF_SIZE",
    "SUITE",
    "OPRFClient",
    "OPRFServer",
    "POPRFClient",
    "POPRFServer",
    "Rng",
    "VOPRFClient",
    "VOPRFServer",
    "context_string",
    "derive_key_pair",
    "generate_key_pair",
    "unblind",
]

MODE_OPRF = 0
MODE_VOPRF = 1
MODE_POPRF = 2
SUITE = "ristretto255-SHA512"
PROOF_SIZE = 2 * SCALAR_SIZE
SEED_SIZE = 32  # Ns of the suite: DeriveKeyPair takes exactly this many seed bytes
MAX_INPUT_SIZE = 2**16 - 1  # inputs and info are length-prefixed with two bytes
MAX_BATCH = 2**16 - 1  # ComputeComposites numbers elements with two bytes


def context_string(mode: int) -> bytes:
    """RFC 9497 contextString: `"OPRFV1-" || I2OSP(mode, 1) || "-" || identifier`. It is in every
    DST, so an output or proof of one mode or suite is never valid in another."""
    if mode not in (MODE_OPRF, MODE_VOPRF, MODE_POPRF):
        raise InvalidInputError("unknown OPRF mode")
    return b"OPRFV1-" + bytes([mode]) + b"-" + SUITE.encode("ascii")


class _Context:
    """Domain-separation tags of one mode, built once instead of per call."""

    __slots__ = ("group_dst", "scalar_dst", "seed_dst", "derive_dst")

    def __init__(self, mode: int) -> None:
        ctx = context_string(mode)
        self.group_dst = b"HashToGroup-" + ctx
        self.scalar_dst = b"HashToScalar-" + ctx
        self.seed_dst = _lp(b"Seed-" + ctx)
        self.derive_dst = b"DeriveKeyPair" + ctx


def _lp(data: bytes) -> bytes:
    """`I2OSP(len(data), 2) || data`, the RFC's length prefix that keeps transcripts unambiguous."""
    return len(data).to_bytes(2, "big") + data


_CONTEXTS = {mode: _Context(mode) for mode in (MODE_OPRF, MODE_VOPRF, MODE_POPRF)}


def _context(mode: int) -> _Context:
    try:
        return _CONTEXTS[mode]
    except KeyError:
        raise InvalidInputError("unknown OPRF mode") from None


# --- input checks ---------------------------------------------------------------------------


def _check_input(data: bytes, what: str = "input") -> None:
    if len(data) > MAX_INPUT_SIZE:
        raise InvalidInputError(f"{what} is longer than {MAX_INPUT_SIZE} bytes")


def _check_batch(n: int, *others: int) -> None:
    if n == 0:
        raise InvalidInputError("empty batch")
    if n > MAX_BATCH:
        raise InvalidInputError(f"batch larger than {MAX_BATCH}")
    if any(m != n for m in others):
        raise InvalidInputError("batch lists differ in length")


def _nonzero_scalar(data: bytes) -> bytes:
    """A canonical non-zero scalar (private key or blind)."""
    s = deserialize_scalar(data)
    if hmac.compare_digest(s, bytes(SCALAR_SIZE)):
        raise InvalidInputError("scalar must not be zero")
    return s


# --- shared RFC steps -----------------------------------------------------------------------


def _input_element(ctx: _Context, input: bytes) -> bytes:
    _check_input(input)
    element = hash_to_group(input, ctx.group_dst)
    if is_identity(element):
        raise InvalidInputError("input hashes to the identity element")
    return element


def _blind_with(ctx: _Context, input: bytes, blind: bytes) -> bytes:
    return scalar_mult(_nonzero_scalar(blind), _input_element(ctx, input))


def _finalize_hash(input: bytes, unblinded_element: bytes, info: bytes | None = None) -> bytes:
    """RFC 9497 Finalize hash; `info` is framed in only in POPRF mode."""
    framed_info = b"" if info is None else _lp(info)
    return hashlib.sha512(_lp(input) + framed_info + _lp(unblinded_element) + b"Finalize").digest()


def _tweak(ctx: _Context, info: bytes) -> bytes:
    """POPRF `m = HashToScalar("Info" || I2OSP(len(info), 2) || info)`."""
    _check_input(info, "info")
    return hash_to_scalar(b"Info" + _lp(info), ctx.scalar_dst)


def _evaluate_all(k: bytes, elements: Sequence[bytes]) -> list[bytes]:
    """`k·E_i` for each element, which libsodium decodes and checks on the way; a bad one raises
    DeserializeError carrying its position, before anything is returned."""
    out = []
    for i, element in enumerate(elements):
        try:
            out.append(scalar_mult(k, element))
        except DeserializeError:
            raise DeserializeError(
                "blinded element is not a valid non-identity element", index=i
            ) from None
    return out


def _composite_weights(
    ctx: _Context, b: bytes, cs: Sequence[bytes], ds: Sequence[bytes]
) -> list[bytes]:
    """The `d_i` of RFC 9497 ComputeComposites: a hash of the whole statement per element, so a
    prover cannot pick elements that cancel in the combination (which would let one false
    evaluation hide in a batch)."""
    seed = hashlib.sha512(_lp(b) + ctx.seed_dst).digest()
    prefix = _lp(seed)
    return [
        hash_to_scalar(
            prefix + i.to_bytes(2, "big") + _lp(c) + _lp(d) + b"Composite", ctx.scalar_dst
        )
        for i, (c, d) in enumerate(zip(cs, ds, strict=True))
    ]


def _linear_combination(weights: Sequence[bytes], elements: Sequence[bytes]) -> bytes:
    """`sum(w_i·E_i)`. Each `E_i` is validated by the multiplication itself (DeserializeError)."""
    total = scalar_mult(weights[0], elements[0])
    for w, e in zip(weights[1:], elements[1:], strict=True):
        total = add(total, scalar_mult(w, e))
    return total


def _challenge(ctx: _Context, b: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes) -> bytes:
    transcript = _lp(b) + _lp(m) + _lp(z) + _lp(t2) + _lp(t3) + b"Challenge"
    return hash_to_scalar(transcript, ctx.scalar_dst)


def _generate_proof(
    ctx: _Context, k: bytes, b: bytes, cs: Sequence[bytes], ds: Sequence[bytes], r: bytes
) -> bytes:
    """RFC 9497 GenerateProof with ComputeCompositesFast, for `D_i = k·C_i` and `B = k·G`.

    The prover knows `k`, so it computes `Z = k·M` with one multiplication instead of
    `sum(d_i·D_i)` (n multiplications and additions). `cs` must be valid elements (the callers
    have just multiplied them) and `ds` must be `k·cs`, or the proof will not verify.
    """
    m = _linear_combination(_composite_weights(ctx, b, cs, ds), cs)
    z = scalar_mult(k, m)
    t2 = scalar_mult_base(r)
    t3 = scalar_mult(r, m)
    c = _challenge(ctx, b, m, z, t2, t3)
    s = scalar_sub(r, scalar_mul(c, k))
    return c + s


def _verify_proof(
    ctx: _Context, b: bytes, cs: Sequence[bytes], ds: Sequence[bytes], proof: bytes
) -> None:
    """RFC 9497 VerifyProof with ComputeComposites; raises instead of returning False, so a
    caller cannot forget to look at the result.

    Every element of `cs` and `ds` is decoded and checked (non-canonical, invalid or identity
    raises DeserializeError) by the multiplications that use it.
    """
    if len(proof) != PROOF_SIZE:
        raise DeserializeError("proof has the wrong length")
    c = deserialize_scalar(proof[:SCALAR_SIZE])
    s = deserialize_scalar(proof[SCALAR_SIZE:])
    zero = bytes(SCALAR_SIZE)
    # An honest prover produces c = 0 or s = 0 with probability 2^-252; refusing them keeps the
    # zero-scalar errors of the group layer from surfacing as anything but a failed proof.
    if hmac.compare_digest(c, zero) or hmac.compare_digest(s, zero):
        raise VerifyError("proof does not verify")
    weights = _composite_weights(ctx, b, cs, ds)
    m = _linear_combination(weights, cs)
    z = _linear_combination(weights, ds)
    t2 = add(scalar_mult_base(s), scalar_mult(c, b))
    t3 = add(scalar_mult(s, m), scalar_mult(c, z))
    if not hmac.compare_digest(_challenge(ctx, b, m, z, t2, t3), c):
        raise VerifyError("proof does not verify")


# --- key pairs ------------------------------------------------------------------------------


def derive_key_pair(seed: bytes, info: bytes, mode: int) -> tuple[bytes, bytes]:
    """RFC 9497 DeriveKeyPair: `(skS, pkS)` from a 32-byte seed and public `info`.

    Deterministic, so a key can be re-created from a seed kept offline (or split among key
    holders) instead of being backed up itself.
    """
    ctx = _context(mode)
    if len(seed) != SEED_SIZE:
        raise InvalidInputError(f"seed must be {SEED_SIZE} bytes")
    _check_input(info, "info")
    derive_input = seed + _lp(info)
    zero = bytes(SCALAR_SIZE)
    for counter in range(256):
        sk = hash_to_scalar(derive_input + bytes([counter]), ctx.derive_dst)
        if not hmac.compare_digest(sk, zero):
            return sk, scalar_mult_base(sk)
    raise DeriveKeyPairError("no non-zero scalar derived")


def generate_key_pair(mode: int, *, rng: Rng | None = None) -> tuple[bytes, bytes]:
    """RFC 9497 GenerateKeyPair: a random `(skS, pkS)`. Key pairs are the same in every mode;
    `mode` is checked so a caller's typo fails here rather than later."""
    _context(mode)
    sk = random_scalar(rng)
    return sk, scalar_mult_base(sk)


def unblind(blind: bytes, evaluated_element: bytes) -> bytes:
    """`blind^-1 · evaluated_element`: the serialized `N` of RFC 9497 Finalize, which refcheck
    stores as the pseudonym `P`.

    No proof is checked here; use `VOPRFClient.verify_and_unblind` for anything the server sent.
    """
    return scalar_mult(scalar_invert(_nonzero_scalar(blind)), evaluated_element)


# --- OPRF (mode 0) --------------------------------------------------------------------------


class _Client:
    """Blinding, common to the clients of all modes."""

    __slots__ = ()
    _ctx: _Context

    def blind(self, input: bytes, *, rng: Rng | None = None) -> tuple[bytes, bytes]:
        """Return `(blind, blinded_element)`. Keep `blind` secret and use it once: the server
        sees only `blind·HashToGroup(input)`, which is uniformly random to it."""
        blind = random_scalar(rng)
        return blind, _blind_with(self._ctx, input, blind)

    def _blind_with(self, input: bytes, blind: bytes) -> bytes:
        """Blind with a given scalar; for the RFC test vectors only (a chosen blind is not
        blind)."""
        return _blind_with(self._ctx, input, blind)


class _VerifyingClient(_Client):
    """The pinned server public key, common to the clients that check proofs (modes 1 and 2)."""

    __slots__ = ("_pk",)

    def __init__(self, public_key: bytes) -> None:
        self._pk = deserialize_element(public_key)

    @property
    def public_key(self) -> bytes:
        return self._pk


class _Server:
    """Key handling, common to the servers of all modes."""

    __slots__ = ("_sk", "_pk")

    def __init__(self, private_key: bytes) -> None:
        self._sk = _nonzero_scalar(private_key)
        self._pk = scalar_mult_base(self._sk)

    @property
    def public_key(self) -> bytes:
        """`pkS = skS·G`, serialized."""
        return self._pk

    def __repr__(self) -> str:
        # Never print the key, even in a debugger or a traceback's locals.
        return f"{type(self).__name__}(public_key={self._pk.hex()})"


class OPRFClient(_Client):
    """RFC 9497 OPRF client (mode 0): no proof, so it must trust the server's key."""

    __slots__ = ()
    _ctx = _CONTEXTS[MODE_OPRF]

    def finalize(self, input: bytes, blind: bytes, evaluated_element: bytes) -> bytes:
        """The 64-byte PRF output for `input`."""
        return _finalize_hash(input, unblind(blind, evaluated_element))

    def finalize_batch(
        self, inputs: Sequence[bytes], blinds: Sequence[bytes], evaluated_elements: Sequence[bytes]
    ) -> list[bytes]:
        """`finalize` for each position of equally long lists."""
        _check_batch(len(inputs), len(blinds), len(evaluated_elements))
        return [
            self.finalize(i, b, e)
            for i, b, e in zip(inputs, blinds, evaluated_elements, strict=True)
        ]


class OPRFServer(_Server):
    """RFC 9497 OPRF server (mode 0)."""

    __slots__ = ()
    _ctx = _CONTEXTS[MODE_OPRF]

    def blind_evaluate(self, blinded_element: bytes) -> bytes:
        """`skS·blinded_element`; refuses an invalid or identity element (DeserializeError)."""
        return scalar_mult(self._sk, blinded_element)

    def evaluate(self, input: bytes) -> bytes:
        """The PRF output for `input` computed with the key directly (RFC Evaluate)."""
        return _finalize_hash(input, scalar_mult(self._sk, _input_element(self._ctx, input)))


# --- VOPRF (mode 1) -------------------------------------------------------------------------


class VOPRFClient(_VerifyingClient):
    """RFC 9497 VOPRF client (mode 1), pinned to the server public key it was given."""

    __slots__ = ()
    _ctx = _CONTEXTS[MODE_VOPRF]

    def verify_proof(
        self, blinded_elements: Sequence[bytes], evaluated_elements: Sequence[bytes], proof: bytes
    ) -> None:
        """Check the batch DLEQ proof that `evaluated_i = skS·blinded_i` for the pinned `pkS`.

        Raises VerifyError (or DeserializeError for malformed elements) on failure: this is what
        stops a server from evaluating with a key other than the one it published.
        """
        _check_batch(len(blinded_elements), len(evaluated_elements))
        _verify_proof(self._ctx, self._pk, blinded_elements, evaluated_elements, proof)

    def verify_and_unblind(
        self,
        blinds: Sequence[bytes],
        blinded_elements: Sequence[bytes],
        evaluated_elements: Sequence[bytes],
        proof: bytes,
    ) -> list[bytes]:
        """Verify the batch proof, then return `blind_i^-1 · evaluated_i` for each position: the
        pseudonyms `P = skS·HashToGroup(input_i)` that refcheck stores and matches."""
        _check_batch(len(blinds), len(blinded_elements), len(evaluated_elements))
        checked_blinds = [deserialize_scalar(b) for b in blinds]
        _verify_proof(self._ctx, self._pk, blinded_elements, evaluated_elements, proof)
        inverses = scalar_batch_invert(checked_blinds)
        return [scalar_mult(inv, e) for inv, e in zip(inverses, evaluated_elements, strict=True)]

    def finalize(
        self,
        input: bytes,
        blind: bytes,
        evaluated_element: bytes,
        blinded_element: bytes,
        proof: bytes,
    ) -> bytes:
        """Verify the proof and return the 64-byte PRF output (RFC Finalize)."""
        return self.finalize_batch([input], [blind], [evaluated_element], [blinded_element], proof)[
            0
        ]

    def finalize_batch(
        self,
        inputs: Sequence[bytes],
        blinds: Sequence[bytes],
        evaluated_elements: Sequence[bytes],
        blinded_elements: Sequence[bytes],
        proof: bytes,
    ) -> list[bytes]:
        """Batched Finalize: one proof covers every position."""
        _check_batch(len(inputs), len(blinds))
        for input in inputs:
            _check_input(input)
        unblinded = self.verify_and_unblind(blinds, blinded_elements, evaluated_elements, proof)
        return [_finalize_hash(i, n) for i, n in zip(inputs, unblinded, strict=True)]


class VOPRFServer(_Server):
    """RFC 9497 VOPRF server (mode 1): every evaluation comes with a DLEQ proof."""

    __slots__ = ()
    _ctx = _CONTEXTS[MODE_VOPRF]

    def blind_evaluate(
        self, blinded_element: bytes, *, rng: Rng | None = None
    ) -> tuple[bytes, bytes]:
        """Return `(evaluated_element, proof)` for one blinded element."""
        evaluated, proof = self.blind_evaluate_batch([blinded_element], rng=rng)
        return evaluated[0], proof

    def blind_evaluate_batch(
        self, blinded_elements: Sequence[bytes], *, rng: Rng | None = None
    ) -> tuple[list[bytes], bytes]:
        """Evaluate a batch and prove all of it with one DLEQ proof.

        Cost: 2n + 2 scalar multiplications, one base multiplication and n - 1 additions. Each
        blinded element is decoded and checked inside its evaluation (invalid, non-canonical or
        identity: DeserializeError with `index` set), so callers need not validate elements
        first; doing so costs about a tenth of a multiplication per element for nothing.
        """
        return self._blind_evaluate_batch_with(blinded_elements, random_scalar(rng))

    def _blind_evaluate_batch_with(
        self, blinded_elements: Sequence[bytes], r: bytes
    ) -> tuple[list[bytes], bytes]:
        """As `blind_evaluate_batch` with a given proof nonce: for the RFC vectors only, since a
        known or repeated `r` gives away `skS`."""
        _check_batch(len(blinded_elements))
        evaluated = _evaluate_all(self._sk, blinded_elements)
        proof = _generate_proof(self._ctx, self._sk, self._pk, blinded_elements, evaluated, r)
        return evaluated, proof

    def generate_proof(
        self,
        blinded_elements: Sequence[bytes],
        evaluated_elements: Sequence[bytes],
        *,
        rng: Rng | None = None,
    ) -> bytes:
        """RFC GenerateProof for `evaluated_i = skS·blinded_i`, which the caller must have
        computed with this server (the proof of anything else does not verify)."""
        _check_batch(len(blinded_elements), len(evaluated_elements))
        return _generate_proof(
            self._ctx, self._sk, self._pk, blinded_elements, evaluated_elements, random_scalar(rng)
        )

    def evaluate(self, input: bytes) -> bytes:
        """The PRF output for `input` computed with the key directly (RFC Evaluate)."""
        return _finalize_hash(input, scalar_mult(self._sk, _input_element(self._ctx, input)))


# --- POPRF (mode 2) -------------------------------------------------------------------------


class POPRFClient(_VerifyingClient):
    """RFC 9497 POPRF client (mode 2): the output also depends on public `info`, and the proof is
    for the tweaked key `pkS + HashToScalar(info)·G`."""

    __slots__ = ()
    _ctx = _CONTEXTS[MODE_POPRF]

    def _tweaked_key(self, info: bytes) -> bytes:
        tweaked = add(scalar_mult_base(_tweak(self._ctx, info)), self._pk)
        if is_identity(tweaked):
            raise InvalidInputError("info gives an identity tweaked key")
        return tweaked

    def verify_proof(
        self,
        blinded_elements: Sequence[bytes],
        evaluated_elements: Sequence[bytes],
        proof: bytes,
        info: bytes,
    ) -> None:
        """Check the batch proof that `blinded_i = t·evaluated_i` with `t·G` the tweaked key."""
        _check_batch(len(blinded_elements), len(evaluated_elements))
        _verify_proof(
            self._ctx, self._tweaked_key(info), evaluated_elements, blinded_elements, proof
        )

    def finalize(
        self,
        input: bytes,
        blind: bytes,
        evaluated_element: bytes,
        blinded_element: bytes,
        proof: bytes,
        info: bytes,
    ) -> bytes:
        """Verify the proof and return the 64-byte PRF output (RFC Finalize)."""
        return self.finalize_batch(
            [input], [blind], [evaluated_element], [blinded_element], proof, info
        )[0]

    def finalize_batch(
        self,
        inputs: Sequence[bytes],
        blinds: Sequence[bytes],
        evaluated_elements: Sequence[bytes],
        blinded_elements: Sequence[bytes],
        proof: bytes,
        info: bytes,
    ) -> list[bytes]:
        """Batched Finalize: one proof covers every position."""
        _check_batch(len(inputs), len(blinds), len(evaluated_elements), len(blinded_elements))
        for input in inputs:
            _check_input(input)
        checked_blinds = [deserialize_scalar(b) for b in blinds]
        self.verify_proof(blinded_elements, evaluated_elements, proof, info)
        inverses = scalar_batch_invert(checked_blinds)
        return [
            _finalize_hash(i, scalar_mult(inv, e), info)
            for i, inv, e in zip(inputs, inverses, evaluated_elements, strict=True)
        ]


class POPRFServer(_Server):
    """RFC 9497 POPRF server (mode 2)."""

    __slots__ = ()
    _ctx = _CONTEXTS[MODE_POPRF]

    def _tweaked_secret(self, info: bytes) -> bytes:
        t = scalar_add(self._sk, _tweak(self._ctx, info))
        if hmac.compare_digest(t, bytes(SCALAR_SIZE)):
            raise InverseError("skS + HashToScalar(info) is zero")
        return t

    def blind_evaluate(
        self, blinded_element: bytes, info: bytes, *, rng: Rng | None = None
    ) -> tuple[bytes, bytes]:
        """Return `(evaluated_element, proof)` for one blinded element under `info`."""
        evaluated, proof = self.blind_evaluate_batch([blinded_element], info, rng=rng)
        return evaluated[0], proof

    def blind_evaluate_batch(
        self, blinded_elements: Sequence[bytes], info: bytes, *, rng: Rng | None = None
    ) -> tuple[list[bytes], bytes]:
        """Evaluate `(skS + m)^-1 · blinded_i` for each and prove the batch with one proof."""
        return self._blind_evaluate_batch_with(blinded_elements, info, random_scalar(rng))

    def _blind_evaluate_batch_with(
        self, blinded_elements: Sequence[bytes], info: bytes, r: bytes
    ) -> tuple[list[bytes], bytes]:
        """As `blind_evaluate_batch` with a given proof nonce: for the RFC vectors only."""
        _check_batch(len(blinded_elements))
        t = self._tweaked_secret(info)
        t_inv = scalar_invert(t)
        evaluated = _evaluate_all(t_inv, blinded_elements)
        # The statement is reversed: blinded_i = t·evaluated_i, under the tweaked key t·G.
        proof = _generate_proof(self._ctx, t, scalar_mult_base(t), evaluated, blinded_elements, r)
        return evaluated, proof

    def generate_proof(
        self,
        blinded_elements: Sequence[bytes],
        evaluated_elements: Sequence[bytes],
        info: bytes,
        *,
        rng: Rng | None = None,
    ) -> bytes:
        """RFC GenerateProof for a batch this server evaluated under `info`."""
        _check_batch(len(blinded_elements), len(evaluated_elements))
        t = self._tweaked_secret(info)
        return _generate_proof(
            self._ctx,
            t,
            scalar_mult_base(t),
            evaluated_elements,
            blinded_elements,
            random_scalar(rng),
        )

    def evaluate(self, input: bytes, info: bytes) -> bytes:
        """The PRF output for `(input, info)` computed with the key directly (RFC Evaluate)."""
        element = _input_element(self._ctx, input)
        t_inv = scalar_invert(self._tweaked_secret(info))
        return _finalize_hash(input, scalar_mult(t_inv, element), info)
