"""`refcheck-server filter publish --data-dir D`: a revision at once, served from the next
request of a server on the same database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from protocol.signed import parse
from server.cli import app as cli_app
from server.context import AppContext
from server.db import make_engine
from server.filter import services
from server.filter.models import FilterRevision
from server.settings import Settings
from tests.databases import dispose_database_url, fresh_database_url

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """An initialised network of its own: (data dir, database URL)."""
    for name in ("REFCHECK_DATABASE_URL", "REFCHECK_DATA_DIR", "REFCHECK_POLICY_FILE"):
        monkeypatch.delenv(name, raising=False)
    url = fresh_database_url(tmp_path / "db", "refcheck_filter_cli")
    directory = tmp_path / "data"
    if url.startswith("postgresql"):
        monkeypatch.setenv("REFCHECK_DATABASE_URL", url)
    else:
        url = f"sqlite:///{(directory / 'refcheck.db').resolve()}"
    try:
        result = runner.invoke(cli_app, ["init", "--data-dir", str(directory)])
        assert result.exit_code == 0, result.output
        yield directory, url
    finally:
        dispose_database_url(url)


def newest_revision(url: str) -> int | None:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return session.scalar(select(func.max(FilterRevision.revision)))
    finally:
        engine.dispose()


def test_filter_publish_publishes_a_revision_now(data_dir: tuple[Path, str]):
    directory, url = data_dir
    before = newest_revision(url) or 0
    result = runner.invoke(cli_app, ["filter", "publish", "--data-dir", str(directory)])
    assert result.exit_code == 0, result.output
    found = re.search(
        r"filter revision (\d+) published: 0 values, sha256 ([0-9a-f]{64})", result.output
    )
    assert found is not None, result.output
    assert int(found.group(1)) == before + 1 == newest_revision(url)
    again = runner.invoke(cli_app, ["filter", "publish", "--data-dir", str(directory)])
    assert again.exit_code == 0, again.output
    assert newest_revision(url) == before + 2


def test_a_server_serves_the_cli_revision_from_its_next_check(data_dir: tuple[Path, str]):
    from server.app import build_context

    directory, url = data_dir
    settings = Settings(
        environment="test",
        data_dir=directory,
        database_url=url if url.startswith("postgresql") else "",
        run_background_jobs=False,
    )
    engine = make_engine(url)
    try:
        ctx: AppContext = build_context(settings, bind=engine)
        with ctx.sessions() as session:
            served = parse(services.current_filter_header(session, ctx)).fields["revision"]
            session.commit()
        result = runner.invoke(cli_app, ["filter", "publish", "--data-dir", str(directory)])
        assert result.exit_code == 0, result.output
        with ctx.sessions() as session:
            header = parse(services.current_filter_header(session, ctx))
        assert header.fields["revision"] == served + 1
    finally:
        engine.dispose()
