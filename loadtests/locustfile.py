"""Locust scenarios: HR checkers, focal points and admins against a running refcheck server.

    locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 60s --host http://127.0.0.1:PORT

Run it through `make load` (`python -m loadtests.run`), which builds the network, seeds the
registry, starts the server and reads the report; the users need `REFCHECK_LOAD_CREDENTIALS`,
the directory of the demo credentials files that `refcheck-server init --demo` wrote.

Every user drives the real SDK (`client_sdk.Client`, protocol version 2): tokens from
`private_key_jwt` assertions, the pinned network signing key and OPRF key announcements, checks of
exactly `keys_per_check` blinded elements with their DLEQ proof and signed filter header verified,
the registry filter fetched and kept current by delta in the client's shared cache and tested
locally, claims with Schnorr proofs and handle opening on a hit, sealed registrations with their
pad proofs verified, disclosure requests carrying the applicant's sealed details, and signed,
sealed answers, exactly as an HR system or a focal point would. A transport under the SDK
reports each HTTP request to locust, named by method and path with ids replaced by `{id}`, so the
report is per endpoint. The SDK's retries are off: a failure must show as a failure, not be
absorbed.

Mix: 2 focal points (one per member: register a case, list cases, answer the disclosure
requests addressed to their organisation), 3 admins (the admin and the auditor: statistics, and
paging the audit trail), every other user an HR checker (record a consent, check the applicant
under it, and on a match open a disclosure request): 45 of 50 users, 90 %. Fixed counts rather
than weights so each organisation has exactly one focal point and two never race to answer the
same request. The disclosure steps run only when the server has the disclosure endpoints
(`REFCHECK_LOAD_DISCLOSURES=1`, which `loadtests.run` sets from the server's OpenAPI document).

Applicants and registered people come from one synthetic population (`loadtests.people`), so
some checks match and the disclosure workflow is exercised too.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from locust import User, between, events, task

from client_sdk import CaseRegistration, Client, DisclosureAnswer, RetryPolicy
from loadtests.people import POPULATION, person
from loadtests.report import endpoint_name

CREDENTIALS_ENV = "REFCHECK_LOAD_CREDENTIALS"
#: A directory of registry filter files, one per principal (`<name>.filter`), written before
#: the run: each user's client starts from its organisation's file instead of fetching and
#: decoding the whole filter at once with 44 others (see `loadtests.run`).
FILTERS_ENV = "REFCHECK_LOAD_FILTERS"
DISCLOSURES_ENV = "REFCHECK_LOAD_DISCLOSURES"
BASELINE_ENV = "REFCHECK_LOAD_BASELINE"
_FORM_SHA256 = "5" * 64


class LocustTransport(httpx.BaseTransport):
    """Times every request the SDK sends and reports it to locust as its own event."""

    def __init__(self, environment: Any) -> None:
        # Idle connections are dropped after 2 s, before uvicorn's 5 s keep-alive timeout: at
        # equal timeouts a user back from its think time can send on a connection the server is
        # closing at that moment, and a POST lost that way is an error of the test, not of the
        # server (the SDK rightly does not resend a POST it cannot know was not received).
        self._inner = httpx.HTTPTransport(limits=httpx.Limits(keepalive_expiry=2.0))
        self._environment = environment

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        name = endpoint_name(request.method, request.url.path)
        start = time.perf_counter()
        exception: Exception | None = None
        length = 0
        try:
            response = self._inner.handle_request(request)
            content = response.read()
            length = len(content)
            if response.status_code >= 400:
                exception = RuntimeError(f"HTTP {response.status_code}")
            return response
        except httpx.TransportError as exc:
            exception = exc
            raise
        finally:
            self._environment.events.request.fire(
                request_type=request.method,
                name=name,
                response_time=(time.perf_counter() - start) * 1000,
                response_length=length,
                exception=exception,
                context={},
            )

    def close(self) -> None:
        self._inner.close()


def _credentials(name: str) -> Path:
    root = os.environ.get(CREDENTIALS_ENV)
    if not root:
        raise RuntimeError(f"set {CREDENTIALS_ENV} to the demo credentials directory")
    return Path(root) / f"{name}.json"


def _failure(environment: Any, name: str, exc: Exception) -> None:
    """A step that failed without an HTTP error (a proof that does not verify, an answer that
    does not parse) is still a failure of the run: report it under its own name."""
    environment.events.request.fire(
        request_type="SDK",
        name=name,
        response_time=0,
        response_length=0,
        exception=exc,
        context={},
    )


def disclosures_enabled() -> bool:
    return os.environ.get(DISCLOSURES_ENV) == "1"


class _SdkUser(User):
    abstract = True
    principals: tuple[str, ...] = ()
    _counter: itertools.count[int]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._counter = itertools.count()

    def on_start(self) -> None:
        # Round-robin over the class's principals: with fixed counts, one user per principal.
        name = self.principals[next(self._counter) % len(self.principals)]
        self.principal = name
        filters = os.environ.get(FILTERS_ENV)
        self.rc = Client.from_credentials_file(
            _credentials(name),
            base_url=self.host,
            transport=LocustTransport(self.environment),
            retry=RetryPolicy(max_attempts=1),
            timeout=60.0,
            filter_file=Path(filters) / f"{name}.filter" if filters else None,
        )

    def on_stop(self) -> None:
        self.rc.close()

    # Every role paces its tasks like a person or an HR system would: 2-5 s between tasks.
    _pace = between(2, 5)
    _baseline_pace = between(0.2, 0.5)

    def wait_time(self) -> float:
        # The single-user baseline (`REFCHECK_LOAD_BASELINE=1`) checks back to back, so that
        # its median rests on dozens of checks rather than a handful.
        if os.environ.get(BASELINE_ENV) == "1":
            return float(_SdkUser._baseline_pace(self))
        return float(_SdkUser._pace(self))


class HRChecker(_SdkUser):
    """An HR system checking applicants: consent receipt, then one check per applicant."""

    weight = 1
    # An HR system paces its checks: 45 users at 2-5 s each offer about 13 consent-and-check
    # pairs a second, some 47,000 checks an hour, far beyond the post-disaster burst of
    # "thousands in weeks" and beyond the shipped daily quota of every member together.
    principals = ("org-a-hr", "org-b-hr")

    @task
    def consent_and_check(self) -> None:
        index = random.randrange(POPULATION)
        try:
            consent_id = self.rc.record_consent(
                applicant_ref=f"APP-{index:06d}-{random.randrange(10**6):06d}",
                purpose="recruitment",
                position_ref="POS-LOAD",
                form_sha256=_FORM_SHA256,
                self_declared_finding=False,
            )
            result = self.rc.check_applicant(person(index), consent_id)
        except Exception as exc:  # noqa: BLE001 - every failure must reach the report
            _failure(self.environment, "check_applicant (SDK)", exc)
            return
        if not disclosures_enabled():
            return
        # A match on a record of one's own organisation is a matter for one's own focal point;
        # the server refuses to open a request for it (422), so the HR system does not ask.
        foreign = [m for m in result.by_case() if m.holder_org_id != self.rc.credentials.org_id]
        for match in foreign[:1]:
            try:
                self.rc.request_disclosure(match, applicant=person(index))
            except Exception as exc:  # noqa: BLE001 - every failure must reach the report
                _failure(self.environment, "request_disclosure (SDK)", exc)


class FocalPoint(_SdkUser):
    """A member's PSEAH focal point: registers concluded cases, reviews them, answers requests."""

    fixed_count = 2
    principals = ("org-a-focal", "org-b-focal")

    @task(2)
    def register_case(self) -> None:
        finding = datetime.now(UTC).date() - timedelta(days=90)
        try:
            self.rc.register_case(
                person(random.randrange(POPULATION)),
                CaseRegistration(
                    category="sexual_abuse",
                    finding_date=finding,
                    sanction="dismissal",
                    legal_basis="legitimate_interests",
                    retention_until=finding.replace(year=finding.year + 5),
                    mou_reference="MoU-2026-01",
                    subject_notified_on=finding + timedelta(days=7),
                ),
            )
        except Exception as exc:  # noqa: BLE001 - every failure must reach the report
            _failure(self.environment, "register_case (SDK)", exc)

    @task(3)
    def list_cases(self) -> None:
        self.rc.request("GET", "/v1/cases", params={"status": "active"})

    @task(3)
    def answer_disclosures(self) -> None:
        if not disclosures_enabled():
            return
        try:
            waiting = self.rc.list_disclosures(role="holder", state="requested", limit=2)
            for item in waiting[:2]:
                self.rc.answer_disclosure(
                    item.id,
                    DisclosureAnswer(
                        same_person="confirmed",
                        category="sexual_abuse",
                        finding_date=datetime.now(UTC).date() - timedelta(days=90),
                        sanction="dismissal",
                    ),
                )
        except Exception as exc:  # noqa: BLE001 - every failure must reach the report
            _failure(self.environment, "answer_disclosure (SDK)", exc)


class Admin(_SdkUser):
    """The network secretariat: statistics, and reading the audit trail page by page."""

    fixed_count = 3
    principals = ("admin", "auditor")

    @task(1)
    def stats(self) -> None:
        self.rc.request("GET", "/v1/stats")

    @task(2)
    def audit_paging(self) -> None:
        after = 0
        for _ in range(3):
            response = self.rc.request(
                "GET", "/v1/audit", params={"after_seq": str(after), "limit": "200"}
            )
            if response.status_code != 200:
                return
            body = response.json()
            # `next_after` is null on the last page.
            if body.get("next_after") is None:
                return
            after = body["next_after"]


@events.init_command_line_parser.add_listener
def _no_options(parser: Any) -> None:
    """Nothing to add: configuration comes from the environment (see the module docstring)."""
    del parser
