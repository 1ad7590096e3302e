"""The base install (no extras) must give a working SDK and CLI: nothing may import the server
stack. Run in a fresh interpreter with those modules blocked, as on a machine without them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = [
    "server",
    "fastapi",
    "starlette",
    "sqlalchemy",
    "pydantic_settings",
    "uvicorn",
    "alembic",
]


def test_sdk_and_cli_work_without_server_dependencies() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        for name in {BLOCKED!r}:
            sys.modules[name] = None  # any import of it now raises ImportError
        import client_sdk
        from client_sdk import Client, AsyncClient
        from client_sdk.cli import app
        from client_sdk.forms import render_form
        from typer.testing import CliRunner
        result = CliRunner().invoke(app, ["--help"])
        assert result.exit_code == 0, result.output
        result = CliRunner().invoke(app, ["form", "render", "--lang", "en", "--format", "html"])
        assert result.exit_code == 0, result.output
        assert render_form("id", "pdf").startswith(b"%PDF")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r}
                        and sys.modules[m] is not None)
        assert not loaded, loaded
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
