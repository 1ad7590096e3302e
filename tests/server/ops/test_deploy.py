"""The service files in deploy/ and the commands of docs/operations.md: every command line they
give parses against `refcheck-server` as it is (an option renamed or removed fails here, not on
an operator's machine), the systemd units pass `systemd-analyze verify`, and the guide covers
every file of deploy/."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer.main

from server.cli import app
from tests.sdk.live import free_port

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


# --- The container recipe, built without Docker -------------------------------------------------

#: This machine (and CI) has no Docker daemon or image registry, so the recipe's own steps are
#: replayed instead: the files its COPY lines name, installed the way its RUN line installs
#: them, then its `init` (docs/operations.md), its CMD and its HEALTHCHECK. A file the package
#: needs but the recipe does not copy fails here.
DOCKERFILE = DEPLOY / "Dockerfile"


def _recipe_copies(dockerfile: str) -> list[tuple[str, str]]:
    """(source, destination) of each `COPY`: several sources into a directory (`./`) or one
    source to a path."""
    copies: list[tuple[str, str]] = []
    for line in re.findall(r"^COPY (.+)$", dockerfile, flags=re.M):
        *sources, dest = line.split()
        copies += [(s, dest if not dest.endswith("/") else dest + s) for s in sources]
    return copies


def test_the_recipe_copies_are_read_as_docker_reads_them() -> None:
    copies = dict(_recipe_copies("COPY pyproject.toml README.md ./\nCOPY server ./server\n"))
    assert copies == {"pyproject.toml": "./pyproject.toml", "README.md": "./README.md",
                      "server": "./server"}  # fmt: skip


@pytest.mark.skipif(
    bool(os.environ.get("REFCHECK_TEST_DATABASE_URL")),
    reason="the recipe holds no database: replayed once, in the SQLite run",
)
def test_the_container_recipe_installs_from_what_it_copies_and_serves(tmp_path: Path) -> None:
    dockerfile = DOCKERFILE.read_text()
    src, venv, data = tmp_path / "src", tmp_path / "venv", tmp_path / "data"
    for source, dest in _recipe_copies(dockerfile):
        target = src / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, target)
    assert re.search(r"pip install '\.\[server\]'", dockerfile)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", ".[server]"],
        cwd=src, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    server = str(venv / "bin" / "refcheck-server")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFCHECK_")}
    init = subprocess.run(
        [server, "init", "--data-dir", str(data), "--network-id", "pseah-id",
         "--base-url", "https://refcheck.example.org"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr

    port = free_port()
    (cmd,) = re.findall(r"^CMD (\[.*\])$", dockerfile, flags=re.M)
    args = json.loads(cmd)
    args[args.index("--data-dir") + 1] = str(data)
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    (probe,) = re.findall(r'CMD python -c "(.+)"$', dockerfile, flags=re.M)
    probe = probe.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    serving = subprocess.Popen([server, *args], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            healthy = subprocess.run(
                [str(venv / "bin" / "python"), "-c", probe], capture_output=True, timeout=30
            )
            if healthy.returncode == 0:
                break
            assert serving.poll() is None, serving.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the HEALTHCHECK never passed"
            time.sleep(0.5)
    finally:
        serving.terminate()
        serving.communicate(timeout=30)
