"""Each vocabulary is written down once (issue 21): each is a `StrEnum` of `protocol`, and no
tuple, list, set, `Literal[...]` or class (an enum, or a plain class of constants) in
`protocol/`, `server/`, `client_sdk/` or `policies/` spells out the values of one of the
vocabularies below except its own definition. A second copy drifts (a new strength added in one
place, refused in another); import the definition instead.

Migrations are left out: they are frozen deploy contracts and must not import code that changes.
A mapping keyed by the values (an outcome's counter, a code's label) is not a copy: it says
something new about each value.
"""

from __future__ import annotations

import ast
import functools
from enum import StrEnum
from pathlib import Path

import pytest

from protocol import vocabulary
from protocol.vocabulary import (
    Category,
    DisclosureState,
    Finding,
    Kind,
    Outcome,
    Sanction,
    Strength,
)

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("protocol", "server", "client_sdk", "policies")
SKIPPED = ("server/migrations/versions/",)

ENUMS: tuple[type[StrEnum], ...] = (
    Strength,
    Kind,
    Category,
    Finding,
    Sanction,
    Outcome,
    DisclosureState,
)


def home_of(enum: type[StrEnum]) -> str:
    return enum.__module__.replace(".", "/") + ".py"


#: name -> (its values, the file that defines it)
VOCABULARIES: dict[str, tuple[frozenset[str], str]] = {
    e.__name__: (frozenset(m.value for m in e), home_of(e)) for e in ENUMS
}


def _class_values(node: ast.ClassDef) -> list[object]:
    """The constants a class body assigns (`NAME = "value"`): an enum's members, or a plain
    class of constants standing in for one."""
    return [
        stmt.value.value
        for stmt in node.body
        if isinstance(stmt, ast.Assign | ast.AnnAssign) and isinstance(stmt.value, ast.Constant)
    ]


def spelled_out(tree: ast.AST, values: frozenset[str], definition: str | None = None) -> list[int]:
    """Lines of the collections (or `Literal[...]`) and classes in `tree` whose strings are
    exactly `values`; the class named `definition` is the vocabulary itself, not a copy."""
    lines: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            if node.name == definition:
                continue
            elts = _class_values(node)
        # `Literal["a", "b"]` is met here too: its slice is a Tuple node.
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            elts = [e.value if isinstance(e, ast.Constant) else e for e in node.elts]
        else:
            continue
        if len(elts) == len(values) and set(elts) == values:
            lines.append(node.lineno)
    return lines


@functools.cache
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def copies(root: Path, values: frozenset[str], home: str, name: str) -> list[str]:
    found: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative.startswith(SKIPPED):
                continue
            tree = _parsed(path)
            lines = spelled_out(tree, values, name if relative == home else None)
            found.extend(f"{relative}:{line}" for line in lines)
    return found


def test_a_restated_vocabulary_is_found(tmp_path: Path) -> None:
    (tmp_path / "client_sdk").mkdir()
    (tmp_path / "client_sdk" / "x.py").write_text(
        'from typing import Literal\nS = Literal["strong", "exact", "variant"]\n'
        'RANK = {"strong": 0, "exact": 1, "variant": 2}\n'
        'MORE = ("strong", "exact", "variant", "none")\n'
        'if s not in ["variant", "exact", "strong"]:\n    pass\n',
        encoding="utf-8",
    )
    values = VOCABULARIES["Strength"][0]
    assert copies(tmp_path, values, "protocol/identity/keys.py", "Strength") == [
        "client_sdk/x.py:2",
        "client_sdk/x.py:5",
    ]


def test_a_vocabulary_declared_again_as_a_class_is_found(tmp_path: Path) -> None:
    """A second enum with the same codes, or a plain class of constants, is a copy too; the
    definition in its own file is not."""
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "policy.py").write_text(
        "from enum import StrEnum\n"
        "class Category(StrEnum):\n"
        '    SEXUAL_EXPLOITATION = "sexual_exploitation"\n'
        '    SEXUAL_ABUSE = "sexual_abuse"\n'
        '    SEXUAL_HARASSMENT = "sexual_harassment"\n'
        "class DisclosureState:\n"
        '    REQUESTED = "requested"\n'
        '    ACKNOWLEDGED = "acknowledged"\n'
        '    ANSWERED = "answered"\n'
        '    CLOSED = "closed"\n'
        '    WITHDRAWN = "withdrawn"\n'
        '    EXPIRED = "expired"\n',
        encoding="utf-8",
    )
    (tmp_path / "protocol").mkdir()
    (tmp_path / "protocol" / "vocabulary.py").write_text(
        "from enum import StrEnum\n"
        "class Category(StrEnum):\n"
        '    SEXUAL_EXPLOITATION = "sexual_exploitation"\n'
        '    SEXUAL_ABUSE = "sexual_abuse"\n'
        '    SEXUAL_HARASSMENT = "sexual_harassment"\n',
        encoding="utf-8",
    )
    category, home = VOCABULARIES["Category"]
    assert copies(tmp_path, category, home, "Category") == ["server/policy.py:2"]
    state, home = VOCABULARIES["DisclosureState"]
    assert copies(tmp_path, state, home, "DisclosureState") == ["server/policy.py:6"]


@pytest.mark.parametrize("name", sorted(VOCABULARIES))
def test_each_vocabulary_is_defined_once(name: str) -> None:
    values, home = VOCABULARIES[name]
    assert not copies(ROOT, values, home, name), f"{name} restated; import it from {home}"


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_each_vocabulary_is_a_protocol_str_enum_listed_in_protocol_vocabulary(
    enum: type[StrEnum],
) -> None:
    assert issubclass(enum, StrEnum)
    assert enum.__module__.startswith("protocol.")
    assert getattr(vocabulary, enum.__name__) is enum
    assert enum.__name__ in vocabulary.__all__
