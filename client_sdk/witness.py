"""`refcheck-witness`: an independent witness of the network's transparency log.

Run by the auditor on another host, with credentials of a principal holding the `witness` and
`auditor` roles and an Ed25519 witness key of its own (its public key is what the policy's
`witnesses` names). Each run:

1. fetches the signed tree head and checks it extends the last head this witness kept (RFC 9162
   consistency proof); a log that does not is reported and nothing is cosigned;
2. reads every entry added since, recomputes the tree's root from them and compares it with the
   head, so the entries it reasons about are exactly the signed ones;
3. cosigns the head, then each filter header and OPRF key announcement among the new entries:
   a filter only when its `count` is `keys_per_check` × the cases live in the log at that point
   (registered, and neither withdrawn nor purged);
4. keeps the new head, the tree's right edge and the live cases in its state file (0600).

Exit codes: 0 cosigned (or nothing new), 6 the log is inconsistent or a filter's size is wrong
(alert the secretariat), others as `refcheck`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk._client import Client
from client_sdk._core import ApiRequest, _keys_per_check, json_body
from client_sdk.credentials import Credentials
from client_sdk.errors import InvalidResponse, LogInconsistent, ProtocolViolation, RefcheckError
from client_sdk.secretfile import load_json_secret, write_json_secret
from client_sdk.transparency import (
    TreeHead,
    check_extends,
    consistency_op,
    read_kept_head,
    verify_tree_head,
)
from protocol import merkle
from protocol.errors import ProtocolError
from protocol.signed import SignedObject, cosign, parse

__all__ = ["WitnessReport", "WitnessState", "main", "witness_once"]

#: Audit actions that make a case live or end it (server.cases, server.retention).
REGISTERED = frozenset({"case.register"})
ENDED = frozenset({"case.withdraw", "case.purge"})
SIGNED_OBJECT_ACTION = "log.signed_object"
PAGE = 1000


@dataclass
class WitnessState:
    head: bytes | None = None
    edge: list[tuple[int, int, bytes]] = field(default_factory=list)
    live_cases: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path) -> WitnessState:
        if not path.exists():
            return cls()
        doc = load_json_secret(path)
        return cls(
            head=bytes.fromhex(doc["head"]) if doc.get("head") else None,
            edge=[(int(lv), int(pos), bytes.fromhex(h)) for lv, pos, h in doc.get("edge", [])],
            live_cases=set(doc.get("live_cases", [])),
        )

    def save(self, path: Path) -> None:
        write_json_secret(
            path,
            {
                "refcheck_witness_state": 1,
                "head": None if self.head is None else self.head.hex(),
                "edge": [[lv, pos, h.hex()] for lv, pos, h in self.edge],
                "live_cases": sorted(self.live_cases),
            },
            overwrite=True,
        )


@dataclass(frozen=True)
class _Network:
    network_id: str
    signing_key: bytes


@dataclass
class WitnessReport:
    tree_size: int = 0
    cosigned: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def _extend(edge: list[tuple[int, int, bytes]], position: int, leaf: bytes) -> None:
    edge.append((0, position, leaf))
    while len(edge) > 1 and edge[-1][0] == edge[-2][0]:
        level, left_position, left = edge[-2]
        edge[-2:] = [(level + 1, left_position >> 1, merkle.node_hash(left, edge[-1][2]))]


def _post(client: Client, obj: SignedObject) -> None:
    def op() -> Any:
        response = yield ApiRequest(
            "POST", "/v1/transparency/cosignatures", json={"signed": obj.framed().hex()}
        )
        return json_body(response)

    client._run(op())


def witness_once(client: Client, key: Ed25519PrivateKey, state: WitnessState) -> WitnessReport:
    """One witness run; updates `state` in place (save it afterwards). Raises
    `LogInconsistent` when the log does not extend the last head this witness kept."""
    # Not `client._core.network()`: with this witness named in the policy, that refuses every
    # key announcement the witness has not cosigned yet, so a witness could never start. The
    # keys are only compared with the credentials' signing key fingerprint here; each signed
    # object is verified against that key below, before it is cosigned.
    keys = client._run(client._core.offered_keys())
    network = _Network(keys.network_id, bytes.fromhex(keys.signing_key.public_key))
    kpc = _keys_per_check(client._run(client._core.get_json("/v1/policy")))

    def fetch_head() -> Any:
        return json_body((yield ApiRequest("GET", "/v1/transparency/sth")))

    body = client._run(fetch_head())
    try:
        framed = bytes.fromhex(body["signed"])
    except (KeyError, TypeError, ValueError):
        raise InvalidResponse("the tree head answer carries no signed head") from None
    new = verify_tree_head(framed, signing_key=network.signing_key, network_id=network.network_id)
    old: TreeHead | None = None
    if state.head is not None:
        # Verified before it was kept, perhaps under a signing key rotated away from since.
        old = read_kept_head(state.head, network_id=network.network_id)
        proof = []
        if old.size not in (0, new.size) and new.size >= old.size:
            proof = client._run(consistency_op(old.size, new.size))
        check_extends(old, new, proof)
    start = 0 if old is None else old.size
    report = WitnessReport(tree_size=new.size)
    edge = list(state.edge) if old is not None else []
    live = set(state.live_cases) if old is not None else set()
    pending: list[tuple[SignedObject, int]] = []
    for first in range(start, new.size, PAGE):
        last = min(first + PAGE, new.size)

        def page(a: int = first, b: int = last) -> Any:
            params = {"start": str(a), "end": str(b)}
            return json_body((yield ApiRequest("GET", "/v1/transparency/entries", params=params)))

        for item in client._run(page())["entries"]:
            index, raw = int(item["index"]), str(item["entry"]).encode("ascii")
            if index != len_of(edge):
                raise InvalidResponse("the log's entries are not served in order")
            _extend(edge, index, merkle.leaf_hash(raw))
            entry = json.loads(raw)
            action, object_id = entry.get("action"), entry.get("object_id")
            if action in REGISTERED and object_id:
                live.add(object_id)
            elif action in ENDED and object_id:
                live.discard(object_id)
            elif action == SIGNED_OBJECT_ACTION:
                try:
                    obj = parse(bytes.fromhex(entry["details"]["signed"]))
                except (KeyError, TypeError, ValueError, ProtocolError):
                    raise InvalidResponse("a logged signed object does not parse") from None
                pending.append((obj, len(live)))
    if merkle.root_from_frontier([h for _, _, h in edge]) != new.root:
        raise LogInconsistent(
            "the entries the server serves do not make the tree it signed",
            first_size=start,
            second_size=new.size,
        )
    _post(client, cosign(key, new.signed))
    report.cosigned.append(f"tree-head {new.size}")
    for obj, live_count in pending:
        try:
            obj.verify(network.signing_key, network_id=network.network_id, type=obj.type)
        except ProtocolError:
            report.refused.append(f"{obj.type}: not signed by the network key")
            continue
        if obj.type == "filter" and obj.fields.get("count") != kpc * live_count:
            report.refused.append(
                f"filter revision {obj.fields.get('revision')}: count {obj.fields.get('count')}"
                f" is not keys_per_check × {live_count} live cases"
            )
            continue
        _post(client, cosign(key, obj))
        report.cosigned.append(f"{obj.type} {obj.fields.get('revision', obj.fields.get('key_id'))}")
    state.head, state.edge, state.live_cases = new.signed.framed(), edge, live
    return report


def len_of(edge: list[tuple[int, int, bytes]]) -> int:
    """The number of leaves a right edge covers."""
    return sum(1 << level for level, _, _ in edge)


# --- command line -----------------------------------------------------------------------------

cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _load_key(path: Path) -> Ed25519PrivateKey:
    doc = load_json_secret(path)
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(doc["witness_private_key"]))


@cli.command()
def run(
    credentials: Annotated[Path, typer.Option(help="Credentials of the witness principal.")],
    key: Annotated[Path, typer.Option(help="The witness's Ed25519 key file (0600).")],
    state_file: Annotated[Path, typer.Option("--state", help="The witness's last head.")],
    base_url: Annotated[str | None, typer.Option(help="Server URL.")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between runs; 0 runs once.")] = 0,
    new_key: Annotated[bool, typer.Option(help="Create the key file first.")] = False,
) -> None:
    """Check the log's consistency and cosign its new head and signed objects."""
    if new_key:
        private = Ed25519PrivateKey.generate()
        write_json_secret(key, {"witness_private_key": private.private_bytes_raw().hex()})
        typer.echo(f"witness public key: {private.public_key().public_bytes_raw().hex()}")
    witness_key = _load_key(key)
    client = Client(Credentials.load(credentials), base_url=base_url)
    try:
        while True:
            state = WitnessState.load(state_file)
            try:
                report = witness_once(client, witness_key, state)
            except ProtocolViolation as exc:
                typer.echo(f"LOG NOT WITNESSED: {exc}", err=True)
                raise typer.Exit(6) from None
            except RefcheckError as exc:
                typer.echo(f"refcheck-witness: {exc}", err=True)
                raise typer.Exit(4) from None
            state.save(state_file)
            typer.echo(f"tree size {report.tree_size}: cosigned {', '.join(report.cosigned)}")
            for refusal in report.refused:
                typer.echo(f"NOT COSIGNED: {refusal}", err=True)
            if report.refused:
                raise typer.Exit(6)
            if interval <= 0:
                return
            time.sleep(interval)
    finally:
        client.close()


def main() -> None:
    """Console entry point (`refcheck-witness`)."""
    cli(prog_name="refcheck-witness")
