"""The network's transparency log, as a member sees it (docs/api.md, "Transparency log").

The server keeps every audit entry, and every filter header and OPRF key announcement it signs,
as a leaf of an RFC 9162 Merkle tree, and signs the tree's head (`tree-head`). A client keeps
the newest head it has verified and, on each new session, fetches the current one and checks
the consistency proof between them: a server that removed or rewrote an entry, or that shows
this client another log than the others, cannot produce one. Then `LogInconsistent` is raised,
naming both tree sizes.

Usage, at the start of a session::

    from client_sdk.transparency import TreeHeadStore, verify_log

    with Client.from_credentials_file("org-b-hr.json", pin_file="org-b-hr.pins.json") as rc:
        head = verify_log(rc, TreeHeadStore("org-b-hr.treehead.json"))

A client built with a `pin_file` does this by itself, once per session, at its first signed-in
request (`session_log_op`), keeping the head in `<name>.treehead.json` beside the pin file
(`tree_head_file`), the file `refcheck transparency verify` keeps too; `client.tree_head` is
then the head it verified.

`verify_signed_object_logged` checks that a filter header or key announcement the client
holds is itself a leaf of the verified tree, and `verify_registration_logged` that a case's
`case.register` entry is (by the `log_seq` its registration answered). The calls are written
once, as operations (`verify_log_op`, ...), and driven by `Client` or `AsyncClient`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from client_sdk._core import ApiRequest, Core, Op, json_body
from client_sdk.errors import (
    InvalidInput,
    InvalidResponse,
    LogInconsistent,
    SignatureInvalid,
    error_from_response,
)
from client_sdk.secretfile import load_json_secret, write_json_secret
from protocol import merkle
from protocol.errors import ProtocolError, VerifyError
from protocol.signed import SignedObject, parse

if TYPE_CHECKING:
    from client_sdk._client import AsyncClient, Client
    from client_sdk.models import Registration

__all__ = [
    "TreeHead",
    "TreeHeadStore",
    "averify_log",
    "averify_registration_logged",
    "averify_signed_object_logged",
    "check_extends",
    "consistency_op",
    "read_kept_head",
    "registration_logged_op",
    "session_log_op",
    "tree_head_file",
    "verify_log",
    "verify_log_op",
    "verify_registration_logged",
    "verify_signed_object_logged",
    "verify_tree_head",
]

#: The problem slug of `GET /v1/transparency/sth` before the sealer signed a first head.
LOG_NOT_STARTED = "log-not-started"


@dataclass(frozen=True)
class TreeHead:
    """A verified signed tree head: the tree of `size` leaves has root `root`."""

    size: int
    root: bytes
    signed: SignedObject

    @property
    def issued_at(self) -> str:
        return str(self.signed.fields["issued_at"])


def verify_tree_head(
    framed: bytes,
    *,
    signing_key: bytes,
    network_id: str,
    witnesses: tuple[bytes, ...] = (),
) -> TreeHead:
    """Parse and verify a framed `tree-head`: signed by the network key for this network, and
    cosigned by every witness the policy names. Raises `SignatureInvalid`."""
    try:
        obj = parse(framed)
        obj.verify(signing_key, network_id=network_id, type="tree-head", witnesses=witnesses)
    except ProtocolError as exc:
        raise SignatureInvalid(f"the tree head does not verify: {exc}") from None
    return _head_of(obj)


def _head_of(obj: SignedObject) -> TreeHead:
    size, root = obj.fields.get("tree_size"), obj.fields.get("root_hash")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidResponse("the tree head has no valid tree_size")
    try:
        root_bytes = bytes.fromhex(root) if isinstance(root, str) else b""
    except ValueError:
        root_bytes = b""
    if len(root_bytes) != merkle.HASH_SIZE:
        raise InvalidResponse("the tree head has no valid root_hash")
    return TreeHead(size, root_bytes, obj)


def read_kept_head(framed: bytes, *, network_id: str) -> TreeHead:
    """A tree head read back from a file only ever written after it verified (a witness's own
    state): parsed and checked to be this network's `tree-head`, its signature not checked
    again, since the key that signed it may have been rotated away from since (whoever could
    edit the file could as well edit the rest of the state kept with it)."""
    try:
        obj = parse(framed)
    except ProtocolError:
        raise InvalidResponse("the kept tree head does not parse") from None
    if obj.type != "tree-head" or obj.fields.get("network_id") != network_id:
        raise InvalidResponse("the kept tree head is not this network's")
    return _head_of(obj)


def _verify_stored(stored: bytes, *, signing_keys: tuple[bytes, ...], network_id: str) -> TreeHead:
    """A tree head this client verified and saved before: signed by the network signing key in
    force then, which may be one the key was rotated away from since (`signing_keys`, every key
    the pin followed, `NetworkState.signing_keys`), tried newest first."""
    refused: SignatureInvalid | None = None
    for key in reversed(signing_keys):
        try:
            return verify_tree_head(stored, signing_key=key, network_id=network_id)
        except SignatureInvalid as exc:
            refused = exc
    assert refused is not None
    raise refused


def check_extends(old: TreeHead, new: TreeHead, proof: list[bytes]) -> None:
    """Raise `LogInconsistent` unless `new` is `old`'s tree with entries only appended."""
    if new.size < old.size:
        raise LogInconsistent(
            "the log is smaller than one this client verified: entries were removed",
            first_size=old.size,
            second_size=new.size,
        )
    try:
        merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
    except (VerifyError, ProtocolError):
        raise LogInconsistent(
            "the log is not an extension of the one this client verified: entries were "
            "rewritten or removed, or this client is shown a different log",
            first_size=old.size,
            second_size=new.size,
        ) from None


def tree_head_file(pin_file: str | Path) -> Path:
    """Where the newest verified tree head is kept beside a pin file: `org-b-hr.pins.json` →
    `org-b-hr.treehead.json` (the CLI's files beside the pin file are named alike)."""
    pin = Path(pin_file)
    return pin.with_name(pin.name.removesuffix(".json").removesuffix(".pins") + ".treehead.json")


class TreeHeadStore:
    """The newest verified tree head per server, in a 0600 JSON file (or in memory only when
    `path` is None). Written only after a head verified, so it never goes back."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._memory: dict[str, str] = {}
        self._lock = threading.Lock()

    def _document(self) -> dict[str, str]:
        if self.path is None or not self.path.exists():
            return dict(self._memory)
        heads = load_json_secret(self.path).get("tree_heads")
        if not isinstance(heads, dict):
            raise InvalidResponse(f"{self.path} is not a tree head file")
        return {str(k): str(v) for k, v in heads.items()}

    def load(self, server: str) -> bytes | None:
        found = self._document().get(server)
        return None if found is None else bytes.fromhex(found)

    def save(self, server: str, head: TreeHead) -> None:
        with self._lock:
            document = self._document()
            document[server] = head.signed.framed().hex()
            self._memory = document
            if self.path is not None:
                write_json_secret(
                    self.path, {"refcheck_tree_heads": 1, "tree_heads": document}, overwrite=True
                )


def consistency_op(first: int, second: int) -> Op[list[bytes]]:
    response = yield ApiRequest(
        "GET", "/v1/transparency/consistency", params={"first": str(first), "second": str(second)}
    )
    body = json_body(response)
    try:
        return [bytes.fromhex(h) for h in body["proof"]]
    except (KeyError, TypeError, ValueError):
        raise InvalidResponse("the consistency proof is not a list of hashes") from None


def _problem_slug(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return ""
    kind = problem.get("type") if isinstance(problem, dict) else None
    return kind.rsplit(":", 1)[-1] if isinstance(kind, str) else ""


def _raise_for(response: httpx.Response) -> None:
    try:
        problem = response.json()
    except ValueError:
        problem = None
    raise error_from_response(response.status_code, problem)


def session_log_op(core: Core, store: TreeHeadStore, server: str) -> Op[TreeHead | None]:
    """The check a client makes once per session: `verify_log_op`, except that a server whose
    log has no signed head yet (a network just set up, before its first seal) answers None,
    unless this client verified a head there before: a log that has vanished is then
    `LogInconsistent` (the stored size against 0)."""
    return (yield from _verify_log(core, store, server, unstarted_ok=True))


def verify_log_op(core: Core, store: TreeHeadStore, server: str) -> Op[TreeHead]:
    """Fetch the current signed tree head, verify it, prove it extends the stored one, and
    store it. The first head a client sees is trusted on its signature (and the witnesses'
    cosignatures) alone; every later one only with a consistency proof."""
    head = yield from _verify_log(core, store, server, unstarted_ok=False)
    assert head is not None
    return head


def _verify_log(
    core: Core, store: TreeHeadStore, server: str, *, unstarted_ok: bool
) -> Op[TreeHead | None]:
    state = yield from core.network()
    response = yield ApiRequest("GET", "/v1/transparency/sth", raise_errors=False)
    if not response.is_success:
        if response.status_code == 503 and _problem_slug(response) == LOG_NOT_STARTED:
            stored = store.load(server)
            if stored is not None:
                old = _verify_stored(
                    stored, signing_keys=state.signing_keys, network_id=state.network_id
                )
                raise LogInconsistent(
                    "the server says its log has no signed tree head, but this client "
                    "verified one there before: the log was removed",
                    first_size=old.size,
                    second_size=0,
                )
            if unstarted_ok:
                return None
        _raise_for(response)
    body = json_body(response)
    try:
        framed = bytes.fromhex(body["signed"])
    except (KeyError, TypeError, ValueError):
        raise InvalidResponse("the tree head answer carries no signed head") from None
    new = verify_tree_head(
        framed,
        signing_key=state.signing_key,
        network_id=state.network_id,
        witnesses=state.witnesses,
    )
    stored = store.load(server)
    if stored is not None:
        # The stored head verified before (with the witnesses then named): a signature check
        # again only guards the file against a careless edit.
        old = _verify_stored(stored, signing_keys=state.signing_keys, network_id=state.network_id)
        if new.size < old.size:
            check_extends(old, new, [])
        proof: list[bytes] = []
        if old.size not in (0, new.size):
            proof = yield from consistency_op(old.size, new.size)
        check_extends(old, new, proof)
        if new.size == old.size:
            return old
    store.save(server, new)
    return new


def signed_object_logged_op(head: TreeHead, obj: SignedObject) -> Op[int]:
    """Prove that `obj` (a filter header or key announcement the client holds) is a leaf of
    the verified tree `head`: the leaf's entry carries exactly its signed bytes. Returns the
    leaf index. Raises `LogInconsistent` when it is not in the log."""
    digest = hashlib.sha256(obj.header).hexdigest()
    response = yield ApiRequest(
        "GET",
        "/v1/transparency/inclusion",
        params={"object_sha256": digest, "tree_size": str(head.size)},
        raise_errors=False,
    )
    missing = LogInconsistent(
        f"the {obj.type} object this client holds is not in the log",
        first_size=head.size,
        second_size=head.size,
    )
    if response.status_code == 404:
        raise missing
    if not response.is_success:
        _raise_for(response)
    body = json_body(response)
    try:
        index, entry = int(body["index"]), str(body["entry"]).encode("ascii")
        proof = [bytes.fromhex(h) for h in body["proof"]]
        details: Any = json.loads(entry)["details"]
        logged = parse(bytes.fromhex(details["signed"]))
    except (KeyError, TypeError, ValueError, ProtocolError):
        raise InvalidResponse("the inclusion answer is not a logged signed object") from None
    if logged.header != obj.header or logged.signature != obj.signature:
        raise missing
    try:
        merkle.verify_inclusion(index, head.size, merkle.leaf_hash(entry), proof, head.root)
    except (VerifyError, ProtocolError):
        raise missing from None
    return index


def registration_logged_op(head: TreeHead, registration: Registration) -> Op[int]:
    """Prove that the case's `case.register` entry (the `log_seq` its registration answered)
    is a leaf of the verified tree `head`. Returns the leaf index.

    Raises `LogInconsistent` when the entry the server proves is not this case's registration
    or its proof does not lead to `head`'s root; an entry the sealer has not placed in a tree of
    `head`'s size yet is the server's refusal (`NotFound`, or 422 `tree-size-unavailable`):
    ask again after the next tree head (within the policy's `audit_seal_interval_seconds`)."""
    if registration.log_seq is None:
        raise InvalidInput("this registration carries no log_seq (a re-key, or an older server)")
    response = yield ApiRequest(
        "GET",
        "/v1/transparency/inclusion",
        params={"seq": str(registration.log_seq), "tree_size": str(head.size)},
    )
    body = json_body(response)
    try:
        index, entry = int(body["index"]), str(body["entry"]).encode("ascii")
        proof = [bytes.fromhex(h) for h in body["proof"]]
        logged: Any = json.loads(entry)
        action, object_id = logged["action"], logged["object_id"]
    except (KeyError, TypeError, ValueError):
        raise InvalidResponse("the inclusion answer is not a log entry") from None
    if (action, object_id) != ("case.register", registration.case_id):
        raise LogInconsistent(
            f"log entry {registration.log_seq} is not the registration of case "
            f"{registration.case_id}",
            first_size=head.size,
            second_size=head.size,
        )
    try:
        merkle.verify_inclusion(index, head.size, merkle.leaf_hash(entry), proof, head.root)
    except (VerifyError, ProtocolError):
        raise LogInconsistent(
            f"the registration of case {registration.case_id} is not in the signed log",
            first_size=head.size,
            second_size=head.size,
        ) from None
    return index


# --- drivers ----------------------------------------------------------------------------------


def verify_log(client: Client, store: TreeHeadStore | None = None) -> TreeHead:
    """`verify_log_op` with a `Client` (call it at the start of a session)."""
    store = store or _memory_store(client)
    return client._run(verify_log_op(client._core, store, client.base_url))


async def averify_log(client: AsyncClient, store: TreeHeadStore | None = None) -> TreeHead:
    """`verify_log_op` with an `AsyncClient`."""
    store = store or _memory_store(client)
    return await client._run(verify_log_op(client._core, store, client.base_url))


def verify_signed_object_logged(client: Client, head: TreeHead, obj: SignedObject) -> int:
    return client._run(signed_object_logged_op(head, obj))


async def averify_signed_object_logged(
    client: AsyncClient, head: TreeHead, obj: SignedObject
) -> int:
    return await client._run(signed_object_logged_op(head, obj))


def verify_registration_logged(client: Client, head: TreeHead, registration: Registration) -> int:
    """`registration_logged_op` with a `Client`: the leaf index of the case's registration."""
    return client._run(registration_logged_op(head, registration))


async def averify_registration_logged(
    client: AsyncClient, head: TreeHead, registration: Registration
) -> int:
    return await client._run(registration_logged_op(head, registration))


def _memory_store(client: Any) -> TreeHeadStore:
    store = getattr(client, "_tree_heads", None)
    if not isinstance(store, TreeHeadStore):
        store = TreeHeadStore()
        client._tree_heads = store
    return store
