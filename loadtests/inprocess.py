"""`POST /v1/checks` driven in-process: everything the endpoint does, minus HTTP.

The benchmark wants the server's own cost per check, so it calls what the route calls: verify the
bearer token and load the principal (`server.auth.deps.authenticate`), check the permission,
parse the JSON body into the wire model, `server.checks.services.run_check` (consent, quota,
blind evaluation with its proof, the bucket lookup, the audit entry, the commit), and serialize
the answer to JSON bytes. What is left out is the HTTP server and FastAPI's dispatch, which the
end-to-end figure over uvicorn covers.

The client side (deriving keys, blinding) is done ahead of the timed part: it runs on the
client's machine, not the server's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi.security import HTTPAuthorizationCredentials

from loadtests.network import DemoNetwork
from protocol.messages import CheckRequest
from protocol.oprf import VOPRFClient
from protocol.pseudonym import bucket
from server.app import build_context
from server.auth.deps import authenticate
from server.auth.permissions import Permission, Role
from server.auth.tokens import Caller, issue_access_token
from server.checks.services import run_check
from server.context import AppContext
from server.errors import PermissionDenied

#: Keys per check in the benchmark: what a full applicant record (name and date of birth, name
#: variants, a document number, e-mail, phone) gives.
KEYS_PER_CHECK = 8


@dataclass(frozen=True)
class PreparedCheck:
    """One request body ready to send, with what the client keeps to read the answer."""

    consent_id: str
    body: bytes
    blinds: tuple[bytes, ...]
    blinded: tuple[bytes, ...]


def applicant_values(index: int, keys: int = KEYS_PER_CHECK) -> list[bytes]:
    """Key values shaped like `protocol.identity` output for a synthetic applicant. Distinct per
    index, so consecutive checks do not ask for the same buckets (which a cache would flatter)."""
    kinds = ("name_dob", "name_dob_variant", "national_id", "passport", "email", "phone")
    return [
        f"refcheck/v1/{kinds[i % len(kinds)]}/bench/applicant-{index}/{i}".encode()
        for i in range(keys)
    ]


class InProcessServer:
    """The app context of a demo network, and one HR checker's signed-in identity in it."""

    def __init__(self, network: DemoNetwork, checker: str = "org-b-hr") -> None:
        self.network = network
        self.ctx: AppContext = build_context(network.settings())
        principal = network.principals[checker]
        self.caller = Caller(
            principal_id=principal.principal_id,
            org_id=principal.org_id,
            roles=frozenset(Role(r) for r in principal.roles),
        )
        self._token = issue_access_token(
            settings=self.ctx.settings, keys=self.ctx.keys, caller=self.caller, now=self.ctx.now()
        )[0]
        self.client = VOPRFClient(self.ctx.keys.oprf_public)
        self.key_id = self.ctx.keys.oprf_key_id
        self.bucket_bits = self.ctx.policy.bucket_bits

    def close(self) -> None:
        bind = self.ctx.sessions.kw.get("bind")
        if bind is not None:
            bind.dispose()

    def prepare(self, consent_id: str, index: int, keys: int = KEYS_PER_CHECK) -> PreparedCheck:
        values = applicant_values(index, keys)
        pairs = [self.client.blind(v) for v in values]
        body = {
            "consent_id": consent_id,
            "key_id": self.key_id,
            "blinded_elements": [e.hex() for _, e in pairs],
            "buckets": [bucket(v, self.bucket_bits) for v in values],
        }
        return PreparedCheck(
            consent_id=consent_id,
            body=json.dumps(body).encode(),
            blinds=tuple(b for b, _ in pairs),
            blinded=tuple(e for _, e in pairs),
        )

    def post_check(self, body: bytes) -> bytes:
        """What `POST /v1/checks` does with `body`, returning the answer's JSON bytes."""
        session = self.ctx.sessions()
        try:
            caller = authenticate(
                self.ctx,
                session,
                HTTPAuthorizationCredentials(scheme="Bearer", credentials=self._token),
            )
            if not caller.has(Permission.CHECK_RUN):
                raise PermissionDenied("this action needs the permission to run checks")
            answer = run_check(session, self.ctx, caller, CheckRequest.model_validate_json(body))
            return answer.to_json()
        finally:
            session.rollback()
            session.close()

    def verify(self, prepared: PreparedCheck, answer: bytes) -> None:
        """Check the answer as a client would (proof against the published key, every bucket
        present), so a fast but wrong server cannot pass the benchmark."""
        data = json.loads(answer)
        evaluated = [bytes.fromhex(e) for e in data["evaluated_elements"]]
        self.client.verify_and_unblind(
            list(prepared.blinds), list(prepared.blinded), evaluated, bytes.fromhex(data["proof"])
        )
        asked = set(json.loads(prepared.body)["buckets"])
        if {b["bucket"] for b in data["buckets"]} != asked:
            raise RuntimeError("the check answer does not hold exactly the requested buckets")


def cycle(items: Sequence[PreparedCheck], n: int) -> list[PreparedCheck]:
    return [items[i % len(items)] for i in range(n)]
