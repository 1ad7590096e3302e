"""`Client` and `AsyncClient`: thin drivers around the I/O-free core.

Each driver does three things the core cannot: send with retries (`RetryPolicy`), attach an
access token (renewed before expiry, and once more on a 401 `invalid-token`), and turn error
answers into the exception tree. Everything a call means lives in `client_sdk._core`, so the
sync and async clients cannot disagree about what a valid answer is.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import ipaddress
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, Literal, ParamSpec, Self, TypeAlias, TypeVar, overload

import httpx

from client_sdk import _auth
from client_sdk._core import ApiRequest, Batch, Core, Op, json_body, seg
from client_sdk._operation import AsyncDriver, SyncDriver, operation
from client_sdk.config import DEFAULT_TIMEOUT, RetryPolicy
from client_sdk.credentials import Credentials
from client_sdk.disclosures import DisclosureMethods
from client_sdk.errors import (
    ApiError,
    CredentialsError,
    InvalidInput,
    InvalidToken,
    RefcheckError,
    TransportError,
    error_from_response,
)
from client_sdk.filter_cache import FilterCache, FilterSnapshot
from client_sdk.models import (
    Case,
    CaseRegistration,
    CheckResult,
    Consent,
    LiveCheck,
    Registration,
)
from client_sdk.pinning import NetworkPin, NetworkState, OprfKey, OrgKeyPins
from client_sdk.transparency import TreeHead, TreeHeadStore, session_log_op, tree_head_file

__all__ = ["AsyncClient", "Client", "RecordedConsent"]

log = logging.getLogger("refcheck.sdk")
T = TypeVar("T")
P = ParamSpec("P")
F = TypeVar("F", bound=Callable[..., Any])

#: Failures where the request never reached the server, so sending it again cannot double it.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

USER_AGENT = "refcheck-sdk/1"

#: Set while this thread (or task) checks the log at the start of a session: the check's own
#: requests need the token, and must not start the check again.
_CHECKING_LOG: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "refcheck_checking_log", default=False
)


def tls_verify(ca_file: str | Path | None) -> ssl.SSLContext | bool:
    """How a client checks the server's certificate: against the system's CA store, or only
    against `ca_file`, the network's own CA bundle (PEM) when the secretariat runs one."""
    if ca_file is None:
        return True
    return ssl.create_default_context(cafile=str(ca_file))


def _loopback(host: str) -> bool:
    if host.lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_server_url(url: str, *, allow_insecure_http: bool = False) -> None:
    """Refuse (`InvalidInput`, before any request) a server URL whose traffic anyone on the
    way could read or change: `http://` to anything but this machine (127.0.0.0/8, ::1,
    localhost), unless `allow_insecure_http`; any scheme but http and https."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise InvalidInput("the server URL is not a valid URL") from None
    if parsed.scheme == "https":
        return
    if parsed.scheme != "http" or not parsed.host:
        raise InvalidInput("the server URL must start with https:// (or http:// on this machine)")
    if allow_insecure_http or _loopback(parsed.host):
        return
    raise InvalidInput(
        f"refusing plain http:// to {parsed.host}: tokens, consents and check results would "
        "cross the network unencrypted. Use the server's https:// URL (with --ca-file / "
        "ca_file= for the network's own certificate authority); only for a test network pass "
        "--allow-insecure-http (allow_insecure_http=True)"
    )


class RecordedConsent(str):
    """What `record_consent` returns: the new consent's id (a `str`, so code that stores or
    passes on the id keeps working) with the applicant's one-time `lookup_code`.

    The server keeps only a hash of the code and never shows it again: hand it to the person
    (with their copy of the form), since it is their only way to see which organisations checked
    them under this consent. It is left out of `repr` so that a log line does not carry it.
    """

    lookup_code: str | None

    def __new__(cls, consent_id: str, lookup_code: str | None) -> RecordedConsent:
        made = super().__new__(cls, consent_id)
        made.lookup_code = lookup_code
        return made

    @property
    def id(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"RecordedConsent({str(self)!r}, lookup_code=...)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (RecordedConsent, (str(self), self.lookup_code))


def _consent_receipt(record: Callable[Concatenate[Core, P], Op[Consent]]) -> _ClientOp[P, Consent]:
    """`record_consent_receipt`: the core's `record_consent` (its parameters and docstring)."""

    def record_consent_receipt(client: _Base, /, *args: P.args, **kwargs: P.kwargs) -> Op[Consent]:
        return record(client._core, *args, **kwargs)

    return _like(record_consent_receipt, record, record.__doc__)


def _consent_id(
    record: Callable[Concatenate[Core, P], Op[Consent]],
) -> _ClientOp[P, RecordedConsent]:
    """`record_consent`: the core's `record_consent` (its parameters), returning the consent id
    with its lookup code."""

    def record_consent(client: _Base, /, *args: P.args, **kwargs: P.kwargs) -> Op[RecordedConsent]:
        receipt = yield from record(client._core, *args, **kwargs)
        return RecordedConsent(receipt.id, receipt.lookup_code)

    # The core's docstring with its first paragraph (what comes back) replaced.
    details = inspect.cleandoc(record.__doc__ or "").split("\n\n", 1)[-1]
    doc = (
        "Record the applicant's signed consent receipt; returns the consent id, whose\n"
        "`.lookup_code` is the applicant's one-time lookup code (hand it to them: the server\n"
        "cannot show it again); `record_consent_receipt` returns the whole receipt.\n\n" + details
    )
    return _like(record_consent, record, doc, result="RecordedConsent")


#: A call defined on the clients' shared base: its first argument is the client.
_ClientOp: TypeAlias = Callable[Concatenate["_Base", P], Op[T]]


def _like(op: F, core_method: Callable[..., Any], doc: str | None, result: str = "") -> F:
    """`op` with the name, docstring and parameters of `core_method` (and `result` as its
    return annotation when given), for `operation` to show."""
    signature = inspect.signature(core_method)
    if result:
        signature = signature.replace(return_annotation=f"Op[{result}]")
    op.__doc__ = doc
    setattr(op, "__signature__", signature)  # noqa: B010
    return op


class _Base:
    """What both clients share: configuration, the core, the token cache, the retry rules."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str | None,
        fallback_base_url: str | None,
        retry: RetryPolicy | None,
        pin_file: str | Path | None,
        filter_file: str | Path | None,
        token_margin: float,
        clock: Callable[[], float],
        allow_insecure_http: bool,
    ) -> None:
        url = base_url or credentials.base_url or fallback_base_url
        if not url:
            raise CredentialsError("no server URL: pass base_url or put one in the credentials")
        check_server_url(url, allow_insecure_http=allow_insecure_http)
        self.base_url = url.rstrip("/")
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._tokens = _auth.TokenCache(margin=token_margin, clock=clock)
        pin_path = None if pin_file is None else Path(pin_file)
        # The network signing key is pinned from the credentials (the secretariat wrote its
        # fingerprint there); credentials without it are refused here, before any request.
        pin = NetworkPin.for_credentials(self.base_url, credentials, path=pin_path)
        # One filter per client: check_many and rescreen share it (client_sdk.filter_cache).
        filters = FilterCache(None if filter_file is None else Path(filter_file))
        self._core = Core(pin, filters, clock=clock, org_keys=lambda: self.credentials.org_keys)
        # The organisations' public keys reach us through the server too: pinned in the same
        # file, under the same server URL (client_sdk.pinning).
        self._org_pins = OrgKeyPins(self.base_url, path=pin_path)
        # With a pin file, the newest verified tree head is kept beside it, and each session
        # starts by proving the log only grew since (client_sdk.transparency).
        self._tree_heads: TreeHeadStore | None = (
            None if pin_path is None else TreeHeadStore(tree_head_file(pin_path))
        )
        self._log_checked = self._tree_heads is None
        #: The tree head this session verified at its first signed-in request (None without
        #: a pin file, or while the network's log has no signed head yet).
        self.tree_head: TreeHead | None = None

    @classmethod
    def from_credentials_file(
        cls, path: str | Path, *, passphrase: str | None = None, **kwargs: Any
    ) -> Self:
        """Load a credentials file (see docs/api.md) and build a client; keyword arguments are
        those of the client's constructor (`base_url` overrides the file's)."""
        return cls(Credentials.load(path, passphrase=passphrase), **kwargs)

    # -- request building and answer classification (no I/O) ------------------------------

    def _token_request(self) -> ApiRequest:
        return ApiRequest(
            "POST",
            _auth.TOKEN_PATH,
            form=lambda: _auth.token_request_form(self.credentials, now=self._clock()),
            auth=False,
        )

    def _httpx_args(self, req: ApiRequest, token: str | None) -> dict[str, Any]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **req.headers}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        args: dict[str, Any] = {
            "method": req.method,
            "url": self.base_url + req.path,
            "headers": headers,
        }
        if req.params:
            args["params"] = dict(req.params)
        if req.form is not None:
            args["data"] = dict(req.form())
        elif req.json is not None:
            args["json"] = req.json
        return args

    def _retry_after_exception(
        self, req: ApiRequest, exc: httpx.TransportError, attempt: int
    ) -> float | None:
        # A read timeout or a dropped connection may come after the server acted: only a request
        # that is harmless twice (GET, Idempotency-Key) is sent again.
        if not isinstance(exc, _NEVER_SENT) and not req.retry_safe:
            return None
        return self.retry.delay(attempt)

    def _retry_after_answer(self, response: httpx.Response, attempt: int) -> float | None:
        if not self.retry.retries_status(response.status_code):
            return None
        return self.retry.delay(attempt, response.headers.get("Retry-After"))

    @staticmethod
    def _error(response: httpx.Response) -> ApiError:
        body = None
        if "json" in response.headers.get("Content-Type", ""):
            try:
                body = response.json()
            except ValueError:
                body = None
        return error_from_response(
            response.status_code, body, retry_after=response.headers.get("Retry-After")
        )

    @staticmethod
    def _transport_error(req: ApiRequest, exc: httpx.TransportError) -> TransportError:
        return TransportError(f"{req.method} {req.path}: {type(exc).__name__}")

    @property
    def network(self) -> NetworkState | None:
        """What this client trusts about the network (signing key, verified OPRF key
        announcements, keys_per_check); None until first use, unless the pin file has it."""
        return self._core.pin.state

    # -- the calls, defined once for both clients (client_sdk._operation) ----------------

    @operation
    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Op[httpx.Response]:
        """An authenticated call to any endpoint; error answers are returned, not raised
        (transport failures still raise `TransportError` after the retries)."""
        return (
            yield ApiRequest(
                method.upper(),
                path,
                json=json,
                params=params,
                headers=dict(headers or {}),
                raise_errors=False,
            )
        )

    @operation
    def oprf_key(self) -> Op[OprfKey]:
        """The network's newest OPRF key, from its announcement signed by the network signing
        key the credentials name."""
        return self._core.oprf_key()

    @operation
    def keys_per_check(self) -> Op[int]:
        """The policy's element count of every check and every case."""
        return self._core.keys_per_check()

    @operation
    def registry_filter(self) -> Op[FilterSnapshot]:
        """The current registry filter, verified (signature, freshness, key, never backwards);
        a delta when this client already holds one."""
        return self._core.registry_filter()

    @operation
    def verify_live(self, registrations: Iterable[Registration]) -> Op[list[LiveCheck]]:
        """Focal point: whether every filter value of each registration (as `register_case`
        returned it, with the case as `get_case` shows it now) is in the current filter."""
        return self._core.verify_live(list(registrations))

    @operation
    def register_case(
        self, person: Any, case: CaseRegistration, *, idempotency_key: str | None = None
    ) -> Op[Registration]:
        """Register a concluded, substantiated case (focal point).

        The person's keys are hashed to the group here and sealed to the network's
        registration key with the metadata's hash (`case`); the server opens them in memory
        only. Returns the `Registration`: the case and its `keys_per_check` filter values (the
        pads among them verified by their DLEQ proof), to keep for `verify_live`. A retry with
        the same `idempotency_key` is answered with the first registration.
        """
        return self._core.register_case(person, case, idempotency_key=idempotency_key)

    @operation
    def rekey_case(self, case_id: str, person: Any) -> Op[Registration]:
        """Replace a live case's entries with `person`'s keys derived again on this machine
        (after the identity tables changed); returns the case's new filter values, verified
        as at registration, to keep for `verify_live`."""
        return self._core.rekey_case(case_id, person)

    @operation
    def list_cases(self, status: Literal["active", "withdrawn"] | None = None) -> Op[list[Case]]:
        return self._core.list_cases(status)

    @operation
    def get_case(self, case_id: str) -> Op[Case]:
        return self._core.get_case(case_id)

    @operation
    def withdraw_case(self, case_id: str, reason: str, *, note: str | None = None) -> Op[Case]:
        """Withdraw a case (appeal upheld, rectification, …): it stops matching at once."""
        return self._core.withdraw_case(case_id, reason, note)

    record_consent_receipt = operation(_consent_receipt(Core.record_consent))
    record_consent = operation(_consent_id(Core.record_consent))

    @operation
    def get_consent(self, consent_id: str) -> Op[Consent]:
        """A consent of your organisation, its sealed details opened (`Consent.details` says
        whether they were signed by your organisation, or could not be opened)."""
        return self._core.get_consent(consent_id)

    @operation
    def withdraw_consent(self, consent_id: str) -> Op[Consent]:
        return self._core.withdraw_consent(consent_id)

    @operation
    def check_applicant(self, person: Any, consent_id: str) -> Op[CheckResult]:
        """Check one applicant under one live consent.

        `person` is a `protocol.identity.Person` or a dict of its fields. The server receives
        exactly `keys_per_check` blinded elements (the person's keys padded and shuffled);
        the answer's DLEQ proof is verified against the announced key and its filter header
        against the network signing key, and the keys are looked up in the local filter. Only
        a hit sends anything more: one Schnorr claim per hit, for the sealed entries. Any
        failed check raises a `ProtocolViolation` and nothing is returned.
        """
        return self._core.check_applicant(person, consent_id)

    @operation
    def _prime(self) -> Op[None]:
        """Read the keys, the policy and the filter once, before a batch fans out (otherwise
        every worker would fetch them at the same moment)."""
        return self._core.prime()

    # -- registry, directory, statistics --------------------------------------------------

    @operation
    def me(self) -> Op[dict[str, Any]]:
        return self._core.get_json("/v1/me")

    @operation
    def policy(self) -> Op[dict[str, Any]]:
        return self._core.get_json("/v1/policy")

    @operation
    def directory(self) -> Op[list[dict[str, Any]]]:
        return (yield from self._core.get_json("/v1/directory"))["items"]

    @operation
    def stats(self, year: int | None = None) -> Op[dict[str, Any]]:
        params = None if year is None else {"year": str(year)}
        return self._core.get_json("/v1/stats", params)

    @operation
    def list_orgs(self) -> Op[list[dict[str, Any]]]:
        return (yield from self._core.get_json("/v1/orgs"))["items"]

    @operation
    def create_org(self, **fields: Any) -> Op[dict[str, Any]]:
        """Network admin: add a member organisation (fields as in docs/api.md, Registry)."""
        return self._core.send_json("POST", "/v1/orgs", fields)

    @operation
    def update_org(self, org_id: str, **fields: Any) -> Op[dict[str, Any]]:
        """Network admin: change status, MoU fields, permitted actions or public keys."""
        path = f"/v1/orgs/{seg(org_id)}"
        return self._core.send_json("PATCH", path, fields, idempotent=True)

    @operation
    def add_principal(
        self, org_id: str, *, name: str, kind: str, roles: Sequence[str], auth_public_key: str
    ) -> Op[dict[str, Any]]:
        """Network admin: register a person or service account by its public auth key."""
        body = {
            "name": name,
            "kind": kind,
            "roles": list(roles),
            "auth_public_key": auth_public_key,
        }
        path = f"/v1/orgs/{seg(org_id)}/principals"
        return self._core.send_json("POST", path, body)

    @operation
    def list_principals(self, org_id: str) -> Op[list[dict[str, Any]]]:
        path = f"/v1/orgs/{seg(org_id)}/principals"
        return (yield from self._core.get_json(path))["items"]

    @operation
    def deactivate_principal(self, principal_id: str) -> Op[dict[str, Any]]:
        path = f"/v1/principals/{seg(principal_id)}/deactivate"
        return self._core.send_json("POST", path, None, idempotent=True)


class Client(_Base, DisclosureMethods, SyncDriver):
    """Synchronous client (httpx.Client underneath).

    Usage::

        with Client.from_credentials_file("org-b-hr.json") as rc:
            consent_id = rc.record_consent(applicant_ref="APP-2026-0042", purpose="recruitment",
                                           position_ref="POS-17", form_sha256=digest,
                                           self_declared_finding=False)
            result = rc.check_applicant({"full_name": "...", "date_of_birth": "1990-01-31"},
                                        consent_id)
            if result.status != "no_match": ...

    `transport` is an `httpx.BaseTransport` (for example a wrapper for tests); `http_client`
    an `httpx.Client` to use as it is (for example `fastapi.testclient.TestClient(app)`), which
    the caller then also closes. `ca_file` is the network's CA bundle (PEM) when the server's
    certificate is not from a public CA. A plain `http://` URL is refused (`InvalidInput`)
    unless it is this machine (127.0.0.1, ::1, localhost) or `allow_insecure_http=True` (a test
    network only). `pin_file` keeps the network's verified keys and the
    organisations' keys between runs (`client_sdk.pinning`); `filter_file` the registry filter
    (`client_sdk.filter_cache`), so a new process does not fetch it whole again.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        ca_file: str | Path | None = None,
        allow_insecure_http: bool = False,
        pin_file: str | Path | None = None,
        filter_file: str | Path | None = None,
        token_margin: float = 30.0,
        max_concurrency: int = 4,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            credentials,
            base_url=base_url,
            fallback_base_url=None if http_client is None else str(http_client.base_url) or None,
            retry=retry,
            pin_file=pin_file,
            filter_file=filter_file,
            token_margin=token_margin,
            clock=clock,
            allow_insecure_http=allow_insecure_http,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            transport=transport, timeout=timeout, verify=tls_verify(ca_file)
        )
        self._sleep = sleep
        self._token_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self.max_concurrency = max(1, max_concurrency)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the driver -----------------------------------------------------------------------

    def _token(self) -> str:
        token = self._tokens.current()
        if token is None:
            # One renewal at a time: a batch of threads finding the token stale together would
            # otherwise each sign an assertion and fetch a token.
            with self._token_lock:
                token = self._tokens.current()
                if token is None:
                    if not self._core.keys_checked:
                        self._run(self._core.offered_keys())
                    token = self._tokens.store(json_body(self._send(self._token_request())))
        if not self._log_checked and not _CHECKING_LOG.get():
            self._check_log()
        return token

    def _check_log(self) -> None:
        """Once per session, before the first signed-in request is sent: the log's current
        head extends the one kept beside the pin file (`LogInconsistent` otherwise, and again
        at every later request: a client that caught the log rewritten does not go on)."""
        with self._log_lock:
            if self._log_checked:
                return
            assert self._tree_heads is not None
            checking = _CHECKING_LOG.set(True)
            try:
                self.tree_head = self._run(
                    session_log_op(self._core, self._tree_heads, self.base_url)
                )
            finally:
                _CHECKING_LOG.reset(checking)
            self._log_checked = True

    def _send(self, req: ApiRequest) -> httpx.Response:
        attempt, renewed = 0, False
        while True:
            attempt += 1
            token = self._token() if req.auth else None
            try:
                response = self._http.request(**self._httpx_args(req, token))
            except httpx.TransportError as exc:
                delay = self._retry_after_exception(req, exc, attempt)
                if delay is None:
                    raise self._transport_error(req, exc) from exc
                log.info("retrying %s %s after %s", req.method, req.path, type(exc).__name__)
                self._sleep(delay)
                continue
            if response.is_success or not req.raise_errors:
                return response
            error = self._error(response)
            if isinstance(error, InvalidToken) and req.auth and not renewed:
                # The token may have been revoked or the clocks disagree: renew once, not more.
                self._tokens.invalidate(token)
                renewed, attempt = True, attempt - 1
                continue
            delay = self._retry_after_answer(response, attempt)
            if delay is None:
                raise error
            log.info("retrying %s %s after HTTP %d", req.method, req.path, response.status_code)
            self._sleep(delay)

    def _run(self, op: Op[T]) -> T:
        try:
            request = next(op)
            while True:
                try:
                    response = self._send(request)
                except ApiError as exc:
                    request = op.throw(exc)
                else:
                    request = op.send(response)
        except StopIteration as done:
            return done.value

    @overload
    def check_many(
        self,
        people: Iterable[Any],
        consent_ids: Iterable[str],
        *,
        return_exceptions: Literal[False] = False,
    ) -> list[CheckResult]: ...

    @overload
    def check_many(
        self,
        people: Iterable[Any],
        consent_ids: Iterable[str],
        *,
        return_exceptions: Literal[True],
    ) -> list[CheckResult | RefcheckError]: ...

    def check_many(
        self,
        people: Iterable[Any],
        consent_ids: Iterable[str],
        *,
        return_exceptions: bool = False,
    ) -> Sequence[CheckResult | RefcheckError]:
        """Check many applicants, each under its own consent, `max_concurrency` at a time.

        With `return_exceptions=True` a refused row (expired consent, malformed record)
        yields its exception in place of a result and the rest go on. A `ProtocolViolation`
        (bad proof, key change) always stops the whole batch: a server caught misbehaving
        is not asked again.
        """
        batch = Batch(people, consent_ids, return_exceptions=return_exceptions)
        if batch.pairs:
            self._prime()

        def one(pair: tuple[Any, str]) -> CheckResult | RefcheckError | None:
            if batch.stopping:
                return None  # do not ask the server again
            try:
                return self.check_applicant(*pair)
            except RefcheckError as exc:
                return batch.refused(exc)

        if self.max_concurrency == 1 or len(batch.pairs) <= 1:
            return batch.results([one(pair) for pair in batch.pairs])
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return batch.results(list(pool.map(one, batch.pairs)))


class AsyncClient(_Base, DisclosureMethods, AsyncDriver):
    """Asynchronous client (httpx.AsyncClient underneath); the same calls as `Client`, awaited.

    Usage::

        async with AsyncClient.from_credentials_file("org-b-hr.json") as rc:
            results = await rc.check_many(people, consent_ids, return_exceptions=True)

    In tests: `AsyncClient(creds, transport=httpx.ASGITransport(app=app),
    base_url="http://testserver")` runs against the real FastAPI app in-process.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        ca_file: str | Path | None = None,
        allow_insecure_http: bool = False,
        pin_file: str | Path | None = None,
        filter_file: str | Path | None = None,
        token_margin: float = 30.0,
        max_concurrency: int = 8,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(
            credentials,
            base_url=base_url,
            fallback_base_url=None if http_client is None else str(http_client.base_url) or None,
            retry=retry,
            pin_file=pin_file,
            filter_file=filter_file,
            token_margin=token_margin,
            clock=clock,
            allow_insecure_http=allow_insecure_http,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            transport=transport, timeout=timeout, verify=tls_verify(ca_file)
        )
        self._sleep = sleep
        self._token_lock = asyncio.Lock()
        self._log_lock = asyncio.Lock()
        self.max_concurrency = max(1, max_concurrency)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _token(self) -> str:
        token = self._tokens.current()
        if token is None:
            async with self._token_lock:
                token = self._tokens.current()
                if token is None:
                    if not self._core.keys_checked:
                        await self._run(self._core.offered_keys())
                    response = await self._send(self._token_request())
                    token = self._tokens.store(json_body(response))
        if not self._log_checked and not _CHECKING_LOG.get():
            await self._check_log()
        return token

    async def _check_log(self) -> None:
        """As `Client._check_log`."""
        async with self._log_lock:
            if self._log_checked:
                return
            assert self._tree_heads is not None
            checking = _CHECKING_LOG.set(True)
            try:
                self.tree_head = await self._run(
                    session_log_op(self._core, self._tree_heads, self.base_url)
                )
            finally:
                _CHECKING_LOG.reset(checking)
            self._log_checked = True

    async def _send(self, req: ApiRequest) -> httpx.Response:
        attempt, renewed = 0, False
        while True:
            attempt += 1
            token = await self._token() if req.auth else None
            try:
                response = await self._http.request(**self._httpx_args(req, token))
            except httpx.TransportError as exc:
                delay = self._retry_after_exception(req, exc, attempt)
                if delay is None:
                    raise self._transport_error(req, exc) from exc
                log.info("retrying %s %s after %s", req.method, req.path, type(exc).__name__)
                await self._sleep(delay)
                continue
            if response.is_success or not req.raise_errors:
                return response
            error = self._error(response)
            if isinstance(error, InvalidToken) and req.auth and not renewed:
                self._tokens.invalidate(token)
                renewed, attempt = True, attempt - 1
                continue
            delay = self._retry_after_answer(response, attempt)
            if delay is None:
                raise error
            log.info("retrying %s %s after HTTP %d", req.method, req.path, response.status_code)
            await self._sleep(delay)

    async def _run(self, op: Op[T]) -> T:
        try:
            request = next(op)
            while True:
                try:
                    response = await self._send(request)
                except ApiError as exc:
                    request = op.throw(exc)
                else:
                    request = op.send(response)
        except StopIteration as done:
            return done.value

    @overload
    async def check_many(
        self,
        people: Iterable[Any],
        consent_ids: Iterable[str],
        *,
        return_exceptions: Literal[False] = False,
    ) -> list[CheckResult]: ...

    @overload
    async def check_many(
        self,
        people: Iterable[Any],
        consent_ids: Iterable[str],
        *,
        return_exceptions: Literal[True],
    ) -> list[CheckResult | RefcheckError]: ...

    async def check_many(
        self,
        people: Iterable[Any],
        consent_ids: Iterable[str],
        *,
        return_exceptions: bool = False,
    ) -> Sequence[CheckResult | RefcheckError]:
        """Check many applicants, each under its own consent, `max_concurrency` at a time.

        With `return_exceptions=True` a refused row (expired consent, malformed record)
        yields its exception in place of a result and the rest go on. A `ProtocolViolation`
        (bad proof, key change) always stops the whole batch: a server caught misbehaving
        is not asked again.
        """
        batch = Batch(people, consent_ids, return_exceptions=return_exceptions)
        if batch.pairs:
            await self._prime()
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(pair: tuple[Any, str]) -> CheckResult | RefcheckError | None:
            async with gate:
                if batch.stopping:
                    return None
                try:
                    return await self.check_applicant(*pair)
                except RefcheckError as exc:
                    return batch.refused(exc)

        return batch.results(await asyncio.gather(*(one(p) for p in batch.pairs)))
