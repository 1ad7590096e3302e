"""Normalisation tables for identity keys: loaded once from package data, checked, and pinned.

The tables (titles, degrees, connectors, fillers, spelling fold rules, name variants, abbreviated
names) live in
`tables/v<N>.json` as data, so that a reviewer who knows Indonesian records can read and amend them
without reading code. Every key derived from a name carries the tables' version, because a change
to any table changes the bytes that registration and check must agree on.

Why the digest pin: if someone edits a table file but forgets to bump its version, cases
registered before and checks run after would derive different keys under the same version label,
and recall would silently drop. `_PINNED_DIGESTS` holds the digest of every released version;
loading a file whose content does not match its version's digest fails loudly (in the tests, and
at the first key derived), so an edit is only possible together with a new version.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from protocol.errors import ProtocolError

__all__ = [
    "CURRENT_VERSION",
    "Tables",
    "TablesIntegrityError",
    "canonical_digest",
    "load_tables",
    "parse_tables",
]

#: The tables version new keys are derived with. Version 2 added the fillers (FNU, LNU), the
#: connector "bt" and the abbreviated names ("M." for Muhammad).
CURRENT_VERSION = "2"

#: SHA-256 of the canonical JSON (`canonical_digest`) of each released table version. Computed over
#: parsed JSON rather than file bytes so that re-indenting, line endings (a Windows checkout) or
#: the "about" texts do not count as a change, while any change to a word or rule does.
_PINNED_DIGESTS: Mapping[str, str] = {
    "1": "82742b88e12cc6eca1a7d2b0108e80ddb4e4976ba6ac2a94ed074b344b809273",
    "2": "3b890f8807aeb45f623d63c5b42a8b1ec324be8cb781201236d54d3eb2229803",
}

#: Sections that a table version before this one does not have (they are then empty), and that
#: every later version must have.
_SECTIONS_SINCE: Mapping[str, int] = {"fillers": 2, "abbreviated_names": 2}

_VERSION_RE = re.compile(r"^[0-9]{1,4}$")
_WORD_RE = re.compile(r"^[a-z0-9]{1,24}$")
_INITIAL_RE = re.compile(r"^[a-z]$")


class TablesIntegrityError(ProtocolError):
    """The normalisation tables are missing, malformed, or changed without a version bump."""


@dataclass(frozen=True)
class Tables:
    """One version of the normalisation tables, ready to use.

    `fold` is the spelling fold of one lower-case ASCII token: the ordered rewrite rules, then the
    name-variant table. Both sides of a match run the same fold, so what matters is that two
    spellings of one name land on one form, not that the form is a "correct" spelling.

    `abbreviated_names` maps the folded form of a name to the one-letter initial documents write
    for it (`"muhamad": "m"`).
    """

    version: str
    prefix_titles: frozenset[str]
    degrees: frozenset[str]
    connectors: frozenset[str]
    fold_rules: tuple[tuple[re.Pattern[str], str], ...]
    name_variants: Mapping[str, str]
    fillers: frozenset[str] = frozenset()
    abbreviated_names: Mapping[str, str] = field(default_factory=dict)

    def fold_spelling(self, token: str) -> str:
        """Apply the ordered rewrite rules (old spelling, transliteration) to one token."""
        for pattern, replacement in self.fold_rules:
            token = pattern.sub(replacement, token)
        return token

    def fold(self, token: str) -> str:
        """Fold one token: rewrite rules, then the canonical form of a known name variant."""
        folded = self.fold_spelling(token)
        return self.name_variants.get(folded, folded)


def _without_about(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_about(v) for k, v in data.items() if k != "about"}
    if isinstance(data, list):
        return [_without_about(v) for v in data]
    return data


def canonical_digest(data: Any) -> str:
    """SHA-256 hex of `data` as canonical JSON (sorted keys, no whitespace, ASCII escapes),
    leaving out the "about" texts: rewording an explanation changes no key."""
    text = json.dumps(
        _without_about(data), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _word_list(data: Mapping[str, Any], section: str) -> frozenset[str]:
    block = data.get(section)
    if not isinstance(block, dict) or not isinstance(block.get("words"), list):
        raise TablesIntegrityError(f"tables: section {section!r} must have a 'words' list")
    words = block["words"]
    for word in words:
        if not isinstance(word, str) or not _WORD_RE.match(word):
            raise TablesIntegrityError(f"tables: {section!r} holds a word that is not [a-z0-9]+")
    if len(set(words)) != len(words):
        raise TablesIntegrityError(f"tables: {section!r} lists a word twice")
    return frozenset(words)


def _fold_rules(data: Mapping[str, Any]) -> tuple[tuple[re.Pattern[str], str], ...]:
    block = data.get("fold_rules")
    if not isinstance(block, dict) or not isinstance(block.get("rules"), list):
        raise TablesIntegrityError("tables: section 'fold_rules' must have a 'rules' list")
    rules: list[tuple[re.Pattern[str], str]] = []
    for rule in block["rules"]:
        if (
            not isinstance(rule, list)
            or len(rule) != 2
            or not all(isinstance(part, str) for part in rule)
        ):
            raise TablesIntegrityError("tables: every fold rule must be [pattern, replacement]")
        try:
            # ASCII flag: tokens are ASCII by the time rules run, and \w must not widen.
            rules.append((re.compile(rule[0], re.ASCII), rule[1]))
        except re.error:
            raise TablesIntegrityError("tables: a fold rule is not a valid pattern") from None
    return tuple(rules)


def _name_variants(data: Mapping[str, Any], rules: Tables) -> Mapping[str, str]:
    block = data.get("name_variants")
    if not isinstance(block, dict) or not isinstance(block.get("groups"), list):
        raise TablesIntegrityError("tables: section 'name_variants' must have a 'groups' list")
    mapping: dict[str, str] = {}
    for group in block["groups"]:
        if (
            not isinstance(group, list)
            or len(group) < 2
            or not all(isinstance(w, str) and _WORD_RE.match(w) for w in group)
        ):
            raise TablesIntegrityError(
                "tables: every name-variant group must list at least two [a-z0-9]+ spellings"
            )
        canonical = rules.fold_spelling(group[0])
        for spelling in group:
            folded = rules.fold_spelling(spelling)
            # A spelling claimed by two groups would make the fold depend on group order;
            # refuse it so that the table stays a function a reviewer can read.
            if mapping.get(folded, canonical) != canonical:
                raise TablesIntegrityError("tables: a spelling belongs to two name-variant groups")
            if folded != canonical:
                mapping[folded] = canonical
    # A canonical form must not itself be a variant of another group (no chains).
    if any(canonical in mapping for canonical in mapping.values()):
        raise TablesIntegrityError("tables: a canonical name is also listed as a variant")
    return mapping


def _abbreviated_names(data: Mapping[str, Any], tables: Tables) -> Mapping[str, str]:
    block = data.get("abbreviated_names")
    if not isinstance(block, dict) or not isinstance(block.get("pairs"), list):
        raise TablesIntegrityError("tables: section 'abbreviated_names' must have a 'pairs' list")
    mapping: dict[str, str] = {}
    for pair in block["pairs"]:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(w, str) for w in pair)
            or not _INITIAL_RE.match(pair[0])
            or not _WORD_RE.match(pair[1])
            or len(pair[1]) < 2
        ):
            raise TablesIntegrityError(
                "tables: every abbreviated name must be [one-letter initial, name of 2+ letters]"
            )
        name = tables.fold(pair[1])
        if name in mapping:
            raise TablesIntegrityError("tables: an abbreviated name is listed twice")
        mapping[name] = pair[0]
    return mapping


def _since(version: str, section: str) -> bool:
    return int(version) >= _SECTIONS_SINCE[section]


def parse_tables(
    data: Any, *, expected_version: str, pinned: Mapping[str, str] = _PINNED_DIGESTS
) -> Tables:
    """Check and compile parsed table JSON. Raises `TablesIntegrityError` on any defect.

    Separate from `load_tables`, with the pinned digests as a parameter, so that tests can show
    each structural defect refused on a table that passes the pin.
    """
    if not isinstance(data, dict):
        raise TablesIntegrityError("tables: top level must be an object")
    version = data.get("version")
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise TablesIntegrityError("tables: 'version' must be a short decimal string")
    if version != expected_version:
        raise TablesIntegrityError("tables: file version does not match the requested version")
    digest = pinned.get(version)
    if digest is None or canonical_digest(data) != digest:
        raise TablesIntegrityError(
            f"tables v{version}: content differs from the released version; "
            "bump 'version' and pin the new digest instead of editing a released table"
        )
    spelling_only = Tables(
        version=version,
        prefix_titles=_word_list(data, "prefix_titles"),
        degrees=_word_list(data, "degrees"),
        connectors=_word_list(data, "connectors"),
        fold_rules=_fold_rules(data),
        name_variants={},
    )
    folding = replace(spelling_only, name_variants=_name_variants(data, spelling_only))
    return replace(
        folding,
        fillers=_word_list(data, "fillers") if _since(version, "fillers") else frozenset(),
        abbreviated_names=(
            _abbreviated_names(data, folding) if _since(version, "abbreviated_names") else {}
        ),
    )


@cache
def load_tables(version: str = CURRENT_VERSION) -> Tables:
    """Load, check and compile one table version from package data (cached: loaded once)."""
    if not _VERSION_RE.match(version):
        raise TablesIntegrityError("tables: version must be a short decimal string")
    resource = resources.files("protocol.identity") / "tables" / f"v{version}.json"
    try:
        text = resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TablesIntegrityError(f"tables v{version}: file not found in the package") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise TablesIntegrityError(f"tables v{version}: not valid JSON") from None
    return parse_tables(data, expected_version=version)
