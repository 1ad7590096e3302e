"""RetryPolicy: how long to wait, and when not to retry at all."""

from __future__ import annotations

import pytest

from client_sdk import RetryPolicy


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_factor=0.5, backoff_max=3.0, jitter=False)
    assert [policy.delay(a) for a in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_below_the_exponential_ceiling() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_factor=1.0)
    for _ in range(50):
        delay = policy.delay(3)
        assert delay is not None and 0.0 <= delay <= 4.0


def test_no_delay_once_attempts_are_used_up() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.delay(2) is not None
    assert policy.delay(3) is None


def test_retry_after_is_honoured_within_the_limit() -> None:
    policy = RetryPolicy(max_retry_after=60)
    assert policy.delay(1, "7") == 7.0


def test_retry_after_beyond_the_limit_surfaces_instead_of_waiting() -> None:
    policy = RetryPolicy(max_retry_after=60)
    assert policy.delay(1, "3600") is None


def test_unparseable_retry_after_falls_back_to_backoff() -> None:
    policy = RetryPolicy(backoff_factor=0.25, jitter=False)
    assert policy.delay(1, "Wed, 21 Oct 2015 07:28:00 GMT") == 0.25


def test_only_429_and_503_are_retried_by_default() -> None:
    policy = RetryPolicy()
    assert policy.retries_status(429) and policy.retries_status(503)
    for status in (400, 401, 403, 404, 409, 422, 500, 502):
        assert not policy.retries_status(status)


def test_nonsensical_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_factor=-1)
