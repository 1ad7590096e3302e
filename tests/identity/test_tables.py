"""The normalisation tables: shipped as package data, pinned, and checked when loaded."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from protocol.identity import TABLES_VERSION
from protocol.identity.tables import (
    TablesIntegrityError,
    canonical_digest,
    load_tables,
    parse_tables,
)


def shipped() -> dict[str, Any]:
    resource = resources.files("protocol.identity") / "tables" / f"v{TABLES_VERSION}.json"
    data = json.loads(resource.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def parse_unpinned(data: dict[str, Any]) -> None:
    """Parse with the table's own digest pinned, to reach the structural checks."""
    parse_tables(
        data, expected_version=TABLES_VERSION, pinned={TABLES_VERSION: canonical_digest(data)}
    )


def test_the_shipped_tables_load_once_with_the_current_version() -> None:
    tables = load_tables()
    assert tables.version == TABLES_VERSION
    assert load_tables() is tables
    assert {"h", "hj", "dr", "drs", "ir", "bapak", "ibu"} <= tables.prefix_titles
    assert {"sh", "msi", "spd", "se", "skom", "phd"} <= tables.degrees


def test_editing_a_released_table_without_a_new_version_is_refused() -> None:
    data = shipped()
    data["prefix_titles"]["words"].append("tuanku")
    with pytest.raises(TablesIntegrityError, match="bump 'version'"):
        parse_tables(data, expected_version=TABLES_VERSION)


def test_reformatting_the_table_file_is_not_an_edit() -> None:
    data = json.loads(json.dumps(shipped(), indent=None))
    assert parse_tables(data, expected_version=TABLES_VERSION).version == TABLES_VERSION


def test_a_file_whose_version_differs_from_the_requested_one_is_refused() -> None:
    with pytest.raises(TablesIntegrityError, match="does not match"):
        parse_tables(shipped(), expected_version="1")


def test_the_released_version_1_still_loads_without_the_sections_added_in_version_2() -> None:
    # Keys registered under t1 stay derivable; v1 has no fillers and no abbreviated names.
    v1 = load_tables("1")
    assert v1.version == "1" and TABLES_VERSION == "2"
    assert v1.fillers == frozenset() and dict(v1.abbreviated_names) == {}
    assert "bt" not in v1.connectors and "bt" in load_tables().connectors


def test_a_version_2_table_without_its_new_sections_is_refused() -> None:
    for section in ("fillers", "abbreviated_names"):
        data = copy.deepcopy(shipped())
        del data[section]
        with pytest.raises(TablesIntegrityError, match=section):
            parse_unpinned(data)


def test_an_unknown_version_is_refused() -> None:
    with pytest.raises(TablesIntegrityError, match="not found"):
        load_tables("999")
    with pytest.raises(TablesIntegrityError, match="short decimal"):
        load_tables("../v1")


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(shipped())
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with(("prefix_titles", "words"), ["dr", "Dr."]), "not \\[a-z0-9\\]"),
        (_with(("degrees", "words"), ["sh", "sh"]), "twice"),
        (_with(("connectors",), ["bin"]), "'words' list"),
        (_with(("fold_rules", "rules"), [["(", "x"]]), "not a valid pattern"),
        (_with(("fold_rules", "rules"), [["oe"]]), "\\[pattern, replacement\\]"),
        (_with(("name_variants", "groups"), [["ahmad"]]), "at least two"),
        (
            _with(("name_variants", "groups"), [["ahmad", "ahmed"], ["ahmet", "ahmed"]]),
            "two name-variant groups",
        ),
        (
            _with(("name_variants", "groups"), [["ahmad", "ahmed"], ["ahmed", "ahmet"]]),
            "two name-variant groups",
        ),
        (_with(("version",), "v1"), "short decimal"),
        (_with(("fillers", "words"), ["FNU"]), "not \\[a-z0-9\\]"),
        (_with(("abbreviated_names", "pairs"), [["mu", "muhammad"]]), "one-letter initial"),
        (_with(("abbreviated_names", "pairs"), [["m", "m"]]), "one-letter initial"),
        (_with(("abbreviated_names", "pairs"), [["m"]]), "one-letter initial"),
        (
            _with(("abbreviated_names", "pairs"), [["m", "muhammad"], ["n", "mohamad"]]),
            "listed twice",
        ),
    ],
)
def test_a_malformed_table_is_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(TablesIntegrityError, match=message):
        parse_unpinned(data)


def test_name_variants_map_every_spelling_to_the_folded_canonical_form() -> None:
    tables = load_tables()
    for spelling in ["mohamad", "Mochammad", "muhammed", "moh"]:
        assert tables.fold(spelling.lower()) == tables.fold("muhammad")
    assert tables.fold("ahmed") == tables.fold("ahmad") == "ahmad"


def test_abbreviated_names_map_the_folded_name_to_its_initial() -> None:
    tables = load_tables()
    assert dict(tables.abbreviated_names) == {tables.fold("muhammad"): "m"}
    assert {"fnu", "lnu", "nfn", "nln"} <= tables.fillers


def test_rewording_an_explanation_is_not_an_edit() -> None:
    data = shipped()
    data["degrees"]["about"] = "reworded"
    assert parse_tables(data, expected_version=TABLES_VERSION).version == TABLES_VERSION
