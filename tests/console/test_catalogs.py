"""Bahasa Indonesia everywhere: every message of the console's pages and every code it shows
in words has an Indonesian translation, and the shipped `.mo` files are those of the `.po`
files."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

pytest.importorskip("babel")

from babel.messages.extract import extract_from_dir  # noqa: E402
from babel.messages.mofile import write_mo  # noqa: E402
from babel.messages.pofile import read_po  # noqa: E402

from client_sdk.console import i18n  # noqa: E402
from client_sdk.console.choices import CHOICES  # noqa: E402

CONSOLE = Path(i18n.__file__).parent


def messages() -> set[str]:
    found = set(CHOICES.values())
    for _, _, msg, _, _ in extract_from_dir(
        str(CONSOLE),
        method_map=[("**/templates/**.html", "jinja2"), ("**.py", "python")],
        keywords={"_": None, "gettext_": None},
    ):
        found.add(msg[0] if isinstance(msg, tuple) else msg)
    return found


def test_every_message_has_an_indonesian_translation():
    with (i18n.LOCALE_DIR / "id/LC_MESSAGES/messages.po").open("rb") as fh:
        catalog = read_po(fh)
    assert untranslated(catalog, messages()) == []


def untranslated(catalog, wanted: set[str]) -> list[str]:
    return sorted(m for m in wanted if not ((found := catalog.get(m)) and found.string))


@pytest.mark.parametrize("lang", sorted(i18n.LANGUAGES))
def test_the_shipped_mo_files_are_compiled_from_the_po_files(lang: str):
    po = i18n.LOCALE_DIR / lang / "LC_MESSAGES/messages.po"
    with po.open("rb") as fh:
        catalog = read_po(fh)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    assert po.with_suffix(".mo").read_bytes() == compiled.getvalue(), (
        "run `python -m client_sdk.console.i18n` after editing a catalog"
    )


def test_a_missing_translation_is_caught():
    with (i18n.LOCALE_DIR / "id/LC_MESSAGES/messages.po").open("rb") as fh:
        catalog = read_po(fh)
    wanted = messages() | {"A message nobody translated"}
    assert untranslated(catalog, wanted) == ["A message nobody translated"]
    i18n.use_language("id")
    assert i18n.gettext_("A message nobody translated") == "A message nobody translated"
    assert i18n.gettext_("Register a case") == "Daftarkan kasus"


@pytest.mark.parametrize(
    ("chosen", "header", "expected"),
    [
        (None, "en-US,en;q=0.9", "en"),
        (None, "fr-FR, en;q=0.3, id;q=0.8", "id"),
        (None, "in", "id"),
        (None, "", "id"),
        (None, "de", "id"),
        ("en", "id", "en"),
        ("xx", "en", "en"),
    ],
)
def test_the_language_is_the_switch_then_the_browser_then_indonesian(chosen, header, expected):
    assert i18n.negotiate(chosen, header) == expected


def test_dates_follow_the_chosen_language():
    day = dt.date(2026, 8, 17)
    i18n.use_language("id")
    assert i18n.fmt_date(day) == "17 Agu 2026"
    i18n.use_language("en")
    assert i18n.fmt_date(day) == "Aug 17, 2026"
