"""Languages of the console: Bahasa Indonesia first, English second, through gettext catalogs
(`locale/<lang>/LC_MESSAGES/messages.mo`, compiled from the `.po` files with Babel:
`python -m client_sdk.console.i18n`). The language is the one chosen with the switch (a
cookie), else the browser's Accept-Language, else Indonesian. Dates are formatted by Babel in
that locale.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import gettext
from functools import cache
from pathlib import Path

from babel.dates import format_date, format_datetime

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "compile_catalogs",
    "current_language",
    "fmt_date",
    "fmt_datetime",
    "fmt_month",
    "gettext_",
    "negotiate",
    "ngettext_",
    "use_language",
]

LOCALE_DIR = Path(__file__).with_name("locale")
#: Language codes and their names, each written in its own language.
LANGUAGES = {"id": "Bahasa Indonesia", "en": "English"}
DEFAULT_LANGUAGE = "id"

_current: contextvars.ContextVar[str] = contextvars.ContextVar(
    "console_language", default=DEFAULT_LANGUAGE
)


@cache
def translations(lang: str) -> gettext.NullTranslations:
    return gettext.translation("messages", LOCALE_DIR, languages=[lang], fallback=True)


def use_language(lang: str) -> contextvars.Token[str]:
    return _current.set(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)


def current_language() -> str:
    return _current.get()


def gettext_(message: str) -> str:
    return translations(current_language()).gettext(message)


def ngettext_(singular: str, plural: str, n: int) -> str:
    return translations(current_language()).ngettext(singular, plural, n)


def negotiate(chosen: str | None, accept_language: str | None) -> str:
    """The switch's choice, else the first language of Accept-Language we have, else `id`."""
    if chosen in LANGUAGES:
        return chosen
    ranked: list[tuple[float, str]] = []
    for part in (accept_language or "").split(","):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((quality, tag.strip().lower().split("-")[0]))
    for _, code in sorted(ranked, key=lambda r: -r[0]):
        if code in LANGUAGES:
            return code
        if code == "in":  # the old ISO code of Indonesian, still sent by some systems
            return "id"
    return DEFAULT_LANGUAGE


def fmt_date(value: dt.date | None) -> str:
    if value is None:
        return ""
    return format_date(value, format="medium", locale=current_language())


def fmt_datetime(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return format_datetime(value, format="medium", locale=current_language())


def fmt_month(value: str) -> str:
    """A "YYYY-MM" month in words ("Mei 2031"); anything else as it is."""
    try:
        first = dt.date.fromisoformat(f"{value}-01")
    except ValueError:
        return value
    return format_date(first, format="MMM y", locale=current_language())


def compile_catalogs() -> list[Path]:
    """Compile every `messages.po` into its `messages.mo` (run after editing a catalog)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/messages.po")):
        with po.open("rb") as fh:
            catalog = read_po(fh)
        mo = po.with_suffix(".mo")
        with mo.open("wb") as fh:
            write_mo(fh, catalog)
        written.append(mo)
    translations.cache_clear()
    return written


if __name__ == "__main__":
    for path in compile_catalogs():
        print(f"compiled {path}")
