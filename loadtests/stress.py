"""`make stress`: bursts of concurrent authenticated requests against `refcheck-server serve
--workers 2`, on SQLite and on PostgreSQL, and whether the server sheds load instead of falling
over (issue 15).

    python -m loadtests.stress [--bursts 100,300,1000] [--backends sqlite,postgresql]
                               [--workers 2]

Per backend: a temporary data dir and `refcheck-server init --demo` (PostgreSQL: a database of
its own on `REFCHECK_BENCH_PG_URL`, created for the run and dropped after it); the server as its
operators start it, `refcheck-server serve --workers 2`, on a free port of 127.0.0.1; a baseline
(each kind of request of the mix sent one at a time, `/healthz` probed while the server idles);
then each burst: N requests sent at once, each on a connection of its own, mixed as a busy network
would send them: `GET /v1/me` of every principal, checks (`POST /v1/checks`, protocol v2, each
under a consent of its own recorded through the SDK before the burst, its blinded elements made
by the SDK's own check code; the answers' batch proofs verified after the burst), listings
(`/v1/orgs`, `/v1/audit`, the disclosure requests), `GET /v1/audit/export`, and sign-ins
(`POST /v1/oauth/token` with a client assertion signed by the SDK, a write). While a burst runs,
a separate process probes `/healthz` every 10 ms on fresh connections; once every request of the
burst is answered, the first principal asks `/v1/me` until it succeeds.

Printed per burst, each with its target and its ratio to the baseline of the same run:

* answers 5xx: 0;
* requests neither answered nor shed within 10 s: 0;
* `/healthz` p99 during the burst: at most 100 ms;
* time from the end of the burst to the first successful request: at most 1 s;

and, for information, how many were answered, shed with 503 `busy` or 429
`fair-share-exceeded`, how many checks were answered with a proof that verifies, and the latency
of those answered. Every request goes to 127.0.0.1; a
burst is abandoned after 30 s, so a run is bounded in requests (the bursts plus some 150) and in
time (a few minutes per backend).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from loadtests.network import (
    LOADTESTS_DIR,
    DemoNetwork,
    create_pg_database,
    drop_pg_database,
    init_network,
    pg_server_url,
)
from loadtests.people import POPULATION, person
from loadtests.report import percentile
from loadtests.serve import HOST, free_port, healthy

if TYPE_CHECKING:
    from client_sdk._core import _Slot
    from client_sdk.pinning import OprfKey

DEFAULT_BURSTS = (100, 300, 1000)
#: A request not answered (or shed) within this is a failure of the server, whatever it answers.
ANSWER_BOUND = 10.0
#: A burst's requests are abandoned after this; the run stays bounded whatever the server does.
BURST_DEADLINE = 30.0
HEALTH_P99_TARGET_MS = 100.0
RECOVERY_TARGET_S = 1.0
PROBE_INTERVAL = 0.01
BASELINE_REPEATS = 15


# --- one request, on a connection of its own -------------------------------------------------


@dataclass(frozen=True)
class Request:
    kind: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def encode(self) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        if self.body or self.method == "POST":
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass(frozen=True)
class Outcome:
    kind: str
    status: int  # -1: no answer (connection failed or the deadline passed)
    seconds: float
    finished: float  # time.perf_counter() when the answer was complete
    error: str = ""
    problem: str = ""  # the problem type's slug of an error answer
    database_busy: bool = False  # a 503 `busy` because the database did not answer in time
    retry_after: str = ""
    body_ok: bool = True
    body: bytes = b""  # kept for a check answered 2xx only: its proof is verified afterwards


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()


async def send(port: int, request: Request) -> Outcome:
    """`request` on a fresh connection to 127.0.0.1:`port`; the whole answer read. A minimal
    HTTP/1.1 client: with a thousand at once on the server's own 2 cores, httpx's CPU per request
    would be measured as the server's latency."""
    started = time.perf_counter()
    writer = None
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(request.encode())
        await writer.drain()
        status_line = await reader.readline()
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await _read_body(reader, headers)
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        now = time.perf_counter()
        return Outcome(request.kind, -1, now - started, now, error=type(exc).__name__)
    finally:
        if writer is not None:
            # Abort, not close: a graceful close waits for the server, and a request given up
            # at the deadline must not keep the run waiting for a server that does not answer.
            writer.transport.abort()
    finished = time.perf_counter()
    problem = ""
    database_busy = False
    body_ok = True
    if status >= 400:
        with contextlib.suppress(ValueError, AttributeError):
            answer = json.loads(body)
            problem = str(answer.get("type", "")).rsplit(":", 1)[-1]
            database_busy = "database" in str(answer.get("detail", ""))
        body_ok = headers.get("content-type", "").startswith("application/problem+json")
    elif request.kind == "export":
        body_ok = all(b'"seq"' in line for line in body.splitlines())
    return Outcome(
        request.kind,
        status,
        finished - started,
        finished,
        problem=problem,
        database_busy=database_busy,
        retry_after=headers.get("retry-after", ""),
        body_ok=body_ok,
        body=body if request.kind == "check" and 200 <= status < 300 else b"",
    )


async def send_within(port: int, request: Request, seconds: float) -> Outcome:
    """`send`, given up (and counted unanswered) after `seconds`."""
    started = time.perf_counter()
    try:
        return await asyncio.wait_for(send(port, request), seconds)
    except TimeoutError:
        now = time.perf_counter()
        return Outcome(request.kind, -1, now - started, now, error="deadline")


async def send_all(port: int, requests: Sequence[Request]) -> list[Outcome]:
    """All of `requests` at once; those not complete after `BURST_DEADLINE` count as unanswered."""
    return list(await asyncio.gather(*(send_within(port, r, BURST_DEADLINE) for r in requests)))


# --- the mix -----------------------------------------------------------------------------------

#: The HR principals that run checks, each under its organisation's consents.
CHECKERS = ("org-a-hr", "org-b-hr")
_FORM_SHA256 = "5" * 64


@dataclass(frozen=True)
class PreparedCheck:
    """A check as the SDK makes it (`client_sdk._core.Core._check`): the applicant's keys cut to
    `keys_per_check`, blinded, padded with blinded random inputs and shuffled, under a consent
    recorded for it; the blinds kept to verify the answer's proof and unblind it."""

    request: Request
    key: OprfKey
    slots: tuple[_Slot, ...]

    def verifies(self, outcome: Outcome) -> bool:
        """The answer to this check is a check answer whose batch DLEQ proof verifies against
        the announced key (what the SDK checks before it unblinds)."""
        from client_sdk._core import _unblind
        from client_sdk.errors import RefcheckError
        from protocol import messages as wire

        try:
            answer = wire.CheckResponse.model_validate_json(outcome.body)
            _unblind(self.key, self.slots, answer)
        except (ValueError, RefcheckError):
            return False
        return True


@dataclass
class Mix:
    """What the bursts send: bearer headers per principal, fresh sign-in forms and prepared
    checks on demand."""

    network: DemoNetwork
    tokens: dict[str, str]
    _credentials: dict[str, object] = field(default_factory=dict)
    _clients: dict[str, object] = field(default_factory=dict)
    _checks: deque[PreparedCheck] = field(default_factory=deque)
    _applicants: int = 0
    #: The checks of the burst (or baseline) being built, in the order they are sent.
    sent: list[PreparedCheck] = field(default_factory=list)

    def _bearer(self, who: str) -> tuple[tuple[str, str], ...]:
        return (("Authorization", f"Bearer {self.tokens[who]}"), ("Accept", "application/json"))

    def sign_in(self, who: str) -> Request:
        from client_sdk._auth import token_request_form
        from client_sdk.credentials import Credentials

        creds = self._credentials.get(who)
        if creds is None:
            creds = self._credentials[who] = Credentials.load(self.network.principals[who].path)
        assert isinstance(creds, Credentials)
        body = urlencode(token_request_form(creds, now=time.time())).encode()
        headers = (("Content-Type", "application/x-www-form-urlencoded"),)
        return Request("sign-in", "POST", "/v1/oauth/token", headers, body)

    def _client(self, who: str) -> object:
        from client_sdk import Client, RetryPolicy

        client = self._clients.get(who)
        if client is None:
            client = self._clients[who] = Client.from_credentials_file(
                self.network.principals[who].path,
                base_url=self.network.base_url,
                retry=RetryPolicy(max_attempts=1),
                timeout=ANSWER_BOUND,
            )
        return client

    def prepare_checks(self, n: int) -> None:
        """Record `n` consents (alternately org A's and org B's HR, one check each) and make
        the check of a synthetic applicant under each, as the SDK makes it; done before a burst,
        one request at a time, so the burst itself holds only the checks."""
        from client_sdk import Client
        from client_sdk._core import _blind_slots, _cut, _derive, build
        from protocol import messages as wire

        for j in range(n):
            who = CHECKERS[j % len(CHECKERS)]
            client = self._client(who)
            assert isinstance(client, Client)
            index = self._applicants % POPULATION
            self._applicants += 1
            consent = client.record_consent(
                applicant_ref=f"STRESS-{self._applicants:06d}",
                purpose="recruitment",
                position_ref="POS-STRESS",
                form_sha256=_FORM_SHA256,
                self_declared_finding=False,
            )
            key, count = client.oprf_key(), client.keys_per_check()
            slots = _blind_slots(_cut(_derive(person(index)), count), key, count)
            body = build(
                wire.CheckRequest,
                consent_id=consent.id,
                key_id=key.key_id,
                blinded_elements=[slot.blinded.hex() for slot in slots],
            )
            headers = self._bearer(who) + (("Content-Type", "application/json"),)
            request = Request("check", "POST", "/v1/checks", headers, json.dumps(body).encode())
            self._checks.append(PreparedCheck(request, key, tuple(slots)))

    def request(self, i: int) -> Request:
        """The i-th request of a burst: 30 % who-am-I, 20 % checks, 20 % listings, 10 % the
        audit export, 20 % sign-ins, spread over every principal."""
        kind = i % 10
        if kind < 3:
            who = ("org-a-hr", "org-b-hr", "org-a-focal", "org-b-focal", "admin", "auditor")[i % 6]
            return Request("me", "GET", "/v1/me", self._bearer(who))
        if kind < 5:
            return self._take_check()
        if kind < 7:
            listings = (
                ("admin", "/v1/orgs"),
                ("auditor", "/v1/audit?limit=100"),
                ("org-a-focal", "/v1/disclosure-requests"),
            )
            who, path = listings[i % 3]
            return Request("listing", "GET", path, self._bearer(who))
        if kind == 7:
            return Request("export", "GET", "/v1/audit/export", self._bearer("auditor"))
        return self.sign_in(("org-a-hr", "org-b-hr", "org-a-focal", "org-b-focal")[i % 4])

    def _take_check(self) -> Request:
        """The next prepared check (each consent allows one check), prepared now if none is
        left; it stays listed in `sent` to have its answer verified."""
        if not self._checks:
            self.prepare_checks(1)
        check = self._checks.popleft()
        self.sent.append(check)
        return check.request

    def burst(self, n: int) -> list[Request]:
        self.prepare_checks(sum(1 for i in range(n) if i % 10 in (3, 4)))
        self.sent.clear()
        return [self.request(i) for i in range(n)]

    def baseline(self) -> list[Request]:
        self.prepare_checks(2 * BASELINE_REPEATS)
        self.sent.clear()
        return [self.request(i) for i in range(10) for _ in range(BASELINE_REPEATS)]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()  # type: ignore[attr-defined]


def issue_tokens(network: DemoNetwork) -> dict[str, str]:
    """An access token per demo principal, from the real token endpoint, with the client
    assertion the SDK signs."""
    from client_sdk._auth import token_request_form
    from client_sdk.credentials import Credentials

    tokens = {}
    port = int(network.base_url.rsplit(":", 1)[1])
    for name, principal in network.principals.items():
        form = token_request_form(Credentials.load(principal.path), now=time.time())
        conn = http.client.HTTPConnection(HOST, port, timeout=ANSWER_BOUND)
        try:
            conn.request(
                "POST",
                "/v1/oauth/token",
                body=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            response = conn.getresponse()
            body = json.loads(response.read())
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"sign-in of {name} failed: {response.status} {body}")
        tokens[name] = str(body["access_token"])
    return tokens


# --- /healthz, probed from a process of its own ----------------------------------------------


def _probe(port: int, stop: Connection, out: Connection) -> None:
    """Probe `/healthz` on a fresh connection every `PROBE_INTERVAL` until told to stop; send
    back (start, seconds, status) per probe. A process of its own, so that the burst's client
    does not delay the probe's own reading of the answer."""
    samples: list[tuple[float, float, int]] = []
    while not stop.poll():
        started = time.perf_counter()
        conn = http.client.HTTPConnection(HOST, port, timeout=ANSWER_BOUND)
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = -1
        finally:
            conn.close()
        samples.append((started, time.perf_counter() - started, status))
        time.sleep(PROBE_INTERVAL)
    out.send(samples)


@contextlib.contextmanager
def probing(port: int) -> Iterator[list[tuple[float, float, int]]]:
    samples: list[tuple[float, float, int]] = []
    ctx = multiprocessing.get_context("spawn")
    stop_recv, stop_send = ctx.Pipe(duplex=False)
    out_recv, out_send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_probe, args=(port, stop_recv, out_send), daemon=True)
    proc.start()
    time.sleep(0.5)  # the child imports this module first
    try:
        yield samples
    finally:
        stop_send.send(True)
        if out_recv.poll(30):
            samples.extend(out_recv.recv())
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()


# --- the server ------------------------------------------------------------------------------


@contextlib.contextmanager
def serve(network: DemoNetwork, port: int, workers: int, log: Path) -> Iterator[None]:
    """`refcheck-server serve --workers N` as an operator runs it; stopped by its own process
    group (the supervisor and its workers), never by name."""
    env = network.env()
    env["REFCHECK_RUN_BACKGROUND_JOBS"] = "false"
    cmd = [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(network.data_dir)]
    cmd += ["--host", HOST, "--port", str(port), "--workers", str(workers)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=LOADTESTS_DIR.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not healthy(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start: " + log.read_text()[-2000:])
                time.sleep(0.2)
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


# --- figures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StressFigure:
    """One printed line: the value, the baseline it is compared with, their ratio, the target
    (on the value) and whether it is met. `target` None: for information."""

    label: str
    value: float
    unit: str
    baseline: float
    target: float | None = None
    #: How the baseline is named: "baseline" (the same measured one request at a time, or on
    #: an idle server) or "of" (the burst's size: the ratio is then a share of the burst).
    versus: str = "baseline"

    @property
    def ratio(self) -> float:
        if self.baseline == 0:
            return 1.0 if self.value == 0 else math.inf
        return self.value / self.baseline

    @property
    def met(self) -> bool:
        return self.target is not None and self.value <= self.target

    def line(self) -> str:
        def fmt(v: float) -> str:
            return f"{v:,.0f}" if self.unit in ("", "requests") else f"{v:,.1f}"

        unit = f" {self.unit}" if self.unit and self.unit != "requests" else ""
        parts = [
            self.label,
            f"{fmt(self.value)}{unit}",
            f"{self.versus} {fmt(self.baseline)}{unit}",
            f"ratio {self.ratio:.2f}" if math.isfinite(self.ratio) else "ratio inf",
        ]
        if self.target is None:
            parts.append("(no target)")
        else:
            parts += [f"target <= {fmt(self.target)}{unit}", "met" if self.met else "missed"]
        return " | ".join(parts)


@dataclass
class Baseline:
    health_p99_ms: float
    first_success_s: float
    server_errors: int
    unanswered: int
    p50_ms: float
    p99_ms: float


def health_p99_ms(samples: Sequence[tuple[float, float, int]], start: float, end: float) -> float:
    window = [s for s in samples if start <= s[0] <= end]
    # A probe that got no answer counts as the bound it waited.
    return 1000 * percentile([s[1] if s[2] == 200 else ANSWER_BOUND for s in window], 99)


def _unanswered(outcomes: Sequence[Outcome]) -> int:
    return sum(1 for o in outcomes if o.status < 0 or o.seconds > ANSWER_BOUND)


def _server_errors(outcomes: Sequence[Outcome]) -> int:
    return sum(1 for o in outcomes if o.status >= 500 and o.problem != "busy")


def verified_checks(outcomes: Sequence[Outcome], sent: Sequence[PreparedCheck]) -> tuple[int, int]:
    """(checks answered 2xx, of those whose proof verifies): the burst's check outcomes are
    paired with the checks in the order they were sent."""
    checks = [o for o in outcomes if o.kind == "check"]
    if len(checks) != len(sent):
        raise RuntimeError(f"{len(checks)} check outcomes for {len(sent)} checks sent")
    answered = [(o, c) for o, c in zip(checks, sent, strict=True) if 200 <= o.status < 300]
    return len(answered), sum(1 for o, c in answered if c.verifies(o))


def burst_figures(
    label: str,
    outcomes: Sequence[Outcome],
    health_ms: float,
    recovery_s: float,
    base: Baseline,
    checks: tuple[int, int] = (0, 0),
) -> list[StressFigure]:
    """The targets (5xx other than a 503 `busy` are counted as 5xx; so are 503s that are not
    problem+json), then the shape of the answers, for information. `checks`: the checks
    answered 2xx and how many of those verified (`verified_checks`)."""
    server_errors = _server_errors(outcomes) + sum(
        1 for o in outcomes if o.status >= 500 and o.problem == "busy" and not o.body_ok
    )
    all_5xx = sum(1 for o in outcomes if o.status >= 500)
    answered = [o for o in outcomes if 200 <= o.status < 300]
    shed_busy = sum(1 for o in outcomes if o.status == 503 and o.problem == "busy")
    shed_share = sum(1 for o in outcomes if o.status == 429)
    database_busy = sum(1 for o in outcomes if o.status == 503 and o.database_busy)
    latencies = [1000 * o.seconds for o in answered]
    return [
        StressFigure(f"{label}: 5xx answers (503 busy excluded)", server_errors, "", 0, 0),
        StressFigure(
            f"{label}: requests neither answered nor shed within 10 s",
            _unanswered(outcomes),
            "",
            base.unanswered,
            0,
        ),
        StressFigure(
            f"{label}: /healthz p99 during the burst",
            health_ms,
            "ms",
            base.health_p99_ms,
            HEALTH_P99_TARGET_MS,
        ),
        StressFigure(
            f"{label}: first success after the burst",
            1000 * recovery_s,
            "ms",
            1000 * base.first_success_s,
            1000 * RECOVERY_TARGET_S,
        ),
        StressFigure(f"{label}: answered 2xx", len(answered), "", len(outcomes), versus="of"),
        StressFigure(
            f"{label}: checks answered 2xx whose proof verifies",
            checks[1],
            "",
            checks[0],
            versus="of",
        ),
        StressFigure(f"{label}: shed 503 busy", shed_busy, "", len(outcomes), versus="of"),
        StressFigure(
            f"{label}: of those, the database did not answer in time",
            database_busy,
            "",
            len(outcomes),
            versus="of",
        ),
        StressFigure(
            f"{label}: shed 429 fair-share-exceeded", shed_share, "", len(outcomes), versus="of"
        ),
        StressFigure(f"{label}: all 5xx answers", all_5xx, "", len(outcomes), versus="of"),
        StressFigure(
            f"{label}: p50 of answered requests", percentile(latencies, 50), "ms", base.p50_ms
        ),
        StressFigure(
            f"{label}: p99 of answered requests", percentile(latencies, 99), "ms", base.p99_ms
        ),
    ]


# --- a run -----------------------------------------------------------------------------------


async def first_success(port: int, mix: Mix, deadline: float = 30.0) -> float:
    """`time.perf_counter()` when `GET /v1/me` first succeeds, asked again at once after a
    refusal (inf if it never does within `deadline`)."""
    started = time.perf_counter()
    while time.perf_counter() - started < deadline:
        outcome = await send_within(port, mix.request(0), ANSWER_BOUND)
        if 200 <= outcome.status < 300:
            return outcome.finished
    return math.inf


async def burst_and_recovery(
    port: int, requests: Sequence[Request], mix: Mix
) -> tuple[list[Outcome], float, float]:
    """The burst, then the first success after it: (outcomes, end of the burst, seconds from
    there to the first success)."""
    outcomes = await send_all(port, requests)
    ended = max(o.finished for o in outcomes)
    return outcomes, ended, await first_success(port, mix) - ended


def run_backend(backend: str, bursts: Sequence[int], workers: int) -> list[StressFigure]:
    figures: list[StressFigure] = []
    with tempfile.TemporaryDirectory(prefix="refcheck-stress-") as tmp:
        root = Path(tmp)
        port = free_port()
        pg_url = (
            create_pg_database(pg_server_url(), "refcheck_stress") if backend != "sqlite" else ""
        )
        try:
            network = init_network(
                root / "data", database_url=pg_url, base_url=f"http://{HOST}:{port}"
            )
            _say(f"{backend}: network initialised; serving with {workers} workers on :{port}")
            log = root / "server.log"
            with serve(network, port, workers, log), contextlib.ExitStack() as stack:
                mix = Mix(network, issue_tokens(network))
                stack.callback(mix.close)
                base = asyncio.run(_baseline(port, mix))
                _say(
                    f"{backend}: baseline /healthz p99 {base.health_p99_ms:.1f} ms, "
                    f"request p50 {base.p50_ms:.1f} ms"
                )
                for n in bursts:
                    time.sleep(2)  # the previous burst's connections close and its jobs end
                    requests = mix.burst(n)
                    with probing(port) as samples:
                        time.sleep(0.3)
                        started = time.perf_counter()
                        outcomes, ended, recovery = asyncio.run(
                            burst_and_recovery(port, requests, mix)
                        )
                    health = health_p99_ms(samples, started, ended)
                    label = f"{backend} burst {n}"
                    checks = verified_checks(outcomes, mix.sent)
                    figures += burst_figures(label, outcomes, health, recovery, base, checks)
                    _say(f"{label}: done in {ended - started:.1f} s")
            errors = [
                line for line in log.read_text(errors="replace").splitlines() if "rror" in line
            ]
            if errors:
                _say(f"{backend}: {len(errors)} error lines in the server log, e.g. {errors[:3]}")
        finally:
            if pg_url:
                drop_pg_database(pg_server_url(), pg_url)
    return figures


async def _baseline(port: int, mix: Mix) -> Baseline:
    """Each kind of request one at a time, the server otherwise idle."""
    asked = time.perf_counter()
    first = await first_success(port, mix) - asked
    outcomes = [await send_within(port, r, ANSWER_BOUND) for r in mix.baseline()]
    answered = [1000 * o.seconds for o in outcomes if 200 <= o.status < 300]
    checks, verified = verified_checks(outcomes, mix.sent)
    if verified < checks or checks < len(mix.sent):
        # One at a time on an idle server every check must be answered and verify.
        _say(f"baseline: {checks} of {len(mix.sent)} checks answered, {verified} verified")
    with probing(port) as samples:
        await asyncio.sleep(1.5)
    health = 1000 * percentile([s[1] for s in samples if s[2] == 200], 99)
    return Baseline(
        health_p99_ms=health,
        first_success_s=first,
        server_errors=_server_errors(outcomes),
        unanswered=_unanswered(outcomes),
        p50_ms=percentile(answered, 50),
        p99_ms=percentile(answered, 99),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.stress", description=__doc__)
    parser.add_argument("--bursts", default=",".join(str(n) for n in DEFAULT_BURSTS))
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    bursts = [int(n) for n in args.bursts.split(",") if n]
    if any(not 1 <= n <= 2000 for n in bursts):
        parser.error("bursts are 1 to 2,000 requests")
    started = time.perf_counter()
    load_before = _load_average()
    figures: list[StressFigure] = []
    backends = args.backends.split(",")
    for backend in backends:
        if backend not in ("sqlite", "postgresql"):
            parser.error(f"unknown backend {backend!r}")
    print("refcheck stress test (make stress)")
    print(
        f"refcheck-server serve --workers {args.workers} on 127.0.0.1, demo network, default "
        f"overload settings; bursts of {', '.join(map(str, bursts))} concurrent requests "
        "(30 % GET /v1/me, 20 % POST /v1/checks, 20 % listings, 10 % GET /v1/audit/export, "
        "20 % sign-ins), each on "
        "its own connection; baseline: the same kinds one at a time, /healthz on an idle server"
    )
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, load "
        f"average {load_before} at the start (the machine is shared)",
        flush=True,
    )
    for backend in backends:
        # Printed as each backend ends, so a run stopped half-way still shows what it measured.
        measured = run_backend(backend, bursts, args.workers)
        for figure in measured:
            print(figure.line(), flush=True)
        figures += measured
    print(f"load average {_load_average()} at the end")
    judged = [f for f in figures if f.target is not None]
    print(f"{sum(f.met for f in judged)} of {len(judged)} targets met")
    _say(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def _load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _say(message: str) -> None:
    print(f"[stress {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
