"""Wire shapes of the transparency log (docs/api.md, "Transparency log"). Hashes and signed
objects are lower-case hex; a client verifies the signed object, never the JSON beside it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SignedTreeHead(BaseModel):
    tree_size: int
    root_hash: str
    issued_at: str
    #: The framed signed `tree-head` object with every cosignature, as hex.
    signed: str


class ConsistencyProof(BaseModel):
    first: int
    second: int
    proof: list[str]


class InclusionProof(BaseModel):
    index: int
    tree_size: int
    seq: int
    #: The leaf's data (the canonical entry, ASCII JSON); its leaf hash is SHA-256(0x00 || it).
    entry: str
    proof: list[str]


class LogEntry(BaseModel):
    index: int
    seq: int
    entry: str


class LogEntries(BaseModel):
    entries: list[LogEntry]


class CosignatureIn(BaseModel):
    #: The framed signed object carrying the witness's cosignature (others may be there too).
    signed: str = Field(max_length=2 * (2 + 4096 + 64 + 1 + 255 * 96), pattern=r"^[0-9a-f]*$")


class CosignatureOut(BaseModel):
    object_type: str
    object_sha256: str
    #: Witness keys whose cosignature is now stored.
    witnesses: list[str]
