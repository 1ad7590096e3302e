"""RFC 9162 Merkle trees (protocol.merkle): the sample-tree vectors, generated proofs that verify
for every size, and every corruption of a proof refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import InvalidInputError, VerifyError
from protocol.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    frontier,
    leaf_hash,
    node_hash,
    root_from_frontier,
    verify_consistency,
    verify_inclusion,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "rfc9162_merkle.json").read_text()
)
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots"]]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def test_the_vectors_are_loaded():
    # A missing or emptied file must not pass silently.
    assert len(LEAVES) == 8 and len(ROOTS) == 8
    assert VECTORS["inclusion"] and VECTORS["consistency"]


def test_leaf_and_node_hashes_are_domain_separated():
    assert leaf_hash(b"") == bytes.fromhex(ROOTS[0].hex())
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")) == ROOTS[1]
    # A leaf whose data is two hashes is never the node of those hashes.
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(a + b) != node_hash(a, b)


@pytest.mark.parametrize("size", range(1, 9))
def test_root_of_every_size_matches_the_vectors(size: int):
    tree = MemoryTree(LEAVES)
    assert tree.root(size) == ROOTS[size - 1]
    assert MemoryTree(LEAVES[:size]).root() == ROOTS[size - 1]


def test_empty_tree_root_is_the_hash_of_nothing():
    assert (
        MemoryTree().root()
        == EMPTY_ROOT
        == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    )


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['index']}-{c['size']}")
def test_inclusion_proofs_match_and_verify(case: dict[str, Any]):
    tree = MemoryTree(LEAVES)
    proof = [bytes.fromhex(h) for h in case["proof"]]
    index, size = case["index"], case["size"]
    assert tree.inclusion_proof(index, size) == proof
    verify_inclusion(index, size, leaf_hash(LEAVES[index]), proof, ROOTS[size - 1])


@pytest.mark.parametrize(
    "case", VECTORS["consistency"], ids=lambda c: f"{c['first']}-{c['second']}"
)
def test_consistency_proofs_match_and_verify(case: dict[str, Any]):
    tree = MemoryTree(LEAVES)
    proof = [bytes.fromhex(h) for h in case["proof"]]
    first, second = case["first"], case["second"]
    assert tree.consistency_proof(first, second) == proof
    verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], proof)


def _inclusion_corruptions(index, size, leaf, proof, root):
    yield "index - 1", (index - 1, size, leaf, proof, root)
    yield "index + 1", (index + 1, size, leaf, proof, root)
    yield "index ^ 2", (index ^ 2, size, leaf, proof, root)
    yield "size * 2", (index, size * 2, leaf, proof, root)
    yield "size / 2", (index, size // 2, leaf, proof, root)
    yield "wrong leaf", (index, size, leaf_hash(b"WrongLeaf"), proof, root)
    yield "empty root", (index, size, leaf, proof, EMPTY_ROOT)
    yield "random root", (index, size, leaf, proof, SOME_HASH)
    yield "trailing root", (index, size, leaf, [*proof, root], root)
    yield "preceding root", (index, size, leaf, [root, *proof], root)
    yield "short element", (index, size, leaf, [*proof, b""], root)
    for i in range(len(proof)):
        flipped = [*proof]
        flipped[i] = bytes([proof[i][0] ^ 8]) + proof[i][1:]
        yield f"bit flipped in {i}", (index, size, leaf, flipped, root)
    if proof:
        yield "removed element", (index, size, leaf, proof[:-1], root)
    if len(proof) > 1:
        yield "inserted element", (index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], root)


@pytest.mark.parametrize("case", VECTORS["inclusion"][1:], ids=lambda c: f"{c['index']}")
def test_every_corrupted_inclusion_proof_is_refused(case: dict[str, Any]):
    proof = [bytes.fromhex(h) for h in case["proof"]]
    index, size = case["index"], case["size"]
    leaf, root = leaf_hash(LEAVES[index]), ROOTS[size - 1]
    for name, args in _inclusion_corruptions(index, size, leaf, proof, root):
        with pytest.raises((VerifyError, InvalidInputError)):
            verify_inclusion(*args)
            pytest.fail(f"accepted: {name}")


def _consistency_corruptions(first, second, root1, root2, proof):
    yield "first - 1", (first - 1, second, root1, root2, proof)
    yield "first + 1", (first + 1, second, root1, root2, proof)
    yield "first ^ 2", (first ^ 2, second, root1, root2, proof)
    yield "second * 2", (first, second * 2, root1, root2, proof)
    yield "second / 2", (first, second // 2, root1, root2, proof)
    yield "wrong first root", (first, second, SOME_HASH, root2, proof)
    yield "wrong second root", (first, second, root1, SOME_HASH, proof)
    yield "swapped roots", (first, second, root2, root1, proof)
    yield "empty proof", (first, second, root1, root2, [])
    yield "trailing root", (first, second, root1, root2, [*proof, root2])
    yield "preceding root", (first, second, root1, root2, [root1, *proof])
    yield "preceding proof[0]", (first, second, root1, root2, [proof[0], *proof])
    yield "truncated", (first, second, root1, root2, proof[:-1])
    for i in range(len(proof)):
        flipped = [*proof]
        flipped[i] = bytes([proof[i][0] ^ 16]) + proof[i][1:]
        yield f"bit flipped in {i}", (first, second, root1, root2, flipped)


@pytest.mark.parametrize("case", VECTORS["consistency"][1:], ids=lambda c: f"{c['first']}")
def test_every_corrupted_consistency_proof_is_refused(case: dict[str, Any]):
    proof = [bytes.fromhex(h) for h in case["proof"]]
    first, second = case["first"], case["second"]
    root1, root2 = ROOTS[first - 1], ROOTS[second - 1]
    for name, args in _consistency_corruptions(first, second, root1, root2, proof):
        with pytest.raises((VerifyError, InvalidInputError)):
            verify_consistency(*args)
            pytest.fail(f"accepted: {name}")


def test_consistency_edge_cases():
    # Every tree extends the empty one, with an empty proof and nothing else.
    verify_consistency(0, 5, EMPTY_ROOT, ROOTS[4], [])
    with pytest.raises(VerifyError):
        verify_consistency(0, 5, EMPTY_ROOT, ROOTS[4], [ROOTS[0]])
    verify_consistency(3, 3, ROOTS[2], ROOTS[2], [])
    with pytest.raises(VerifyError, match="different roots"):
        verify_consistency(3, 3, ROOTS[2], ROOTS[3], [])
    with pytest.raises(VerifyError, match="smaller"):
        verify_consistency(5, 3, ROOTS[4], ROOTS[2], [])


def test_frontier_is_one_complete_subtree_per_set_bit():
    assert frontier(0) == []
    assert frontier(8) == [(3, 0)]
    assert frontier(7) == [(2, 0), (1, 2), (0, 6)]
    tree = MemoryTree(LEAVES)
    for size in range(1, 9):
        hashes = [tree.subtree(i << level, (i + 1) << level) for level, i in frontier(size)]
        assert root_from_frontier(hashes) == ROOTS[size - 1]


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=70), st.data())
def test_generated_proofs_verify_for_any_sizes(size: int, data: st.DataObject):
    tree = MemoryTree([i.to_bytes(4, "big") for i in range(size)])
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    verify_inclusion(
        index, size, leaf_hash(index.to_bytes(4, "big")), tree.inclusion_proof(index), tree.root()
    )
    first = data.draw(st.integers(min_value=0, max_value=size))
    verify_consistency(
        first, size, tree.root(first), tree.root(), tree.consistency_proof(first, size)
    )


def test_a_changed_leaf_breaks_consistency_with_every_later_tree():
    honest = MemoryTree([bytes([i]) for i in range(10)])
    forked = MemoryTree([bytes([i]) if i != 3 else b"rewritten" for i in range(12)])
    for first in range(4, 11):
        with pytest.raises(VerifyError):
            verify_consistency(
                first, 12, honest.root(first), forked.root(), forked.consistency_proof(first)
            )
