"""RFC 9162 Merkle trees: hashes, tree heads, and inclusion and consistency proofs.

The transparency log (docs/protocol.md, "Signed objects", type `tree-head`) is the tree of
RFC 9162 section 2.1: leaf `SHA-256(0x00 || entry)`, node `SHA-256(0x01 || left || right)`, and
the tree of `n > 1` leaves split at `k`, the largest power of two smaller than `n`. The two
prefixes keep a leaf from ever being presented as a node (a second-preimage attack on the tree).

Proof generation is written against a `SubtreeHash` callable (`MTH(D[start:end])`), so a store
that keeps the hashes of complete subtrees (the server's database) answers a proof with
O(log n) look-ups, and `MemoryTree` serves tests and small callers. Verification is RFC 9162
sections 2.1.3.2 and 2.1.4.2 as written, with their exact refusals; every failure is
`VerifyError` and names no hash.

pymerkle was considered: its proofs are its own format (a path with a parenthesisation rule,
1-based indices) rather than RFC 9162's list of hashes, and it recomputes subtree hashes from
leaves where the log keeps them; so the algorithms are written out here, checked against the
RFC 6962 sample-tree vectors (tests/protocol/vectors/rfc9162_merkle.json).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

from protocol.errors import InvalidInputError, VerifyError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MemoryTree",
    "SubtreeHash",
    "consistency_proof",
    "frontier",
    "inclusion_proof",
    "largest_power_of_two_below",
    "leaf_hash",
    "node_hash",
    "root_from_frontier",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
#: MTH({}): the hash of the empty string (RFC 9162 section 2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()
#: Largest tree size accepted anywhere (proof paths stay below 2 × 64 hashes).
MAX_TREE_SIZE = 1 << 62

#: `MTH(D[start:end])` of a store, for `0 <= start < end <= size`.
SubtreeHash = Callable[[int, int], bytes]


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """`k` of RFC 9162: the largest power of two strictly smaller than `n` (n > 1)."""
    if n < 2:
        raise InvalidInputError("a split needs at least two leaves")
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        raise InvalidInputError("tree size out of range")


# --- complete subtrees --------------------------------------------------------------------


def frontier(size: int) -> list[tuple[int, int]]:
    """The complete subtrees whose concatenation is a tree of `size` leaves, left to right, as
    `(level, index)`: the subtree of leaves `index·2^level .. (index+1)·2^level − 1`.

    One per set bit of `size`; the right-hand side of every split in RFC 9162's recursion.
    """
    _check_size(size)
    out: list[tuple[int, int]] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, start >> level))
            start += 1 << level
    return out


def root_from_frontier(hashes: Sequence[bytes]) -> bytes:
    """MTH of a tree from the hashes of its `frontier`, left to right."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


# --- proofs (RFC 9162 sections 2.1.3.1 and 2.1.4.1) ---------------------------------------


def inclusion_proof(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """PATH(index, D[size]): the audit path of leaf `index` in the tree of `size` leaves."""
    _check_size(size)
    if not 0 <= index < size:
        raise InvalidInputError("leaf index outside the tree")
    path: list[bytes] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = largest_power_of_two_below(end - start)
        if m < k:
            path.append(subtree(start + k, end))
            end = start + k
        else:
            path.append(subtree(start, start + k))
            start, m = start + k, m - k
    path.reverse()  # RFC order: the leaf's sibling first
    return path


def consistency_proof(first: int, second: int, subtree: SubtreeHash) -> list[bytes]:
    """PROOF(first, D[second]): shows the tree of `first` leaves is a prefix of the tree of
    `second` leaves. Empty when `first` is 0 or equals `second`."""
    _check_size(second)
    if not 0 <= first <= second:
        raise InvalidInputError("first tree size must be between 0 and the second")
    if first == 0 or first == second:
        return []
    proof: list[bytes] = []
    start, end, m, whole = 0, second, first, True
    # SUBPROOF(m, D[start:end], b), unrolled: each step appends one hash and recurses on one side.
    while True:
        n = end - start
        if m == n:
            if not whole:
                proof.append(subtree(start, end))
            break
        k = largest_power_of_two_below(n)
        if m <= k:
            proof.append(subtree(start + k, end))
            end = start + k
        else:
            proof.append(subtree(start, start + k))
            start, m, whole = start + k, m - k, False
    proof.reverse()
    return proof


# --- verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2) ---------------------------------


def _check_hashes(hashes: Sequence[bytes]) -> None:
    for h in hashes:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise VerifyError("proof element is not a 32-byte hash")


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise VerifyError unless `proof` shows `leaf` (a leaf hash) at `index` in the tree of
    `size` leaves whose root is `root`."""
    _check_size(size)
    _check_hashes([leaf, root, *proof])
    if not 0 <= index < size:
        raise VerifyError("leaf index outside the tree")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise VerifyError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerifyError("inclusion proof is too short")
    if not hmac.compare_digest(r, root):
        raise VerifyError("inclusion proof does not lead to the root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise VerifyError unless `proof` shows the tree of `first` leaves (root `first_root`) to
    be a prefix of the tree of `second` leaves (root `second_root`): nothing was changed or
    removed in between, only appended."""
    _check_size(first)
    _check_size(second)
    _check_hashes([first_root, second_root, *proof])
    if first > second:
        raise VerifyError("the second tree is smaller than the first")
    if first == second:
        if proof:
            raise VerifyError("a proof between equal sizes must be empty")
        if not hmac.compare_digest(first_root, second_root):
            raise VerifyError("two trees of the same size have different roots")
        return
    if first == 0:
        # Every tree extends the empty one; RFC 9162 has no proof for it.
        if proof:
            raise VerifyError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise VerifyError("consistency proof is empty")
    path = list(proof)
    # Step 2: when `first` is an exact power of two, the first tree's root is a node of the path.
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    # Step 4: shift right until the lowest bit of fn is clear.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerifyError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerifyError("consistency proof is too short")
    if not (hmac.compare_digest(fr, first_root) and hmac.compare_digest(sr, second_root)):
        raise VerifyError("consistency proof does not lead to both roots")


# --- an in-memory tree --------------------------------------------------------------------


class MemoryTree:
    """A tree held in memory (tests, verifiers that hold every entry): leaf hashes plus the
    hash of every complete subtree, so roots and proofs of any earlier size are cheap."""

    def __init__(self, entries: Sequence[bytes] = ()) -> None:
        # levels[h][i]: hash of the complete subtree (h, i).
        self._levels: list[list[bytes]] = [[]]
        for entry in entries:
            self.append(entry)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, entry: bytes) -> int:
        """Append an entry; return its leaf index."""
        return self.append_leaf_hash(leaf_hash(entry))

    def append_leaf_hash(self, h: bytes) -> int:
        index = self.size
        self._levels[0].append(h)
        level, i = 0, index
        while i & 1:
            left = self._levels[level][i - 1]
            level, i = level + 1, i >> 1
            if len(self._levels) == level:
                self._levels.append([])
            h = node_hash(left, h)
            self._levels[level].append(h)
        return index

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for any `0 <= start < end <= size`."""
        if not 0 <= start < end <= self.size:
            raise InvalidInputError("subtree outside the tree")
        n = end - start
        level = n.bit_length() - 1
        if n == 1 << level and start % n == 0:
            return self._levels[level][start >> level]
        k = largest_power_of_two_below(n)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise InvalidInputError("tree size beyond the tree")
        return EMPTY_ROOT if size == 0 else self.subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self.size if size is None else size, self.subtree)

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        return consistency_proof(first, self.size if second is None else second, self.subtree)
