"""The worked examples of docs/protocol.md: the section is exactly `protocol.examples` output, and
its numbers verify with the public API (so a wrong example cannot be pinned by the first test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from protocol.claim import verify_claim
from protocol.entry import open_handle, prefix, tag
from protocol.examples import render
from protocol.filter import decode_set, parse_full
from protocol.sealed_keys import decode
from protocol.signed import parse, signing_key_id, verify_signing_key

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
HEADING = "## Worked examples\n"


def doc_section() -> str:
    """The section from its heading to the next `## ` heading or the end of the file."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index("\n" + HEADING) + 1
    end = text.find("\n## ", start + len(HEADING))
    return text[start:] if end == -1 else text[start : end + 1]


def blocks(markdown: str) -> dict[str, dict[str, str]]:
    """`{### heading: {label: value}}` of the rendered examples, wrapped lines joined."""
    out: dict[str, dict[str, str]] = {}
    heading = ""
    in_block = False
    last = ""
    for line in markdown.splitlines():
        if line.startswith("### "):
            heading = line[4:]
            out[heading] = {}
        elif line == "```":
            in_block = not in_block
        elif in_block and line.startswith(" " * 18):
            out[heading][last] += line[18:]
        elif in_block:
            last = line[:18].strip()
            out[heading][last] = line[18:]
    return out


EXAMPLES = blocks(render())


def h(section: str, label: str) -> bytes:
    return bytes.fromhex(EXAMPLES[section][label])


def test_doc_section_is_exactly_the_module_output() -> None:
    assert doc_section() == render()


def test_module_prints_the_section() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "protocol.examples"], capture_output=True, text=True, check=True
    )
    assert result.stdout == render()


def test_every_example_section_is_present() -> None:
    assert len(EXAMPLES) == 7
    assert all(EXAMPLES.values())


def test_signed_header_example_verifies() -> None:
    s = "A signed `filter` header"
    obj = parse(h(s, "framed"))
    assert obj.header.decode("ascii") == EXAMPLES[s]["header (ASCII)"]
    obj.verify(
        h(s, "signing public"),
        network_id="example",
        type="filter",
        witnesses=[h(s, "witness public")],
    )


def test_golomb_rice_example_decodes() -> None:
    s = "Golomb–Rice coding of a small set"
    values = [int(v, 16) for v in EXAMPLES[s]["values"].split()]
    count, p = (int(x) for x in EXAMPLES[s]["count, p"].split(","))
    assert decode_set(h(s, "coded set"), count, p) == values
    assert h(s, "coded set") == int(EXAMPLES[s]["bits"], 2).to_bytes(len(h(s, "coded set")), "big")
    header, decoded = parse_full(h(s, "full body"))
    assert decoded == values
    assert header.fields["sha256"] == EXAMPLES[s]["set sha256"]


def test_pseudonym_example_opens_and_claim_example_verifies() -> None:
    s = "Tag, prefix, handle key and sealed handle of a pseudonym"
    p = h(s, "P = skS·H(v)")
    assert tag(p) == h(s, "tag(P)")
    assert f"{prefix(p):012x}" == EXAMPLES[s]["prefix(P)"].split()[0]
    handle = open_handle(p, h(s, "sealed handle"))
    assert handle is not None and handle.kind == "email"

    c = "A claim proof"
    assert h(c, "P") == p
    verify_claim(
        check_id=EXAMPLES[c]["check_id"],
        consent_id=EXAMPLES[c]["consent_id"],
        index=int(EXAMPLES[c]["index"]),
        tag=h(c, "tag"),
        p=p,
        z=h(c, "Z = r·P"),
        proof=h(c, "proof (c || s)"),
    )


def test_sealed_keys_example_decodes() -> None:
    s = "A `sealed_keys` plaintext"
    digest, keys = decode(h(s, "plaintext"), int(EXAMPLES[s]["keys_per_check"]))
    assert digest == h(s, "metadata sha256")
    assert [k.kind for k in keys] == ["email", "name_dob"]


def test_signing_key_example_verifies_against_the_first_examples_key() -> None:
    s = "A `signing-key` rotation"
    assert h(s, "old public") == h("A signed `filter` header", "signing public")
    obj = parse(h(s, "framed"))
    assert obj.header.decode("ascii") == EXAMPLES[s]["header (ASCII)"]
    assert obj.signature == h(s, "signature") and obj.cosignatures[0][1] == h(s, "cosignature")
    step = verify_signing_key(obj, prev_public_key=h(s, "old public"), network_id="example")
    assert step.public_key == h(s, "new public") and step.key_seq == 2
    assert obj.fields["key_id"] == signing_key_id(h(s, "new public"))
