"""The check path of protocol v2 driven in-process: everything the endpoints do, minus HTTP.

The benchmark wants the server's own cost, so it calls what the routes call: verify the bearer
token and load the principal (`server.auth.deps.authenticate`), check the permission, parse the
JSON body into the wire model, then `server.checks.services.run_check` (MoU, consent, quota,
budget, blind evaluation with its proof, the check row with its evaluations, the audit entry,
the signed filter header, the commit) or `claim_entries` (the claims' Schnorr proofs against the
check's own evaluations, the entries by tag, the claim rows), and serialise the answer to JSON
bytes. What is left out is the HTTP server and FastAPI's dispatch, which `make load` covers.

The client side is the protocol's own code, done ahead of the timed part (it runs on the
client's machine): deriving keys, blinding them into exactly `keys_per_check` slots padded with
random points, and after the check verifying the proof and the filter header, unblinding and
proving claims; a registration seals the keys to the registration key as the SDK does.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from fastapi.security import HTTPAuthorizationCredentials

from loadtests.network import DemoNetwork
from loadtests.people import person
from protocol.identity import derive_keys
from protocol.oprf import VOPRFClient, unblind
from server.app import build_context
from server.auth.deps import authenticate
from server.auth.permissions import Permission, Role
from server.auth.tokens import Caller, issue_access_token
from server.context import AppContext
from server.errors import PermissionDenied


@dataclass(frozen=True)
class PreparedCheck:
    """One request body ready to send, with what the client keeps to read the answer: the
    applicant's key values, the slots they were blinded into and their blinds."""

    consent_id: str
    body: bytes
    values: tuple[bytes, ...] = field(repr=False)
    slots: tuple[int, ...]
    blinds: tuple[bytes, ...] = field(repr=False)
    blinded: tuple[bytes, ...] = field(repr=False)


@dataclass(frozen=True)
class ReadAnswer:
    """A verified check answer: the check id, the signed filter header it names, and the
    applicant's unblinded `P` per key (in `PreparedCheck.values` order)."""

    check_id: str
    filter_header: bytes
    points: tuple[bytes, ...] = field(repr=False)
    evaluated: tuple[bytes, ...] = field(repr=False)


def case_metadata(today: date) -> dict[str, Any]:
    """Case metadata the shipped policy accepts (as `tests/blindflow.py` writes it)."""
    finding = today - timedelta(days=60)
    return {
        "category": "sexual_abuse",
        "child_victim": False,
        "finding": "substantiated",
        "sanction": "dismissal",
        "finding_date": finding.isoformat(),
        "legal_basis": "legitimate_interests",
        "retention_until": finding.replace(year=finding.year + 5).isoformat(),
        "mou_reference": "MoU-2026-01",
        "subject_notified_on": (finding + timedelta(days=7)).isoformat(),
    }


def _caller(network: DemoNetwork, name: str) -> Caller:
    principal = network.principals[name]
    return Caller(
        principal_id=principal.principal_id,
        org_id=principal.org_id,
        roles=frozenset(Role(r) for r in principal.roles),
    )


class InProcessServer:
    """The app context of a demo network, one HR checker's signed-in identity in it, and the
    network's focal point of org-a for registrations."""

    def __init__(
        self, network: DemoNetwork, checker: str = "org-b-hr", focal: str = "org-a-focal"
    ) -> None:
        self.network = network
        self.ctx: AppContext = build_context(network.settings())
        self.caller = _caller(network, checker)
        self.focal = _caller(network, focal)
        self._token = issue_access_token(
            settings=self.ctx.settings, keys=self.ctx.keys, caller=self.caller, now=self.ctx.now()
        )[0]
        keys = self.ctx.keys
        self.client = VOPRFClient(keys.oprf_public)
        self.key_id = keys.oprf_key_id
        self.keys_per_check = self.ctx.policy.keys_per_check
        self.signing_key = keys.audit_public
        self.network_id = keys.network_id
        self.registration_key = keys.registration_public

    def close(self) -> None:
        bind = self.ctx.sessions.kw.get("bind")
        if bind is not None:
            bind.dispose()

    # -- client side (untimed) ----------------------------------------------------------------

    def key_values(self, index: int) -> list[bytes]:
        """The key values of synthetic person `index`, cut to `keys_per_check`."""
        return [k.value for k in derive_keys(person(index))][: self.keys_per_check]

    def prepare(self, consent_id: str, index: int) -> PreparedCheck:
        """A check of synthetic person `index` under `consent_id`, as the SDK builds it: the
        keys blinded into random slots, the other slots random points."""
        from protocol.entry import hash_to_group

        values = self.key_values(index)
        slots = list(range(self.keys_per_check))
        secrets.SystemRandom().shuffle(slots)
        chosen = slots[: len(values)]
        blinded = [hash_to_group(os.urandom(32)) for _ in range(self.keys_per_check)]
        blinds = []
        for value, slot in zip(values, chosen, strict=True):
            blind, element = self.client.blind(value)
            blinds.append(blind)
            blinded[slot] = element
        body = {
            "consent_id": consent_id,
            "key_id": self.key_id,
            "blinded_elements": [e.hex() for e in blinded],
        }
        return PreparedCheck(
            consent_id=consent_id,
            body=json.dumps(body).encode(),
            values=tuple(values),
            slots=tuple(chosen),
            blinds=tuple(blinds),
            blinded=tuple(blinded),
        )

    def read(self, prepared: PreparedCheck, answer: bytes) -> ReadAnswer:
        """Check the answer as a client would (the batch proof against the announced key, the
        filter header's signature), so a fast but wrong server cannot pass the benchmark; then
        unblind the applicant's slots."""
        from protocol import signed

        data = json.loads(answer)
        evaluated = [bytes.fromhex(e) for e in data["evaluated_elements"]]
        self.client.verify_proof(list(prepared.blinded), evaluated, bytes.fromhex(data["proof"]))
        header = bytes.fromhex(data["filter"])
        signed.parse(header).verify(self.signing_key, network_id=self.network_id, type="filter")
        points = tuple(
            unblind(b, evaluated[s]) for b, s in zip(prepared.blinds, prepared.slots, strict=True)
        )
        return ReadAnswer(data["check_id"], header, points, tuple(evaluated))

    def claims_body(self, prepared: PreparedCheck, read: ReadAnswer, hits: list[int]) -> bytes:
        """`POST /v1/checks/{id}/entries` claiming the applicant's keys `hits` (indexes into
        `prepared.values`)."""
        from protocol.claim import prove_claim
        from protocol.entry import tag

        claims = []
        for i in hits:
            slot, p = prepared.slots[i], read.points[i]
            proof = prove_claim(
                check_id=read.check_id,
                consent_id=prepared.consent_id,
                index=slot,
                tag=tag(p),
                p=p,
                z=read.evaluated[slot],
                r=prepared.blinds[i],
            )
            claims.append({"index": slot, "tag": tag(p).hex(), "proof": proof.hex()})
        return json.dumps({"claims": claims}).encode()

    def registration_body(self, index: int, today: date) -> bytes:
        """`POST /v1/cases` registering synthetic person `index`: metadata and sealed keys."""
        from protocol import sealed_keys
        from protocol.entry import hash_to_group

        meta = case_metadata(today)
        keys = derive_keys(person(index))[: self.keys_per_check]
        registered = [
            sealed_keys.RegisteredKey(hash_to_group(k.value), k.kind, k.strength) for k in keys
        ]
        plaintext = sealed_keys.encode(
            sealed_keys.metadata_sha256(meta), registered, self.keys_per_check
        )
        sealed = sealed_keys.seal(self.registration_key, plaintext)
        return json.dumps({**meta, "key_id": self.key_id, "sealed_keys": sealed.hex()}).encode()

    # -- server side (timed) ------------------------------------------------------------------

    def _authenticated(self, session: Any) -> Caller:
        caller = authenticate(
            self.ctx,
            session,
            HTTPAuthorizationCredentials(scheme="Bearer", credentials=self._token),
        )
        if not caller.has(Permission.CHECK_RUN):
            raise PermissionDenied("this action needs the permission to run checks")
        return caller

    def post_check(self, body: bytes) -> bytes:
        """What `POST /v1/checks` does with `body`, returning the answer's JSON bytes."""
        from server.checks.schemas import CheckRequest
        from server.checks.services import run_check

        session = self.ctx.sessions()
        try:
            caller = self._authenticated(session)
            answer = run_check(session, self.ctx, caller, CheckRequest.model_validate_json(body))
            return answer.model_dump_json().encode()
        finally:
            session.rollback()
            session.close()

    def post_entries(self, check_id: str, body: bytes) -> bytes:
        """What `POST /v1/checks/{check_id}/entries` does with `body`."""
        from server.checks.schemas import EntriesRequest
        from server.checks.services import claim_entries

        session = self.ctx.sessions()
        try:
            caller = self._authenticated(session)
            req = EntriesRequest.model_validate_json(body)
            return (
                claim_entries(session, self.ctx, caller, check_id, req).model_dump_json().encode()
            )
        finally:
            session.rollback()
            session.close()

    def register(self, body: bytes) -> Mapping[str, Any]:
        """What `POST /v1/cases` does for org-a's focal point (no HTTP, no token: registration
        is not what is timed)."""
        from server.cases.schemas import CaseCreate
        from server.cases.services import register_case

        session = self.ctx.sessions()
        try:
            result = register_case(
                session, self.ctx, self.focal, CaseCreate.model_validate_json(body)
            )
            return {"case_id": result.case.id, "filter_values": result.filter_values}
        finally:
            session.rollback()
            session.close()

    def publish_filter(self) -> None:
        """Publish a filter revision now, as `refcheck-server filter publish` does."""
        from server.db import transaction
        from server.filter.services import publish

        with transaction(self.ctx.sessions) as session:
            publish(session, self.ctx)

    def filter_body(self, since_sha256: str | None = None) -> bytes:
        """What `GET /v1/registry/filter` answers: the full `RCF2` body, or the `RCD2` delta from
        `since_sha256` when the server can make one."""
        from server.filter.services import filter_response

        session = self.ctx.sessions()
        try:
            answer = filter_response(session, self.ctx, since_sha256=since_sha256)
            assert answer.body is not None
            return answer.body
        finally:
            session.rollback()
            session.close()
