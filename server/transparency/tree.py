"""The Merkle tree in the database: subtree hashes from the stored complete nodes, and the
RFC 9162 proofs built on them (`protocol.merkle`).

A subtree `D[start:end]` is cut into complete subtrees exactly as RFC 9162's recursion cuts it,
so a proof reads O(log² n) nodes at worst, each batch in one query.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from protocol import merkle
from server.transparency.models import MerkleNode

NodeKey = tuple[int, int]


def _pieces(start: int, end: int) -> list[NodeKey]:
    """The complete subtrees RFC 9162's recursion reaches for `D[start:end]`, left to right."""
    out: list[NodeKey] = []
    stack = [(start, end)]
    while stack:
        a, b = stack.pop()
        n = b - a
        level = n.bit_length() - 1
        if n == 1 << level and a % n == 0:
            out.append((level, a >> level))
            continue
        k = merkle.largest_power_of_two_below(n)
        stack.append((a + k, b))
        stack.append((a, a + k))
    return out


def _combine(start: int, end: int, nodes: dict[NodeKey, bytes]) -> bytes:
    n = end - start
    level = n.bit_length() - 1
    if n == 1 << level and start % n == 0:
        return nodes[(level, start >> level)]
    k = merkle.largest_power_of_two_below(n)
    return merkle.node_hash(_combine(start, start + k, nodes), _combine(start + k, end, nodes))


class MissingNode(LookupError):
    """A node the tree should hold is not in the database (deleted, or never sealed)."""


class StoredTree:
    """Read access to the tree of `size` leaves as stored; caches what it read."""

    def __init__(self, session: Session, size: int) -> None:
        self.session = session
        self.size = size
        self._nodes: dict[NodeKey, bytes] = {}

    def load(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        wanted = [k for k in keys if k not in self._nodes]
        for chunk_start in range(0, len(wanted), 500):
            chunk = wanted[chunk_start : chunk_start + 500]
            rows = self.session.execute(
                select(MerkleNode.level, MerkleNode.position, MerkleNode.hash).where(
                    tuple_(MerkleNode.level, MerkleNode.position).in_(chunk)
                )
            )
            for level, index, h in rows:
                self._nodes[(int(level), int(index))] = bytes(h)
        missing = [k for k in wanted if k not in self._nodes]
        if missing:
            raise MissingNode(f"the tree has no node at level {missing[0][0]}")
        return self._nodes

    def subtree(self, start: int, end: int) -> bytes:
        if not 0 <= start < end <= self.size:
            raise ValueError("subtree outside the tree")
        return _combine(start, end, self.load(_pieces(start, end)))

    def root(self) -> bytes:
        if self.size == 0:
            return merkle.EMPTY_ROOT
        return self.subtree(0, self.size)

    def inclusion_proof(self, index: int) -> list[bytes]:
        return merkle.inclusion_proof(index, self.size, self.subtree)

    def consistency_proof(self, first: int) -> list[bytes]:
        return merkle.consistency_proof(first, self.size, self.subtree)

    def frontier_hashes(self) -> list[tuple[int, int, bytes]]:
        """The complete subtrees of the whole tree (its right edge), as `(level, index, hash)`."""
        keys = merkle.frontier(self.size)
        nodes = self.load(keys)
        return [(level, index, nodes[(level, index)]) for level, index in keys]
