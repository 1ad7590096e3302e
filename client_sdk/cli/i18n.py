"""Languages of `refcheck`: English (the source) and Bahasa Indonesia, through the gettext
catalog `locale/<lang>/LC_MESSAGES/refcheck-cli.mo` (its own domain: the console's catalog is
`client_sdk/console/locale`, `messages`).

The language is `--lang`, else `REFCHECK_LANG`, else the locale (`LANGUAGE`, `LC_ALL`,
`LC_MESSAGES`, `LANG`, as gettext reads them), else English. It is chosen when the command
starts (`LocalisedGroup.main`), before click formats any help: typer takes the commands' help
from their docstrings and `help=` when the modules are imported, in English, and `localise`
replaces each with its translation in the click commands built for this run. Messages printed
while a command runs go through `_` (`_("...{name}...").format(name=...)`).

Run time needs only the standard library's `gettext`. After changing a message, `make
cli-catalog` (`python -m client_sdk.cli.catalogs`, Babel from the `dev` extra) re-extracts the
template, merges it into the `.po` files and compiles them (client_sdk/cli/catalogs.py); then
translate what is new and run it again.
"""

from __future__ import annotations

import gettext
import inspect
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

__all__ = [
    "DEFAULT_LANGUAGE",
    "CATALOGS",
    "DOMAIN",
    "ENV_LANG",
    "LANGUAGES",
    "LOCALE_DIR",
    "LocalisedGroup",
    "N_",
    "_",
    "choose",
    "current_language",
    "from_args",
    "from_environment",
    "chrome_messages",
    "help_texts",
    "localise",
    "ngettext",
    "use_language",
]

DOMAIN = "refcheck-cli"
LOCALE_DIR = Path(__file__).with_name("locale")
#: Language codes and their names, each written in its own language.
LANGUAGES = {"en": "English", "id": "Bahasa Indonesia"}
DEFAULT_LANGUAGE = "en"
#: The languages with a catalog (English is the messages themselves).
CATALOGS = ("id",)
ENV_LANG = "REFCHECK_LANG"
#: Where gettext looks for the language when nothing else names it, in its order.
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
#: Old or other codes of the languages we have.
ALIASES = {"in": "id", "ind": "id", "eng": "en"}

_current = DEFAULT_LANGUAGE


@cache
def translations(lang: str) -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)


def use_language(lang: str) -> None:
    """Print and format help in `lang` from now on (an unknown code means English)."""
    global _current
    _current = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
    _localise_typer_chrome()


def current_language() -> str:
    return _current


def _(message: str) -> str:
    """`message` in the current language (itself when it has no translation)."""
    return translations(_current).gettext(message)


def N_(message: str) -> str:
    """Marks `message` for the catalog and returns it unchanged (English): for a message kept
    in a constant and translated with `_` where it is printed."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current).ngettext(singular, plural, n)


def language_code(value: str) -> str | None:
    """`id_ID.UTF-8` → `id`; None for a language we have no catalog for (`C`, `fr_FR`)."""
    code = value.strip().lower().split(".")[0].split("@")[0].replace("-", "_").split("_")[0]
    code = ALIASES.get(code, code)
    return code if code in LANGUAGES else None


def from_environment(environ: Mapping[str, str]) -> str:
    """`REFCHECK_LANG` when it names a language we have, else the locale, else English.

    As gettext does, the first of LANGUAGE, LC_ALL, LC_MESSAGES and LANG that is set decides;
    LANGUAGE may list several languages (`fr:id`), the first one we have wins.
    """
    chosen = language_code(environ.get(ENV_LANG) or "")
    if chosen:
        return chosen
    for variable in LOCALE_VARIABLES:
        value = environ.get(variable)
        if value:
            for part in value.split(":"):
                code = language_code(part)
                if code:
                    return code
            break
    return DEFAULT_LANGUAGE


def from_args(args: Sequence[str], commands: Iterable[str] = ()) -> str | None:
    """The language of a `--lang` among the global options, if it names one we have (click
    refuses any other value with its usage error, in the language chosen without it). The
    global options end at the first command (`form render --lang` is the form's language)."""
    stop = {"--", *commands}
    for i, arg in enumerate(args):
        if arg in stop:
            break
        if arg == "--lang" and i + 1 < len(args):
            return language_code(args[i + 1])
        if arg.startswith("--lang="):
            return language_code(arg.partition("=")[2])
    return None


def choose(args: Sequence[str], environ: Mapping[str, str], commands: Iterable[str] = ()) -> str:
    return from_args(args, commands) or from_environment(environ)


# -- help ------------------------------------------------------------------------------------


def _walk(command: Any) -> Iterable[Any]:
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _walk(sub)


def _texts(command: Any) -> Iterable[tuple[Any, str]]:
    """Every (object, attribute) of a command tree that holds help for people."""
    for cmd in _walk(command):
        for attr in ("help", "short_help", "epilog"):
            yield cmd, attr
        for param in cmd.params:
            yield param, "help"
        # click makes `--help` on first use and keeps it: made now, its help is translated too.
        help_option = cmd.get_help_option(typer.Context(cmd))
        if help_option is not None:
            yield help_option, "help"


def help_texts(command: Any) -> list[str]:
    """The English help of a command tree, as `localise` looks each one up (the template's
    messages besides those of `_`)."""
    found: dict[str, None] = {}
    for obj, attr in _texts(command):
        text = getattr(obj, attr, None)
        if text:
            found[inspect.cleandoc(text)] = None
    return list(found)


def localise(command: Any) -> None:
    """Replace the help of `command` and its subcommands by its translation."""
    for obj, attr in _texts(command):
        original = getattr(obj, f"_refcheck_en_{attr}", None)
        if original is None:
            original = getattr(obj, attr, None)
            if not original:
                continue
            setattr(obj, f"_refcheck_en_{attr}", original)
        setattr(obj, attr, _(inspect.cleandoc(original)))


#: typer's own words around the help (panel titles, `[default: ...]`), read from its module
#: when it formats help.
_TYPER_CHROME = {
    "ARGUMENTS_PANEL_TITLE": "Arguments",
    "OPTIONS_PANEL_TITLE": "Options",
    "COMMANDS_PANEL_TITLE": "Commands",
    "ERRORS_PANEL_TITLE": "Error",
    "ABORTED_TEXT": "Aborted.",
    "DEFAULT_STRING": "[default: {}]",
    "ENVVAR_STRING": "[env var: {}]",
    "REQUIRED_LONG_STRING": "[required]",
    "DEPRECATED_STRING": "(deprecated) ",
    "RICH_HELP": "Try [blue]'{command_path} {help_option}'[/] for help.",
}


def chrome_messages() -> list[str]:
    return list(_TYPER_CHROME.values())


def _localise_typer_chrome() -> None:
    from typer import rich_utils

    for name, english in _TYPER_CHROME.items():
        if hasattr(rich_utils, name):
            setattr(rich_utils, name, _(english))


class LocalisedGroup(TyperGroup):
    """The `refcheck` group: picks the language before click parses anything or prints help."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        import os
        import sys

        given = sys.argv[1:] if args is None else args
        use_language(choose(given, os.environ, self.commands))
        localise(self)
        return super().main(
            args=args,
            prog_name=prog_name,
            complete_var=complete_var,
            standalone_mode=standalone_mode,
            windows_expand_args=windows_expand_args,
            **extra,
        )
