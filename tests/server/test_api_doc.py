"""docs/api.md is the wire contract: every problem type a client can get, every policy member
and every statistics counter the server has is named in it, so adding one without documenting
it fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import server.app
import server.bootstrap
from server.errors import DomainError
from server.policy.schema import NetworkPolicy
from server.problems import _HTTP_SLUGS
from server.stats.answer_times import AnswerTime
from server.stats.services import Counter

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
DOC = API_DOC.read_text(encoding="utf-8")
# The words of every `code span` of the page (fenced blocks left out: their ``` would pair up
# with the spans' backticks): a slug or name counts as documented only written as code.
_PROSE = re.sub(r"```.*?```", "", DOC, flags=re.S)
CODE_SPANS = {
    word for span in re.findall(r"`([^`]+)`", _PROSE) for word in re.findall(r"[\w.:-]+", span)
}


def _domain_errors() -> set[type[DomainError]]:
    # Importing the app and the bootstrap imports every domain's errors module.
    assert server.app and server.bootstrap
    found: set[type[DomainError]] = set()
    stack: list[type[DomainError]] = [DomainError]
    while stack:
        cls = stack.pop()
        found.add(cls)
        stack.extend(cls.__subclasses__())
    return found


PROBLEM_SLUGS = sorted(
    {cls.slug for cls in _domain_errors()} | set(_HTTP_SLUGS.values()) | {"http-error"}
)


@pytest.mark.parametrize("slug", PROBLEM_SLUGS)
def test_every_problem_type_is_documented(slug: str) -> None:
    assert slug in CODE_SPANS, f"problem type {slug!r} is not in docs/api.md"
    table = DOC[DOC.index("## Problem types") :]
    assert f"`{slug}`" in table, f"problem type {slug!r} is missing from the Problem types table"


@pytest.mark.parametrize("name", sorted(NetworkPolicy.model_fields))
def test_every_policy_member_is_documented(name: str) -> None:
    assert name in CODE_SPANS, f"policy member {name!r} is not in docs/api.md"


@pytest.mark.parametrize("name", sorted(c.value for c in Counter))
def test_every_statistics_counter_is_documented(name: str) -> None:
    assert name in CODE_SPANS, f"counter {name!r} is not in docs/api.md"


@pytest.mark.parametrize("name", sorted(b.value for b in AnswerTime))
def test_every_answer_time_bucket_is_documented(name: str) -> None:
    assert name in CODE_SPANS, f"answer-time bucket {name!r} is not in docs/api.md"


def test_the_slug_walk_finds_the_new_ones() -> None:
    """The walk above is what makes the documentation test bite: it must reach nested
    subclasses from every domain, not just `server.errors`."""
    assert {"quota-exceeded", "invalid-transition", "unsupported-grant-type"} <= set(PROBLEM_SLUGS)
    assert {"already-initialised", "last-admin", "consent-exhausted"} <= set(PROBLEM_SLUGS)
