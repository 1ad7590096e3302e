"""Each vocabulary is written down once (issue 21): no tuple, list, set or `Literal[...]` in
`protocol/`, `server/`, `client_sdk/` or `policies/` spells out the values of one of the
vocabularies below except its own definition. A second copy drifts (a new strength added in one
place, refused in another); import the definition instead.

Migrations are left out: they are frozen deploy contracts and must not import code that changes.
A mapping keyed by the values (an outcome's counter, a code's label) is not a copy: it says
something new about each value.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

from protocol.disclosure_messages import Outcome, State
from protocol.identity.keys import Strength

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("protocol", "server", "client_sdk", "policies")
SKIPPED = ("server/migrations/versions/",)

#: name -> (its values, the file that defines it)
VOCABULARIES: dict[str, tuple[frozenset[str], str]] = {
    "Strength": (frozenset(s.value for s in Strength), "protocol/identity/keys.py"),
    "Outcome": (frozenset(get_args(Outcome)), "protocol/disclosure_messages.py"),
    "State": (frozenset(get_args(State)), "protocol/disclosure_messages.py"),
}


def spelled_out(tree: ast.AST, values: frozenset[str]) -> list[int]:
    """Lines of the collections (or `Literal[...]`) in `tree` whose strings are exactly `values`."""
    lines: list[int] = []
    for node in ast.walk(tree):
        # `Literal["a", "b"]` is met here too: its slice is a Tuple node.
        if not isinstance(node, ast.Tuple | ast.List | ast.Set):
            continue
        strings = {e.value for e in node.elts if isinstance(e, ast.Constant)}
        if len(node.elts) == len(values) and strings == values:
            lines.append(node.lineno)
    return lines


def copies(root: Path, values: frozenset[str], home: str) -> list[str]:
    found: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative.startswith(SKIPPED):
                continue
            lines = spelled_out(ast.parse(path.read_text(encoding="utf-8")), values)
            if relative == home:
                lines = lines[1:]  # the definition itself
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
    assert copies(tmp_path, values, "protocol/identity/keys.py") == [
        "client_sdk/x.py:2",
        "client_sdk/x.py:5",
    ]


@pytest.mark.parametrize("name", sorted(VOCABULARIES))
def test_each_vocabulary_is_defined_once(name: str) -> None:
    values, home = VOCABULARIES[name]
    assert not copies(ROOT, values, home), f"{name} restated; import it from {home}"
