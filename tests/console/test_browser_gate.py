"""Without Chromium the browser tests skip under `make test`, and fail under CI's
REFCHECK_REQUIRE_BROWSER=1."""

from __future__ import annotations

import pytest

from tests.console.test_browser import chromium_or_skip


def test_without_chromium_the_browser_tests_skip_with_a_plain_message():
    with pytest.raises(pytest.skip.Exception, match="Chromium is not installed"):
        chromium_or_skip(None, {})


def test_without_chromium_ci_fails_instead_of_skipping():
    with pytest.raises(pytest.fail.Exception, match="REFCHECK_REQUIRE_BROWSER=1"):
        chromium_or_skip(None, {"REFCHECK_REQUIRE_BROWSER": "1"})


def test_with_chromium_its_path_is_used():
    assert chromium_or_skip("/usr/bin/chromium", {"REFCHECK_REQUIRE_BROWSER": "1"}) == (
        "/usr/bin/chromium"
    )
