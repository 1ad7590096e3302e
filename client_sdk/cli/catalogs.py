"""The catalogs of `refcheck` (client_sdk/cli/i18n.py), for development: Babel (the `dev`
extra) builds the template from the help of every command and option, typer's words around it
and each `_("...")` in client_sdk/cli, merges it into each language's `.po` and compiles the
`.mo` that ships. Run `make cli-catalog` (`python -m client_sdk.cli.catalogs`) after changing a
message, translate what came in untranslated, and run it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from client_sdk.cli.i18n import (
    CATALOGS,
    DOMAIN,
    LOCALE_DIR,
    chrome_messages,
    help_texts,
    translations,
)

__all__ = ["template", "update_catalogs"]


def template() -> Any:
    """The catalog of every message: the help of every command and option, typer's words
    around it, and each `_("...")` and `N_("...")` in client_sdk/cli."""
    import typer
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir

    from client_sdk.cli import app

    catalog = Catalog(project="refcheck CLI", domain=DOMAIN)
    for text in help_texts(typer.main.get_command(app)):
        catalog.add(text, locations=[("help", 0)])
    for text in chrome_messages():
        catalog.add(text, locations=[("typer", 0)])
    here = Path(__file__).parent
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(here),
        method_map=[("**.py", "python")],
        keywords={"_": None, "N_": None, "ngettext": (1, 2)},
    ):
        location = (f"client_sdk/cli/{filename}", lineno)
        existing = catalog.get(message[0] if isinstance(message, tuple) else message)
        if existing is not None:
            existing.locations.append(location)
        else:
            catalog.add(message, locations=[location])
    return catalog


def update_catalogs() -> list[Path]:
    """Write the template, merge it into each language's `.po` (a new message comes in
    untranslated, a gone one is dropped) and compile every `.po` (run after editing one)."""
    from babel.messages.catalog import Catalog
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po, write_po

    written = []
    fresh = template()
    pot = LOCALE_DIR / f"{DOMAIN}.pot"
    pot.parent.mkdir(parents=True, exist_ok=True)
    with pot.open("wb") as fh:
        write_po(fh, fresh, width=100, omit_header=False, sort_output=False)
    written.append(pot)
    for lang in CATALOGS:
        po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        if po.exists():
            with po.open("rb") as fh:
                catalog = read_po(fh, locale=lang, domain=DOMAIN)
        else:
            po.parent.mkdir(parents=True, exist_ok=True)
            catalog = Catalog(locale=lang, domain=DOMAIN, project="refcheck CLI")
        catalog.update(fresh, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        with po.open("wb") as fh:
            write_po(fh, catalog, width=100, include_previous=False)
        with po.with_suffix(".mo").open("wb") as fh:
            write_mo(fh, catalog)
        written += [po, po.with_suffix(".mo")]
    translations.cache_clear()
    return written


if __name__ == "__main__":
    for path in update_catalogs():
        print(f"wrote {path}")
