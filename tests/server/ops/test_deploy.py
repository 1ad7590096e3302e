"""The service files in deploy/ and the commands of docs/operations.md: every command line they
give parses against `refcheck-server` as it is (an option renamed or removed fails here, not on
an operator's machine), the systemd units pass `systemd-analyze verify`, and the guide covers
every file of deploy/."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from server.cli import app

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
GUIDE = ROOT / "docs" / "operations.md"


def parse(args: list[str]) -> Any:
    """Parse a `refcheck-server` command line as the CLI would (options, their types and
    bounds), down to its subcommand, without running it; the subcommand's context."""
    command: Any = typer.main.get_command(app)
    ctx = command.make_context("refcheck-server", list(args))
    while hasattr(command, "resolve_command"):
        # click keeps the subcommand and its arguments apart until it invokes it.
        pending = list(getattr(ctx, "protected_args", None) or ctx._protected_args) + ctx.args
        name, sub, rest = command.resolve_command(ctx, pending)
        assert sub is not None and name is not None
        command, ctx = sub, sub.make_context(name, rest, parent=ctx)
    return ctx


def _no_substitutions(command: str) -> str:
    """`$(date +%F)` stands for one word in the shell."""
    return re.sub(r"\$\([^)]*\)", "DATE", command)


def _exec_start(unit: Path) -> list[str]:
    (line,) = [x for x in unit.read_text().splitlines() if x.startswith("ExecStart=")]
    command = line.removeprefix("ExecStart=")
    if command.startswith("/bin/sh -c "):
        command = shlex.split(command.removeprefix("/bin/sh -c "))[0].removeprefix("exec ")
    words = shlex.split(_no_substitutions(command.replace("%%", "%")))
    assert words[0].endswith("/refcheck-server")
    return words[1:]


def _guide_commands() -> list[list[str]]:
    text = re.sub(r"\\\n\s*", " ", GUIDE.read_text(encoding="utf-8"))
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if "refcheck-server " not in line or "bin/pip" in line:
                continue
            command = line.split("refcheck-server ", 1)[1].split(" > ")[0].split(" | ")[0]
            words = shlex.split(_no_substitutions(command.split("#", 1)[0]))
            if words and words[0] not in ("-t", "."):  # `docker build -t refcheck-server .`
                found.append(words)
    return found


@pytest.mark.parametrize("unit", ["refcheck-server.service", "refcheck-backup.service"])
def test_the_systemd_units_run_commands_the_cli_accepts(unit: str) -> None:
    ctx = parse(_exec_start(DEPLOY / unit))
    assert ctx.params["data_dir"] == Path("/var/lib/refcheck")


def test_the_container_runs_a_command_the_cli_accepts() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    (cmd,) = re.findall(r"^CMD (\[.*\])$", dockerfile, flags=re.M)
    assert re.search(r'^ENTRYPOINT \["refcheck-server"\]$', dockerfile, flags=re.M)
    ctx = parse(json.loads(cmd))
    assert ctx.params["proxy_headers"] is True and ctx.params["workers"] == 2


def test_every_command_of_the_guide_parses() -> None:
    commands = _guide_commands()
    assert len(commands) >= 8
    seen = set()
    for words in commands:
        parse(words)
        seen.add(words[0] if words[0] != "keys" else f"keys {words[1]}")
    for needed in ("init", "serve", "backup", "restore", "migrate", "keys rotate-token"):
        assert needed in seen


def test_a_command_with_an_unknown_option_does_not_parse() -> None:
    with pytest.raises(Exception, match="No such option"):
        parse(["serve", "--data-dir", "x", "--tls-certificate", "c.pem"])


def test_the_guide_covers_every_service_file() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    for path in DEPLOY.iterdir():
        assert f"deploy/{path.name}" in guide, path.name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    server = Path(sys.executable).with_name("refcheck-server")
    for name in ("refcheck-server.service", "refcheck-backup.service", "refcheck-backup.timer"):
        text = (
            (DEPLOY / name)
            .read_text()
            .replace("/opt/refcheck/venv/bin/refcheck-server", str(server))
        )
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", *(str(p) for p in sorted(tmp_path.iterdir()))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
