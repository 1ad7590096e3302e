"""Configuration value objects: how often to retry, how long to wait, when to renew a token.

Immutable and free of I/O, so one policy can be shared by many clients and tested without a
network. Timeouts are httpx's own `httpx.Timeout` (or a number of seconds), passed through.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["DEFAULT_TIMEOUT", "RetryPolicy"]

#: Connect quickly or fail; allow a slow answer for a large batch check.
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before sending a request again.

    Retried: connection failures (the request never reached the server), timeouts and dropped
    connections for *idempotent* requests only (a GET, or a POST that carries an
    `Idempotency-Key`), and answers 429 or 503 (the server says it did not act; `Retry-After` is
    honoured). Never retried: any other 4xx (a refusal does not change by asking again) and
    other 5xx (the server may have acted).

    Usage::

        RetryPolicy()                              # 4 attempts, 0.5 s, 1 s, 2 s (+ jitter)
        RetryPolicy(max_attempts=1)                # never retry
        RetryPolicy(backoff_factor=0)              # retry at once (tests)
        RetryPolicy(max_retry_after=600)           # wait up to 10 minutes if the server asks

    A `Retry-After` longer than `max_retry_after` is not waited out: the error surfaces at once
    (a daily quota that resets at midnight should reach the caller, not block a thread for hours).
    """

    max_attempts: int = 4
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 60.0
    retry_statuses: frozenset[int] = frozenset({429, 503})
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_factor < 0 or self.backoff_max < 0 or self.max_retry_after < 0:
            raise ValueError("waits cannot be negative")

    def backoff(self, attempt: int) -> float:
        """Wait before attempt `attempt + 1` (attempts count from 1): exponential with full
        jitter, so that many HR systems knocked over by the same outage do not come back in step.
        """
        ceiling = min(self.backoff_max, self.backoff_factor * (2 ** (attempt - 1)))
        if ceiling <= 0:
            return 0.0
        return random.uniform(0.0, ceiling) if self.jitter else ceiling

    def delay(self, attempt: int, retry_after: str | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None when no retry is allowed.

        `retry_after` is the raw `Retry-After` header (delta-seconds; an HTTP-date is treated as
        absent, which then falls back to the backoff).
        """
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None:
            try:
                asked = float(int(retry_after.strip()))
            except ValueError:
                asked = -1.0
            if asked > self.max_retry_after:
                return None
            if asked >= 0:
                return asked
        return self.backoff(attempt)

    def retries_status(self, status: int) -> bool:
        return status in self.retry_statuses
