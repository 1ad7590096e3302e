"""`GET /metrics` (server.metrics): off unless asked for, route templates instead of paths, and
never an identifier or an organisation's own reference in what it shows."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Connection

from server.app import create_app
from server.metrics import REFUSALS, MetricsMiddleware, sample_names
from server.settings import Settings
from tests.conftest import MutableClock
from tests.factories import AppClient, Network

pytestmark = pytest.mark.anyio

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def settings(key_dir: Path, database_url: str) -> Settings:
    return Settings(
        environment="test",
        data_dir=key_dir,
        database_url=database_url,
        run_background_jobs=False,
        metrics_enabled=True,
    )


async def test_metrics_show_routes_statuses_refusals_and_backlogs_but_no_identifier(
    client: AppClient, network: Network
) -> None:
    hr, focal = network.b_hr, network.a_focal
    secret_ref = "APPLICANT-REF-7731"
    unknown = str(uuid.uuid4())
    assert (await client.get(f"/v1/cases/{unknown}", headers=focal.headers)).status_code == 404
    assert (await client.get(f"/v1/no/such/path/{unknown}", headers=hr.headers)).status_code == 404
    refused = await client.post(
        "/v1/checks",
        headers=hr.headers,
        json={"consent_id": unknown, "key_id": "x", "blinded_elements": [secret_ref]},
    )
    assert refused.status_code in (404, 409, 422)
    await client.post(
        "/v1/consents",
        headers=hr.headers,
        json={"applicant_ref": secret_ref, "purpose": "recruitment"},
    )
    assert (await client.get("/v1/network/keys", headers=hr.headers)).status_code == 200

    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert 'route="/v1/cases/{case_id}",status="404"' in text
    assert 'route="unmatched",status="404"' in text
    assert 'refcheck_checks_total{outcome="refused"}' in text
    assert re.search(r'refcheck_refusals_total\{problem="[a-z0-9-]+"\} [1-9]', text)
    names = set(sample_names(text))
    for name in (
        "refcheck_http_requests_total",
        "refcheck_http_request_duration_seconds_bucket",
        "refcheck_disclosure_requests_overdue",
        "refcheck_log_unsealed_entries",
        "refcheck_log_sealer_lag_seconds",
    ):
        assert name in names, name
    # Nothing that names a person, a case, a principal or an organisation.
    assert not _UUID.search(text)
    for forbidden in (
        secret_ref,
        unknown,
        hr.principal.id,
        hr.org.id,
        hr.org.short_name,
        focal.org.short_name,
    ):
        assert forbidden not in text


async def test_no_metrics_route_unless_it_is_switched_on(
    key_dir: Path, database_url: str, connection: Connection, clock: MutableClock
) -> None:
    off = Settings(
        environment="test", data_dir=key_dir, database_url=database_url, run_background_jobs=False
    )
    app = create_app(off, bind=connection, clock=clock)
    async with AppClient(app) as plain:
        assert (await plain.get("/metrics")).status_code == 404


async def test_a_problem_type_that_is_not_a_slug_is_counted_as_other() -> None:
    """A problem type carrying anything else (an id, a name) never becomes a label."""
    inner = FastAPI()

    @inner.get("/odd")
    def odd() -> JSONResponse:
        return JSONResponse(
            {"type": "urn:refcheck:problem:Siti Rahmawati 3201", "status": 409},
            status_code=409,
            media_type="application/problem+json",
        )

    before = REFUSALS.labels("other")._value.get()
    wrapped = MetricsMiddleware(inner)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=wrapped), base_url="http://t"
    ) as c:
        assert (await c.get("/odd")).status_code == 409
    assert REFUSALS.labels("other")._value.get() == before + 1
    labels = {s.labels.get("problem") for m in REFUSALS.collect() for s in m.samples}
    assert not any(label and "Siti" in label for label in labels)


@pytest.mark.slow
def test_the_metrics_port_sums_what_every_worker_counted(tmp_path: Path) -> None:
    """`serve --workers 2` with REFCHECK_METRICS_PORT: one scrape of the port `serve` itself
    listens on (127.0.0.1 only) counts the requests both workers answered."""
    from tests.sdk.live import free_port
    from tests.server.ops.support import base_env, deployment

    port = free_port()
    env = base_env(REFCHECK_METRICS_PORT=str(port))
    with deployment(tmp_path, "net", "sqlite", env=env) as net:
        net.init()
        with net.serve("--workers", "2"):
            # New connections each time: the kernel spreads them over both workers.
            answered = sum(
                httpx.get(net.base_url + "/healthz").status_code == 200 for _ in range(40)
            )
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            # The API's own port does not serve them (REFCHECK_METRICS_ENABLED is off).
            assert httpx.get(net.base_url + "/metrics").status_code == 404
    samples = re.findall(
        r'refcheck_http_requests_total\{method="GET",route="/healthz",status="200"\} ([0-9.e+]+)',
        text,
    )
    # The start-up probes of `Deployment.serve` add a few.
    assert sum(float(v) for v in samples) >= answered == 40
    assert "refcheck_log_sealer_lag_seconds" in text
