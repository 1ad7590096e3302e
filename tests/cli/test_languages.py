"""`refcheck` speaks Bahasa Indonesia and English (issue 14, section 6): `--lang`, else
REFCHECK_LANG, else the locale, else English; help and messages come from the refcheck-cli
gettext catalog, which translates every message, keeps its placeholders, and ships compiled.

None of these tests needs a server: the errors they provoke happen before any request.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from client_sdk.cli import app, i18n

pytest.importorskip("babel")

from babel.messages.catalog import Catalog  # noqa: E402
from babel.messages.mofile import write_mo  # noqa: E402
from babel.messages.pofile import read_po  # noqa: E402

from client_sdk.cli import catalogs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PO = i18n.LOCALE_DIR / "id" / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
POT = i18n.LOCALE_DIR / f"{i18n.DOMAIN}.pot"


def refcheck(*args: str, **env: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def flat(text: str) -> str:
    """Output as one line: rich wraps help and errors inside boxes."""
    return " ".join(text.replace("│", " ").split())


def unreadable_person(tmp_path: Path) -> list[str]:
    """A check whose person file does not exist: refused (exit 2) before any request."""
    return ["check", "--consent", "c-1", "--person", str(tmp_path / "missing.json")]


# -- choosing the language -------------------------------------------------------------------


def test_lang_id_shows_the_main_help_in_indonesian():
    result = refcheck("--lang", "id", "--help")
    assert result.exit_code == 0, result.output
    assert "Pemeriksaan referensi yang menjaga privasi untuk jaringan PSEAH." in flat(result.output)
    assert "Opsi" in result.output and "Perintah" in result.output
    assert "Tampilkan pesan ini lalu keluar." in result.output
    assert "Privacy-preserving reference checks" not in result.output


def test_lang_is_a_documented_global_option():
    result = refcheck("--help")
    assert result.exit_code == 0, result.output
    assert "--lang" in result.output
    assert "Language of messages and help" in flat(result.output)
    assert "REFCHECK_LANG" in result.output


def test_lang_id_shows_a_subcommands_help_in_indonesian():
    result = refcheck("--lang", "id", "check", "--help")
    assert result.exit_code == 0, result.output
    assert "Periksa satu pelamar terhadap registri." in result.output
    assert "Nama lengkap sesuai dokumen identitas." in flat(result.output)
    assert "Check one applicant" not in result.output


def test_the_help_is_english_without_an_indonesian_locale():
    result = refcheck("check", "--help")
    assert result.exit_code == 0, result.output
    assert "Check one applicant against the registry." in result.output
    assert "Periksa satu pelamar" not in result.output


def test_an_error_is_printed_in_the_chosen_language(tmp_path: Path):
    indonesian = refcheck("--lang", "id", *unreadable_person(tmp_path))
    assert indonesian.exit_code == 2, indonesian.output
    assert "galat: berkas data orang bukan JSON yang dapat dibaca" in indonesian.stderr
    english = refcheck("--lang", "en", *unreadable_person(tmp_path))
    assert english.exit_code == 2, english.output
    assert "error: the person file is not readable JSON" in english.stderr


def test_a_secretariat_message_is_printed_in_the_chosen_language():
    """`admin` and `audit` speak the chosen language too (refused before any request)."""
    indonesian = refcheck("--lang", "id", "admin", "org", "update", "org-a")
    assert indonesian.exit_code == 2, indonesian.output
    assert "galat: tidak ada yang diubah: berikan setidaknya satu opsi" in indonesian.stderr
    english = refcheck("admin", "org", "update", "org-a")
    assert english.exit_code == 2, english.output
    assert "error: nothing to change: give at least one option" in english.stderr


@pytest.fixture
def indonesian():
    """Messages in Bahasa Indonesia while the test runs, English again after it."""
    i18n.use_language("id")
    yield
    i18n.use_language("en")


def test_the_demo_titles_its_steps_in_the_chosen_language(indonesian):
    from rich.console import Console

    from client_sdk.cli.demo import STEPS, print_step_title

    out = io.StringIO()
    print_step_title(Console(file=out, width=200), 1, STEPS[0][0])
    assert "Langkah 1: Kunci jaringan" in out.getvalue()
    assert STEPS[0][0] == "The network's key"  # the source stays English
    i18n.use_language("en")
    out = io.StringIO()
    print_step_title(Console(file=out, width=200), 1, STEPS[0][0])
    assert "Step 1: The network's key" in out.getvalue()


def test_the_demo_says_what_to_run_in_the_chosen_language(tmp_path: Path):
    args = ["demo", "--data-dir", str(tmp_path), "--base-url", "http://127.0.0.1:9"]
    indonesian = refcheck("--lang", "id", *args)
    assert indonesian.exit_code == 5, indonesian.output
    assert "tidak ada kredensial demo untuk focal point org-a" in flat(indonesian.stderr)
    assert "refcheck-server init --demo" in indonesian.stderr
    english = refcheck(*args)
    assert "no demo credentials for org-a's focal point" in flat(english.stderr)


def test_the_login_errors_about_the_networks_key_are_in_the_chosen_language(indonesian):
    from client_sdk.cli import _fingerprint_option, _network_named_by
    from client_sdk.errors import CredentialsError

    with pytest.raises(CredentialsError, match="--network-fingerprint wajib diisi: Mintalah"):
        _fingerprint_option(None)
    with pytest.raises(CredentialsError, match="--network-fingerprint harus berupa 64 digit"):
        _fingerprint_option("ab:cd")
    # Port 9 on this machine answers nothing.
    with pytest.raises(CredentialsError, match="kunci jaringan di http://127.0.0.1:9/v1/network"):
        _network_named_by("http://127.0.0.1:9", ca_file=None, allow_insecure_http=False)


def test_the_language_comes_from_the_locale_without_lang(tmp_path: Path):
    result = refcheck(*unreadable_person(tmp_path), LANG="id_ID.UTF-8")
    assert "berkas data orang bukan JSON yang dapat dibaca" in result.stderr
    helped = refcheck("check", "--help", LANG="id_ID.UTF-8")
    assert "Periksa satu pelamar terhadap registri." in helped.output


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, "en"),
        ([], {"LANG": "id_ID.UTF-8"}, "id"),
        ([], {"LANG": "fr_FR.UTF-8"}, "en"),
        ([], {"LANG": "C.UTF-8"}, "en"),
        ([], {"LANGUAGE": "fr:id", "LANG": "en_US.UTF-8"}, "id"),
        ([], {"LC_ALL": "en_US.UTF-8", "LANG": "id_ID.UTF-8"}, "en"),
        ([], {"LC_MESSAGES": "in_ID", "LANG": "en_GB.UTF-8"}, "id"),
        ([], {"REFCHECK_LANG": "en", "LANG": "id_ID.UTF-8"}, "en"),
        (["--lang", "en"], {"REFCHECK_LANG": "id"}, "en"),
        (["--lang=id"], {"LANG": "en_US.UTF-8"}, "id"),
        # The form's own --lang, after the command, is not the CLI's language.
        (["form", "render", "--lang", "en"], {"LANG": "id_ID.UTF-8"}, "id"),
    ],
)
def test_lang_then_refcheck_lang_then_the_locale_then_english(args, env, expected):
    assert i18n.choose(args, env, commands=["form", "check"]) == expected


def test_an_unknown_lang_is_refused():
    result = refcheck("--lang", "fr", "whoami")
    assert result.exit_code == 2
    assert "unknown language 'fr': use id (Bahasa Indonesia) or en (English)" in flat(result.output)


def test_an_unknown_refcheck_lang_is_refused_in_the_locales_language():
    result = refcheck("whoami", REFCHECK_LANG="xx", LANG="id_ID.UTF-8")
    assert result.exit_code == 2
    assert "bahasa 'xx' tidak dikenal: gunakan id (Bahasa Indonesia)" in flat(result.output)


def test_the_forms_lang_does_not_switch_the_cli(tmp_path: Path):
    result = refcheck("form", "render", "--lang", "fr", LANG="id_ID.UTF-8")
    assert result.exit_code == 2
    assert "--lang adalah id atau en, --format adalah html atau pdf" in result.stderr


def test_the_base_install_needs_no_babel():
    """Run time is the standard library's gettext: Babel (the console extra) is not needed."""
    code = (
        "import sys; sys.modules['babel'] = None\n"
        "from client_sdk.cli import main\n"
        "sys.argv = ['refcheck', '--lang', 'id', '--help']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Pemeriksaan referensi yang menjaga privasi" in done.stdout


# -- the catalog -----------------------------------------------------------------------------


def shipped() -> Catalog:
    with PO.open("rb") as fh:
        return read_po(fh, locale="id", domain=i18n.DOMAIN)


def untranslated(catalog: Catalog, wanted: list[str]) -> list[str]:
    return sorted(m for m in wanted if not ((found := catalog.get(m)) and found.string))


#: What a translation must keep as it is: format placeholders, rich markup, `code` and options.
KEPT = {
    "placeholders": re.compile(r"\{[^{}]*\}|%(?:\([^)]*\))?[sdifr]"),
    "markup": re.compile(r"\[/?(?:(?:bold|red|blue|green|yellow)(?: (?:bold|red))?)?\]"),
    "code": re.compile(r"`[^`]+`"),
    "options": re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*"),
}


def altered(msgid: str, msgstr: str) -> list[str]:
    """What of `msgid`'s placeholders, markup, code spans and options `msgstr` lost or added."""
    return [
        f"{kind}: {sorted(pattern.findall(msgid))} != {sorted(pattern.findall(msgstr))}"
        for kind, pattern in KEPT.items()
        if sorted(pattern.findall(msgid)) != sorted(pattern.findall(msgstr))
    ]


def test_every_message_has_an_indonesian_translation():
    wanted = [m.id for m in catalogs.template() if m.id]
    assert len(wanted) > 300
    assert untranslated(shipped(), wanted) == []


def test_a_missing_translation_is_caught():
    wanted = [m.id for m in catalogs.template() if m.id] + ["A message nobody translated"]
    assert untranslated(shipped(), wanted) == ["A message nobody translated"]
    emptied = shipped()
    emptied["Passphrase"].string = ""
    assert untranslated(emptied, wanted) == ["A message nobody translated", "Passphrase"]


def test_translations_keep_placeholders_markup_code_and_options():
    pairs = [(str(m.id), str(m.string)) for m in shipped() if m.id]
    assert len(pairs) > 300
    assert {
        msgid: altered(msgid, msgstr) for msgid, msgstr in pairs if altered(msgid, msgstr)
    } == {}


@pytest.mark.parametrize(
    ("msgid", "msgstr"),
    [
        ("Case {case} is now {status}", "Kasus {kasus} kini berstatus {status}"),
        ("Case {case} is now {status}", "Kasus {case} kini berstatus"),
        ("unknown status %s", "status tidak dikenal"),
        ("[bold red]error:[/] {message}", "galat: {message}"),
        ("see `refcheck form hash`", "lihat refcheck form hash"),
        ("pass --overwrite to replace it", "berikan --timpa untuk menimpanya"),
    ],
)
def test_a_translation_that_alters_a_placeholder_is_caught(msgid: str, msgstr: str):
    assert altered(msgid, msgstr) != []


def test_the_template_is_up_to_date():
    with POT.open("rb") as fh:
        kept = [m.id for m in read_po(fh) if m.id]
    assert kept == [m.id for m in catalogs.template() if m.id], (
        "run `make cli-catalog` after changing a message"
    )


def compiled(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def test_the_shipped_mo_is_compiled_from_the_po():
    assert PO.with_suffix(".mo").read_bytes() == compiled(shipped()), (
        "run `make cli-catalog` after editing the catalog"
    )


def test_a_stale_mo_is_caught():
    edited = shipped()
    edited["Passphrase"].string = "Kata sandi"
    assert PO.with_suffix(".mo").read_bytes() != compiled(edited)


def test_the_compiled_catalog_ships_with_the_package():
    with (ROOT / "pyproject.toml").open("rb") as fh:
        package_data = tomllib.load(fh)["tool"]["setuptools"]["package-data"]
    mo = PO.with_suffix(".mo").relative_to(i18n.LOCALE_DIR.parent).as_posix()
    assert any(fnmatch(mo, pattern) for pattern in package_data.get("client_sdk.cli", []))
