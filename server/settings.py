"""One settings object for the whole server.

Everything configurable comes from the environment (prefix ``REFCHECK_``) or from files in the data
directory, never from code, so that a deployment can keep secrets out of the repository. Tests build
their own ``Settings`` and hand them to ``create_app`` instead of patching globals.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_POLICY_FILE = Path(__file__).resolve().parent.parent / "policies" / "network.toml"
#: A network's own policy file in its data directory, used instead of the packaged one.
LOCAL_POLICY_FILE = "network.toml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REFCHECK_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    # Empty means: the embedded SQLite file under data_dir, so `make run` needs no database server.
    database_url: str = ""
    policy_file: Path = DEFAULT_POLICY_FILE
    # `iss` of access tokens and the `aud` every client assertion must name (RFC 7523 §3).
    issuer: str = "refcheck"
    access_token_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    # Background jobs (retention sweeper, deadline checks) run in-process when the server runs.
    run_background_jobs: bool = True
    job_interval_seconds: int = Field(default=3600, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Largest request body accepted (413 above it). The largest real one, a case with 256
    # pseudonyms, is some 40 KB; the limit stops a caller, signed in or not, from making the
    # server buffer and parse as much as it cares to send.
    max_body_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)
    # Largest request head (request line and headers) accepted: 431 above it. A real one is well
    # under 2 KB (a bearer token is some 700 bytes).
    max_header_bytes: int = Field(default=8 * 1024, ge=2 * 1024, le=64 * 1024)

    # Notifications (README, "Notifications"): the SMTP server as `smtp://host:port`,
    # `smtp+starttls://user:pass@host:587` or `smtps://user:pass@host:465`, and the From address.
    # Without them e-mail notifications are recorded (`refcheck-server notifications list`) but
    # not sent. A secret: the URL may hold the SMTP password.
    smtp_url: SecretStr = SecretStr("")
    mail_from: str = ""
    # How often each worker process looks for notifications to deliver.
    notification_poll_seconds: float = Field(default=5.0, gt=0, le=3600)

    # --- Operations (docs/operations.md). -------------------------------------------------
    # `Strict-Transport-Security: max-age=...` sent by `serve --tls-cert` (a year by default).
    hsts_max_age_seconds: int = Field(default=365 * 24 * 3600, ge=0, le=2 * 365 * 24 * 3600)
    # Prometheus metrics (server.metrics): `GET /metrics` on the API's own port, or a port of
    # its own (listening on `metrics_host` only), or both; neither unless asked for. The
    # figures carry no identifier, but they are the network's volumes: not for the internet.
    metrics_enabled: bool = False
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    # --- Overload (README, "What to tune"). Everything is per worker process. ---------------
    # Requests that may touch the database at once. More only queue inside the database (for
    # SQLite's one write lock, or PostgreSQL's row locks) and in the GIL, and make every request
    # slower; fewer leave the cores idle while a request waits for the disk.
    max_concurrent_requests: int = Field(default=8, ge=1, le=256)
    # Checks a worker computes at once (`server.checks.pacing`): their cryptography hands the
    # interpreter lock back and forth, so side by side they cost more CPU each. Queued checks
    # hold their place meanwhile.
    checks_at_once: int = Field(default=1, ge=1, le=64)
    # Requests that may wait for one of those places; beyond it they are refused at once (503).
    request_queue_size: int = Field(default=64, ge=0, le=10_000)
    # Longest wait in that queue before the request is refused (503 with Retry-After).
    request_queue_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # The largest part of the places and the queue (together) that one organisation's requests
    # may hold; more from it are refused with 429 while others still get in.
    org_share: float = Field(default=0.5, gt=0, le=1)
    # Database connections per worker, and the longest wait for one (then 503, never 500).
    database_pool_size: int = Field(default=12, ge=1, le=1000)
    database_pool_max_overflow: int = Field(default=4, ge=0, le=1000)
    database_pool_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # Longest a request's statement may run (PostgreSQL `statement_timeout`) or wait for the write
    # lock (SQLite busy timeout); beyond it the request gets 503 with Retry-After.
    database_statement_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    # Longest `/readyz` waits for the database before it answers "busy".
    readiness_timeout_seconds: float = Field(default=1.0, gt=0, le=30)

    @model_validator(mode="after")
    def _network_policy_of_the_data_dir(self) -> Settings:
        # A network's own policy lives beside its keys (`init --demo` writes the demo
        # network's there); the packaged file applies when there is none and none was named.
        own = self.data_dir / LOCAL_POLICY_FILE
        if "policy_file" not in self.model_fields_set and own.is_file():
            self.policy_file = own
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_config(self) -> Settings:
        # A production server that silently falls back to a demo SQLite file in the working
        # directory would scatter pseudonyms where nobody backs them up or protects them.
        if self.environment == "production" and not self.database_url:
            raise ValueError("REFCHECK_DATABASE_URL must be set in production")
        if self.smtp_url.get_secret_value() or self.mail_from:
            from server.notifications.smtp import check_mail_settings

            check_mail_settings(
                self.smtp_url.get_secret_value(), self.mail_from, environment=self.environment
            )
        # Each admitted request holds at most one connection; /readyz and a streaming export
        # need one beside them. Fewer would turn admitted requests into pool timeouts.
        if (
            self.database_pool_size + self.database_pool_max_overflow
            <= self.max_concurrent_requests
        ):
            raise ValueError(
                "database_pool_size + database_pool_max_overflow must exceed "
                "max_concurrent_requests"
            )
        return self

    @property
    def org_share_slots(self) -> int:
        """Requests (running and waiting) one organisation may have in one worker."""
        return max(
            1, int(self.org_share * (self.max_concurrent_requests + self.request_queue_size))
        )

    @property
    def server_key_dir(self) -> Path:
        """Key files live beside, never inside, the database: a stolen dump alone is useless."""
        return self.data_dir / "server"

    @property
    def embedded_database_path(self) -> Path:
        """The SQLite file used when no `database_url` is configured."""
        return (self.data_dir / "refcheck.db").resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.embedded_database_path}"

    @property
    def token_audience(self) -> str:
        """Audience of access tokens; distinct from `issuer` so an assertion can't pass as one."""
        return f"{self.issuer}/api"


@lru_cache
def get_settings() -> Settings:
    return Settings()
