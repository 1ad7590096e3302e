"""Fixtures of the filter tests (helpers are in `tests.server.filter.helpers`)."""

from __future__ import annotations

import pytest

from server.context import AppContext


@pytest.fixture
def kpc(ctx: AppContext) -> int:
    return ctx.policy.keys_per_check
