"""`refcheck-server retention run`: one retention sweep now (cron, or after changing policy).

The server also sweeps periodically while it runs (`server.jobs`); this command is for a server
run without background jobs, and for operators who want to see the counts. `server.cli` mounts
`retention_app`.
"""

from __future__ import annotations

import typer

from server.cli_common import DataDirOption, open_context, session_scope

retention_app = typer.Typer(help="Deleting data past its retention.", no_args_is_help=True)


@retention_app.command("run")
def retention_run(
    data_dir: DataDirOption = None,
) -> None:
    """Purge cases past retention, withdrawn members' cases (per policy), withdrawn cases'
    pseudonyms, ended disclosure requests past the policy's record retention, and daily-quota
    usage rows of days before yesterday.

    Safe to run at any time, any number of times.
    """
    from server.retention.services import sweep

    ctx = open_context(data_dir)
    with session_scope(ctx) as session:
        report = sweep(session, ctx)
    by_reason = ", ".join(f"{reason}: {n}" for reason, n in sorted(report.purged.items()))
    typer.echo(
        f"retention sweep: {report.total_purged} case(s) purged"
        + (f" ({by_reason})" if by_reason else "")
        + f"; {report.withdrawn_cleaned} withdrawn case(s) cleaned of pseudonyms"
        + f"; {report.disclosure_requests_purged} ended disclosure request(s) purged"
        + f"; {report.daily_usage_pruned} old daily-quota row(s) deleted"
    )
